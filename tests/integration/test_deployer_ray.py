"""The deployer's use cases on a real local Ray cluster (no NATS, no Mongo: in-memory store)."""

import asyncio
import hashlib
import shutil
import tempfile
import textwrap
import uuid
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import ray
from ray import serve
from ray.experimental.internal_kv import _internal_kv_get

from modelhub_contracts import subjects
from modelhub_deployer.deploy import Deployer, DeploySpec, PreparedPackage
from modelhub_deployer.replica import PACKAGE_KV_NAMESPACE
from modelhub_deployer.serving import RayServe, start_serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DOUBLER = """
import time

class Model:
    def __init__(self, model_dir):
        self.model_dir = model_dir

    def predict(self, batch):
        time.sleep(0.05)  # slow enough that concurrent calls queue up into batches
        n = len(batch["x"])
        return {"y": [x * 2 for x in batch["x"]], "batch_size": [n] * n}
"""

BROKEN = """
class Model:
    def __init__(self, model_dir):
        raise RuntimeError("weights file is missing: boom-7f3a")

    def predict(self, batch):
        return batch
"""


class MemoryStore:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}

    async def get(self, name: str) -> dict[str, Any] | None:
        return self.docs.get(name)

    async def move(self, name: str, *, from_: Iterable[str], to: str, **fields: Any) -> bool:
        doc = self.docs.get(name)
        if doc is None or doc["status"] not in set(from_):
            return False
        doc.update(status=to, **fields)
        return True

    async def note(self, name: str, *, status: str, **fields: Any) -> bool:
        doc = self.docs.get(name)
        if doc is None or doc["status"] != status:
            return False
        doc.update(fields)
        return True

    async def with_status(self, statuses: Iterable[str]) -> list[dict[str, Any]]:
        return [d for d in self.docs.values() if d["status"] in set(statuses)]


class LocalPackages:
    """Packages written straight into zips (the NATS object store is not under test here)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sha256: dict[str, str] = {}

    def add(self, source: str) -> str:
        name = uuid.uuid4().hex[:8]
        with zipfile.ZipFile(self.root / f"{name}.zip", "w") as zf:
            zf.writestr("model.py", textwrap.dedent(source))
        self.sha256[name] = hashlib.sha256((self.root / f"{name}.zip").read_bytes()).hexdigest()
        return name

    async def prepare(self, name: str, package_object: str, sha256: str) -> PreparedPackage:
        return PreparedPackage(self.root / package_object, self.root / f"{package_object}.zip",
                               "model:Model", False, False)


@pytest.fixture(scope="module")
def ray_cluster():
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    # address="local": always a fresh cluster, even if RAY_ADDRESS points at the embedded stack.
    # one node that is also a replica node (the embedded stack keeps them apart)
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace=subjects.SERVE_NAMESPACE,
             _temp_dir=temp_dir, resources={"modelhub_replica": 1})
    start_serve()
    yield
    serve.shutdown()
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def world(ray_cluster, tmp_path):
    store, packages = MemoryStore(), LocalPackages(tmp_path)
    deployer = Deployer(store, RayServe(), packages, timeout_s=120, poll_s=0.25)
    return store, packages, deployer


def new_deployment(store: MemoryStore, packages: LocalPackages, source: str, **spec: Any) -> DeploySpec:
    package = packages.add(source)
    s = DeploySpec(name=f"it-{uuid.uuid4().hex[:8]}", package_object=package,
                   package_sha256=packages.sha256[package],
                   mini_batch=spec.get("mini_batch", 1), num_replicas=spec.get("num_replicas", 1),
                   num_gpus=spec.get("num_gpus", 0), custom_env=False)
    store.docs[s.name] = {"_id": s.name, "name": s.name, "package_object": s.package_object,
                          "package_sha256": s.package_sha256, "mini_batch": s.mini_batch,
                          "num_replicas": s.num_replicas, "num_gpus": s.num_gpus,
                          "custom_env": False, "status": "pending", "error": None,
                          "ready_replicas": 0}
    return s


async def deploy(deployer: Deployer, spec: DeploySpec) -> None:
    await deployer.request(spec)
    await asyncio.wait_for(deployer.join(spec.name), 150)


async def test_serve_has_no_http_proxy(ray_cluster):
    assert serve.status().proxies == {}


async def test_deploy_predict_batches_and_stop(world):
    store, packages, deployer = world
    spec = new_deployment(store, packages, DOUBLER, mini_batch=4)
    await deploy(deployer, spec)
    assert store.docs[spec.name]["status"] == "running", store.docs[spec.name]["error"]
    assert store.docs[spec.name]["ready_replicas"] == 1

    handle = serve.get_app_handle(spec.name)  # what the worker does, in another process
    method = getattr(handle, subjects.REPLICA_METHOD)
    assert await method.remote({"x": 3}) == {"y": 6, "batch_size": 1}

    results = await asyncio.gather(*(method.remote({"x": i}) for i in range(8)))
    assert [r["y"] for r in results] == [i * 2 for i in range(8)]
    sizes = [r["batch_size"] for r in results]
    assert max(sizes) <= 4 and max(sizes) > 1, sizes

    await deployer.request(spec)  # a redelivered request changes nothing
    assert store.docs[spec.name]["status"] == "running" and not deployer._in_flight(spec.name)

    # the replicas fetched the zip from the cluster's store, which holds it while it runs
    assert _internal_kv_get(spec.package_sha256, namespace=PACKAGE_KV_NAMESPACE) is not None
    await deployer.stop(spec.name)
    assert store.docs[spec.name]["status"] == "stopped"
    assert spec.name not in serve.status().applications
    assert _internal_kv_get(spec.package_sha256, namespace=PACKAGE_KV_NAMESPACE) is None


async def test_model_whose_init_raises_fails_with_its_message(world):
    store, packages, deployer = world
    spec = new_deployment(store, packages, BROKEN)
    await deploy(deployer, spec)
    doc = store.docs[spec.name]
    assert doc["status"] == "failed"
    assert "weights file is missing: boom-7f3a" in doc["error"]
    assert spec.name not in serve.status().applications


async def test_gpu_request_on_cpu_cluster_fails_at_once(world):
    store, packages, deployer = world
    spec = new_deployment(store, packages, DOUBLER, num_gpus=1)
    await deployer.request(spec)
    await asyncio.wait_for(deployer.join(spec.name), 10)
    doc = store.docs[spec.name]
    assert doc["status"] == "failed"
    assert "needs 1 GPU per replica (1 in total) but the Ray cluster has 0 GPUs" in doc["error"]


async def test_four_replicas_fit_on_two_cpus(world):
    store, packages, deployer = world
    spec = new_deployment(store, packages, DOUBLER, num_replicas=4, mini_batch=2)
    await deploy(deployer, spec)
    doc = store.docs[spec.name]
    assert (doc["status"], doc["ready_replicas"]) == ("running", 4), doc["error"]
    await deployer.stop(spec.name)
    assert store.docs[spec.name]["status"] == "stopped"
