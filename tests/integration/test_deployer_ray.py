"""The deployer's use cases on a real local Ray cluster (no NATS, no Mongo: in-memory store)."""

import asyncio
import hashlib
import os
import secrets
import shutil
import signal
import socket
import tempfile
import textwrap
import time
import uuid
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import pytest

from modelhub_contracts.documents import Deployment
from modelhub_deployer.deploy import Deployer, DeploySpec, PreparedPackage
from modelhub_deployer.serving import DashboardServe, ray_auth_token
from modelhub_worker.serving import ModelFailed, ServeClient

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

    async def get(self, name: str) -> Deployment | None:
        return cast(Deployment | None, self.docs.get(name))  # a test's document holds just the spec

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

    async def with_status(self, statuses: Iterable[str]) -> list[Deployment]:
        return [cast(Deployment, d) for d in self.docs.values() if d["status"] in set(statuses)]


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
        return PreparedPackage(
            self.root / package_object, self.root / f"{package_object}.zip", "model:Model", False, False
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """A fresh local cluster with its dashboard (Serve's REST API) and token auth. This test process
    is a Ray driver only to start it; the deployer and the worker's client use HTTP only."""
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    token = Path(temp_dir) / "token"
    token.write_text(secrets.token_hex(32))
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN")}
    os.environ.pop("RAY_AUTH_TOKEN", None)
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    dashboard, proxy = _free_port(), _free_port()
    import ray  # here: Ray reads RAY_AUTH_MODE when it is first imported

    # address="local": always a fresh cluster, even if RAY_ADDRESS points at the embedded stack.
    # one node that is also a replica node (the embedded stack keeps them apart)
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        dashboard_port=dashboard,
        _temp_dir=temp_dir,
        resources={"modelhub_replica": 1},
    )
    yield {
        "dashboard": f"http://127.0.0.1:{dashboard}",
        "serve": f"http://127.0.0.1:{proxy}",
        "token": ray_auth_token(),
    }
    ray.shutdown()
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
async def world(ray_cluster, tmp_path, media_roots):
    store, packages = MemoryStore(), LocalPackages(tmp_path)
    # the models' jails show these read-only (this session's temp dirs: each test's tmp_path), as
    # the deployer service's jail_args does with MODELHUB_MEDIA_ROOTS
    jail = {"media_roots": [r for r in media_roots.split(os.pathsep) if r]}
    serve = DashboardServe(ray_cluster["dashboard"], ray_cluster["serve"], ray_cluster["token"], jail=jail)
    deployer = Deployer(store, serve, packages, timeout_s=150, poll_s=0.25)

    async def secret(name: str) -> str | None:
        return (store.docs.get(name) or {}).get("serve_secret")

    client = ServeClient(ray_cluster["serve"], secret)
    yield store, packages, deployer, serve, client
    await client.close()
    await serve.close()


def new_deployment(store: MemoryStore, packages: LocalPackages, source: str, **spec: Any) -> DeploySpec:
    package = packages.add(source)
    s = DeploySpec(
        name=f"it-{uuid.uuid4().hex[:8]}",
        package_object=package,
        package_sha256=packages.sha256[package],
        mini_batch=spec.get("mini_batch", 1),
        num_replicas=spec.get("num_replicas", 1),
        num_gpus=spec.get("num_gpus", 0),
        custom_env=False,
    )
    store.docs[s.name] = {
        "_id": s.name,
        "name": s.name,
        "package_object": s.package_object,
        "package_sha256": s.package_sha256,
        "mini_batch": s.mini_batch,
        "num_replicas": s.num_replicas,
        "num_gpus": s.num_gpus,
        "custom_env": False,
        "status": "pending",
        "error": None,
        "ready_replicas": 0,
    }
    return s


async def deploy(deployer: Deployer, spec: DeploySpec) -> None:
    await deployer.request(spec)
    await asyncio.wait_for(deployer.join(spec.name), 200)


async def test_deploy_predict_over_http_beside_another_app_and_stop(world):
    store, packages, deployer, serve, client = world
    spec = new_deployment(store, packages, DOUBLER, mini_batch=4)
    other = new_deployment(store, packages, DOUBLER)
    await deploy(deployer, spec)
    await deploy(deployer, other)  # PUT replaces every app: the first one must survive it
    for s in (spec, other):
        assert store.docs[s.name]["status"] == "running", store.docs[s.name]["error"]
        assert store.docs[s.name]["ready_replicas"] == 1

    out = await client.predict_chunk(spec.name, [{"x": i} for i in range(4)])
    assert [r["y"] for r in out] == [0, 2, 4, 6] and {r["batch_size"] for r in out} == {4}
    assert await client.predict_chunk(other.name, [{"x": 5}]) == [{"y": 10, "batch_size": 1}]
    # the replica named its own address in its proxy answer: the next calls go there, same answers
    assert client.direct is not None
    async with asyncio.timeout(10):  # its first connection is made beside the calls
        while len(client.direct.known(spec.name)) != 1:
            await asyncio.sleep(0.01)
    for i in range(12):
        assert [r["y"] for r in await client.predict_chunk(spec.name, [{"x": i}, {"x": 1}])] == [2 * i, 2]
    # while it learns the deployment's replicas every 2nd call asks the proxy; three answers that
    # name no other replica end that (calls 2, 4, 6), and the rest go to the replica itself
    assert client.direct.calls == 9 and client.direct.dropped == 0
    with pytest.raises(ModelFailed, match="1 to 4 samples"):
        await client.predict_chunk(spec.name, [{"x": i} for i in range(5)])
    # each deployment has its own secret, and a call without the right one is refused
    assert store.docs[spec.name]["serve_secret"] != store.docs[other.name]["serve_secret"]

    async def wrong(name: str) -> str:
        return store.docs[other.name]["serve_secret"]

    stranger = ServeClient(client.serve_url, wrong)
    with pytest.raises(Exception, match="403"):
        await stranger.predict_chunk(spec.name, [{"x": 1}])
    await stranger.close()

    await deployer.request(spec)  # a redelivered request changes nothing
    assert store.docs[spec.name]["status"] == "running" and not deployer._in_flight(spec.name)

    await deployer.stop(spec.name)
    assert store.docs[spec.name]["status"] == "stopped"
    assert await serve.app_state(spec.name) is None
    assert (await serve.app_state(other.name)).status == "RUNNING"
    await deployer.stop(other.name)


async def test_model_whose_init_raises_fails_with_its_message(world):
    store, packages, deployer, serve, _ = world
    spec = new_deployment(store, packages, BROKEN)
    await deploy(deployer, spec)
    doc = store.docs[spec.name]
    assert doc["status"] == "failed"
    assert "weights file is missing: boom-7f3a" in doc["error"]
    assert await serve.app_state(spec.name) is None


async def test_gpu_request_on_cpu_cluster_fails_at_once(world):
    store, packages, deployer, _, _ = world
    spec = new_deployment(store, packages, DOUBLER, num_gpus=1)
    await deployer.request(spec)
    await asyncio.wait_for(deployer.join(spec.name), 10)
    doc = store.docs[spec.name]
    assert doc["status"] == "failed"
    assert "needs 1 GPU per replica (1 in total) but the Ray cluster has 0 GPUs" in doc["error"]


async def test_four_replicas_fit_on_two_cpus(world):
    store, packages, deployer, _, _ = world
    spec = new_deployment(store, packages, DOUBLER, num_replicas=4, mini_batch=2)
    await deploy(deployer, spec)
    doc = store.docs[spec.name]
    assert (doc["status"], doc["ready_replicas"]) == ("running", 4), doc["error"]
    await deployer.stop(spec.name)
    assert store.docs[spec.name]["status"] == "stopped"


# Starts while MARK is missing; the test makes MARK (in its tmp_path, under the media roots the
# jail shows read-only) once the deployment runs, so no replica can start again after that.
ONCE = """
import os

MARK = {mark!r}

class Model:
    def __init__(self, model_dir):
        if os.path.exists(MARK):
            raise RuntimeError("this replica cannot come back: lost-7c1d")

    def predict(self, batch):
        return {{"y": batch["x"], "batch_size": [len(batch["x"])] * len(batch["x"])}}
"""


def replica_pids(dashboard: str, app: str) -> list[int]:
    """The pids of the app's live Serve replicas (Ray workers, not the models' own processes), from
    Ray's state API on this test's own cluster (named by its dashboard: other clusters may run on
    this machine)."""
    from ray.util.state import list_actors

    actors = list_actors(
        address=dashboard, filters=[("state", "=", "ALIVE")], limit=10_000, raise_on_missing_output=False
    )
    # ActorState is a pydantic dataclass, whose fields pyright does not see
    return [int(a.pid) for a in cast(list[Any], actors) if a.class_name.startswith(f"ServeReplica:{app}:") and a.pid]


async def test_a_replica_lost_for_good_shows_in_the_deployment_with_serves_reason(world, ray_cluster, tmp_path):
    store, packages, deployer, _, _ = world
    mark = tmp_path / "started-once"
    spec = new_deployment(store, packages, ONCE.format(mark=str(mark)))
    await deploy(deployer, spec)
    assert store.docs[spec.name]["status"] == "running", store.docs[spec.name]["error"]
    await deployer.follow()
    assert (store.docs[spec.name]["ready_replicas"], store.docs[spec.name]["error"]) == (1, None)

    mark.touch()  # from now on the model's __init__ raises: a new replica cannot start
    pids = await asyncio.to_thread(replica_pids, ray_cluster["dashboard"], spec.name)
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)  # the replica's Ray worker (this test's own cluster)
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        await deployer.follow()
        doc = store.docs[spec.name]
        if doc["error"] and "lost-7c1d" in doc["error"]:
            break
        await asyncio.sleep(1)
    doc = store.docs[spec.name]
    assert doc["status"] == "running" and doc["ready_replicas"] == 0, doc
    assert doc["error"] and "lost-7c1d" in doc["error"], doc["error"]
    await deployer.stop(spec.name)
    assert store.docs[spec.name]["status"] == "stopped"
