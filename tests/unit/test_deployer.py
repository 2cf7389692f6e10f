"""Deployer use cases with fakes: no NATS, no Mongo, no Ray."""

import asyncio
import dataclasses
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import pytest
from faststream.nats import NatsBroker, TestNatsBroker
from pydantic import ValidationError

from modelhub_contracts import subjects
from modelhub_contracts.documents import Deployment
from modelhub_contracts.events import DEFAULT_BATCH_WAIT_MS, DeploymentRequested, DeploymentStopRequested
from modelhub_deployer.deploy import (
    AppState,
    Deployer,
    DeploySpec,
    PreparedPackage,
    ReplicaConfig,
    ServeUnavailable,
)
from modelhub_deployer.environments import Host
from modelhub_deployer.handlers import register

pytestmark = pytest.mark.timeout(30)


class MemoryStore:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.history: dict[str, list[str]] = {}

    def add(self, spec: DeploySpec, status: str = "pending") -> None:
        self.docs[spec.name] = {
            "_id": spec.name,
            "name": spec.name,
            "package_object": spec.package_object,
            "package_sha256": spec.package_sha256,
            "mini_batch": spec.mini_batch,
            "num_replicas": spec.num_replicas,
            "num_gpus": spec.num_gpus,
            "custom_env": spec.custom_env,
            "status": status,
            "error": None,
            "ready_replicas": 0,
            "min_replicas": spec.min_replicas,
            "max_replicas": spec.max_replicas,
            "scale_down_delay_s": spec.scale_down_delay_s,
        }
        self.history[spec.name] = [status]

    async def get(self, name: str) -> Deployment | None:
        return cast(Deployment | None, self.docs.get(name))  # a test's document holds just the spec

    async def move(self, name: str, *, from_: Iterable[str], to: str, **fields: Any) -> bool:
        doc = self.docs.get(name)
        if doc is None or doc["status"] not in set(from_):
            return False
        doc.update(status=to, **fields)
        self.history[name].append(to)
        return True

    async def note(self, name: str, *, status: str, **fields: Any) -> bool:
        doc = self.docs.get(name)
        if doc is None or doc["status"] != status:
            return False
        doc.update(fields)
        return True

    async def with_status(self, statuses: Iterable[str]) -> list[Deployment]:
        return [cast(Deployment, d) for d in self.docs.values() if d["status"] in set(statuses)]


class FakeServe:
    def __init__(self, resources: dict[str, float] | None = None) -> None:
        self.resources = resources if resources is not None else {"CPU": 2.0, "modelhub_replica": 1.0}
        self.apps: dict[str, AppState] = {}
        self.submitted: list[ReplicaConfig] = []
        self.deleted: list[str] = []
        self.model_processes: dict[str, dict] = {}
        self.probed: list[str] = []  # model_process calls (each goes through Serve's proxy)
        self.dropped: list[str] = []
        self.outcome = AppState("RUNNING", "", 0)  # what a submitted app becomes

    async def cluster_resources(self) -> dict[str, float]:
        return self.resources

    async def submit(self, config: ReplicaConfig) -> None:
        self.submitted.append(config)
        ready = config.num_replicas if self.outcome.status == "RUNNING" else 0
        self.apps[config.name] = AppState(self.outcome.status, self.outcome.message, ready)

    async def model_process(self, name: str, secret: str) -> dict | None:
        self.probed.append(name)
        return self.model_processes.get(name)

    async def app_state(self, name: str) -> AppState | None:
        return self.apps.get(name)

    async def delete(self, name: str) -> None:
        self.deleted.append(name)
        self.apps.pop(name, None)

    async def drop_package(self, sha256: str) -> None:
        self.dropped.append(sha256)


class FakePackages:
    def __init__(self) -> None:
        self.gate: asyncio.Event | None = None  # set: prepare() waits for it (a slow download)

    async def prepare(self, name: str, package_object: str, sha256: str) -> PreparedPackage:
        if self.gate is not None:
            await self.gate.wait()
        return PreparedPackage(
            Path("/data/deployments") / name / "package",
            Path("/data/deployments") / name / "package.zip",
            "model:Model",
            False,
            False,
        )


def make_spec(**overrides: Any) -> DeploySpec:
    fields: dict[str, Any] = dict(
        name=f"d-{uuid.uuid4().hex[:8]}",
        package_object="pkg/m/1.zip",
        package_sha256="ab" * 32,
        mini_batch=4,
        num_replicas=2,
        num_gpus=0,
        custom_env=False,
    )
    return DeploySpec(**(fields | overrides))


@pytest.fixture
def world():
    store, serve, packages = MemoryStore(), FakeServe(), FakePackages()
    deployer = Deployer(store, serve, packages, timeout_s=0.3, replica_node_wait_s=0.2, poll_s=0.01)
    return store, serve, packages, deployer


async def deploy(deployer: Deployer, spec: DeploySpec) -> None:
    await deployer.request(spec)
    await asyncio.wait_for(deployer.join(spec.name), 5)


async def test_status_flow_pending_deploying_running(world):
    store, serve, packages, deployer = world
    spec = make_spec()
    store.add(spec)
    packages.gate = asyncio.Event()
    await deployer.request(spec)
    assert store.docs[spec.name]["status"] == "deploying"  # recorded before the request returns
    packages.gate.set()
    await deployer.join(spec.name)
    doc = store.docs[spec.name]
    assert store.history[spec.name] == ["pending", "deploying", "running"]
    assert (doc["error"], doc["ready_replicas"]) == (None, 2)
    (config,) = serve.submitted
    assert (config.name, config.num_replicas, config.mini_batch, config.entrypoint) == (spec.name, 2, 4, "model:Model")
    assert config.num_cpus < 1  # 4 replicas on a 2-core machine must fit


async def test_gpu_request_on_cpu_cluster_fails_at_once_naming_gpus(world):
    store, serve, packages, deployer = world
    spec = make_spec(num_gpus=1, num_replicas=1)
    store.add(spec)
    await deploy(deployer, spec)
    doc = store.docs[spec.name]
    assert doc["status"] == "failed"
    assert doc["error"] == "needs 1 GPU per replica (1 in total) but the Ray cluster has 0 GPUs"
    assert serve.submitted == []


async def test_too_many_replicas_for_cpus_names_cpus(world):
    store, serve, packages, deployer = world
    serve.resources = {"CPU": 0.2, "modelhub_replica": 1.0}
    spec = make_spec(num_replicas=4)
    store.add(spec)
    await deploy(deployer, spec)
    assert "but the Ray cluster has 0.2 CPUs" in store.docs[spec.name]["error"]


async def test_failed_replica_ends_failed_with_the_exception_and_app_deleted(world):
    store, serve, packages, deployer = world
    traceback = "\n".join(
        ["Deploying app failed:", "Traceback (most recent call last):"]
        + [f'  File "x.py", line {i}, in f' for i in range(40)]
        + ["RuntimeError: weights file is missing"]
    )
    serve.outcome = AppState("DEPLOY_FAILED", traceback, 0)
    spec = make_spec()
    store.add(spec)
    await deploy(deployer, spec)
    doc = store.docs[spec.name]
    assert doc["status"] == "failed"
    assert doc["error"].endswith("RuntimeError: weights file is missing")
    assert len(doc["error"].splitlines()) <= 8  # trimmed, not the whole traceback
    assert spec.name in serve.deleted and spec.name not in serve.apps


async def test_deploy_that_never_gets_ready_times_out_and_is_deleted(world):
    store, serve, packages, deployer = world
    serve.outcome = AppState("DEPLOYING", "Deployment is waiting for resources", 0)
    spec = make_spec()
    store.add(spec)
    await deploy(deployer, spec)
    error = store.docs[spec.name]["error"]
    assert store.docs[spec.name]["status"] == "failed"
    assert "timeout" in error and "waiting for resources" in error
    assert spec.name not in serve.apps


async def test_stop_wins_over_a_deploy_in_flight(world):
    store, serve, packages, deployer = world
    spec = make_spec()
    store.add(spec)
    packages.gate = asyncio.Event()
    await deployer.request(spec)
    await deployer.stop(spec.name)
    packages.gate.set()
    await deployer.join(spec.name)
    assert store.history[spec.name] == ["pending", "deploying", "stopping", "stopped"]
    assert serve.submitted == [] and spec.name in serve.deleted
    await deployer.request(spec)  # the request redelivered after the stop: still stopped
    await deployer.join(spec.name)
    assert store.docs[spec.name]["status"] == "stopped" and serve.submitted == []


async def test_stop_of_running_deployment(world):
    store, serve, packages, deployer = world
    spec = make_spec()
    store.add(spec)
    await deploy(deployer, spec)
    await deployer.stop(spec.name)
    await deployer.stop(spec.name)  # redelivered stop
    doc = store.docs[spec.name]
    assert (doc["status"], doc["ready_replicas"]) == ("stopped", 0)
    assert spec.name not in serve.apps
    assert store.history[spec.name][-2:] == ["stopping", "stopped"]


async def test_redelivered_request_changes_nothing(world):
    store, serve, packages, deployer = world
    spec = make_spec()
    store.add(spec)
    packages.gate = asyncio.Event()
    await deployer.request(spec)
    await deployer.request(spec)  # redelivered while deploying
    packages.gate.set()
    await deployer.join(spec.name)
    await deploy(deployer, spec)  # redelivered once running
    assert len(serve.submitted) == 1
    assert store.history[spec.name] == ["pending", "deploying", "running"]


async def test_request_for_another_spec_than_recorded_is_ignored(world):
    store, serve, packages, deployer = world
    spec = make_spec()
    store.add(spec)
    await deploy(deployer, dataclasses.replace(spec, num_replicas=9))
    assert store.docs[spec.name]["status"] == "pending" and serve.submitted == []


async def test_reconcile_redeploys_lost_apps_and_finishes_stops(world):
    store, serve, packages, deployer = world
    deploying, running_lost, running_ok, stopping = (make_spec() for _ in range(4))
    store.add(deploying, "deploying")
    store.add(running_lost, "running")
    store.add(running_ok, "running")
    store.add(stopping, "stopping")
    serve.apps[running_ok.name] = AppState("RUNNING", "", 2)
    await deployer.reconcile()
    for spec in (deploying, running_lost):
        await deployer.join(spec.name)
    assert {c.name for c in serve.submitted} == {deploying.name, running_lost.name}
    assert store.docs[deploying.name]["status"] == "running"
    assert store.docs[running_lost.name]["status"] == "running"
    assert store.docs[stopping.name]["status"] == "stopped"


class RecordingDeployer:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def request(self, spec: DeploySpec) -> None:
        self.calls.append(("request", spec))

    async def refuse(self, name: str, reason: str) -> None:
        self.calls.append(("refuse", name, reason))

    async def stop(self, name: str) -> None:
        self.calls.append(("stop", name))


class FixedAuthorizer:
    def __init__(self, refusal: str | None) -> None:
        self.refusal = refusal

    async def deploy_refusal(self, event) -> str | None:
        return self.refusal

    async def stop_refusal(self, event) -> str | None:
        return self.refusal


def requested_by(user: str) -> DeploymentRequested:
    return DeploymentRequested(
        deployment="d1",
        model="m",
        version=1,
        package_object="o",
        package_sha256="s",
        mini_batch=2,
        num_replicas=1,
        num_gpus=0,
        custom_env=False,
        requested_by=user,
    )


async def test_events_from_users_without_rights_change_nothing_but_the_status():
    deployer = RecordingDeployer()
    broker = NatsBroker()
    register(broker, deployer, FixedAuthorizer("user 'eve' may not run model 'm'"))  # type: ignore[arg-type]
    event = requested_by("eve")
    async with TestNatsBroker(broker) as br:
        await br.publish(event, subjects.DEPLOYMENT_REQUESTED, stream=subjects.STREAM)
        await br.publish(
            DeploymentStopRequested(deployment="d1", requested_by="eve"),
            subjects.DEPLOYMENT_STOP_REQUESTED,
            stream=subjects.STREAM,
        )
    assert deployer.calls == [("refuse", "d1", "user 'eve' may not run model 'm'")]


async def test_handlers_hand_typed_events_to_the_use_cases():
    recording = RecordingDeployer()
    calls = recording.calls
    broker = NatsBroker()
    register(broker, recording, FixedAuthorizer(None))  # type: ignore[arg-type]
    event = requested_by("bob")
    async with TestNatsBroker(broker) as br:
        await br.publish(event, subjects.DEPLOYMENT_REQUESTED, stream=subjects.STREAM)
        await br.publish(
            DeploymentStopRequested(deployment="d1", requested_by="bob"),
            subjects.DEPLOYMENT_STOP_REQUESTED,
            stream=subjects.STREAM,
        )
        with pytest.raises(ValidationError):  # a malformed event is refused, never handed on
            await br.publish({"deployment": "d1"}, subjects.DEPLOYMENT_REQUESTED, stream=subjects.STREAM)
    assert calls == [("request", DeploySpec.from_event(event)), ("stop", "d1")]


async def test_no_replica_node_fails_with_how_to_add_one_and_submits_nothing(world):
    store, serve, packages, deployer = world
    serve.resources = {"CPU": 8.0}  # a head alone: it never advertises modelhub_replica
    spec = make_spec()
    store.add(spec)
    await deploy(deployer, spec)
    error = store.docs[spec.name]["error"]
    assert store.docs[spec.name]["status"] == "failed"
    assert "no Ray node offers the modelhub_replica resource" in error
    assert """--resources '{"modelhub_replica": 1}'""" in error
    assert serve.submitted == []


async def test_a_replica_node_that_joins_late_is_waited_for(world):
    store, serve, packages, deployer = world
    serve.resources = {"CPU": 2.0}
    spec = make_spec()
    store.add(spec)
    packages.gate = asyncio.Event()
    await deployer.request(spec)
    serve.resources = {"CPU": 4.0, "modelhub_replica": 1.0}  # a node rejoins (e.g. after a head restart)
    packages.gate.set()
    await asyncio.wait_for(deployer.join(spec.name), 5)
    assert store.docs[spec.name]["status"] == "running", store.docs[spec.name]["error"]


async def test_replicas_get_the_package_by_id_and_sha256_not_by_a_path(world):
    store, serve, packages, deployer = world
    spec = make_spec()
    store.add(spec)
    await deploy(deployer, spec)
    (config,) = serve.submitted
    assert (config.package_id, config.package_sha256) == (spec.package_object, spec.package_sha256)
    assert not hasattr(config, "package_dir")


async def test_the_batch_window_reaches_the_replicas_and_older_documents_get_the_default(world):
    store, serve, packages, deployer = world
    spec = make_spec(batch_wait_ms=7.5)
    store.add(spec)
    store.docs[spec.name]["batch_wait_ms"] = 7.5  # what the gateway writes with the spec
    await deploy(deployer, spec)
    assert store.docs[spec.name]["status"] == "running"
    assert serve.submitted[0].batch_wait_ms == 7.5
    older = {k: v for k, v in store.docs[spec.name].items() if k != "batch_wait_ms"}
    assert DeploySpec.from_doc(cast(Deployment, older)).batch_wait_ms == DEFAULT_BATCH_WAIT_MS


async def test_a_stopped_deployment_s_package_leaves_the_cluster_store_unless_still_in_use(world):
    store, serve, packages, deployer = world
    first, second = make_spec(package_sha256="cd" * 32), make_spec(package_sha256="cd" * 32)
    for spec in (first, second):
        store.add(spec)
        await deploy(deployer, spec)
    await deployer.stop(first.name)
    assert serve.dropped == []  # the second deployment still runs that package
    await deployer.stop(second.name)
    assert serve.dropped == ["cd" * 32]


# ------------------------------------------------- Serve's own features; following Serve after running


async def test_autoscaling_and_a_gpu_fraction_reach_the_replica_config(world):
    store, serve, _, deployer = world
    spec = make_spec(num_replicas=5, num_gpus=0.5, min_replicas=1, max_replicas=3)
    serve.resources = {"CPU": 2.0, "GPU": 2.0, "modelhub_replica": 1.0}
    store.add(spec)
    await deploy(deployer, spec)
    (config,) = serve.submitted
    assert (config.num_replicas, config.min_replicas, config.max_replicas, config.num_gpus) == (3, 1, 3, 0.5)
    assert store.docs[spec.name]["serve_secret"] == config.secret and len(config.secret) >= 32


async def test_a_gpu_fraction_is_checked_against_the_cluster(world):
    store, serve, _, deployer = world
    spec = make_spec(num_replicas=3, num_gpus=0.5)
    serve.resources = {"CPU": 2.0, "GPU": 1.0, "modelhub_replica": 1.0}
    store.add(spec)
    await deploy(deployer, spec)
    assert store.docs[spec.name]["status"] == "failed"
    assert "needs 0.5 GPU per replica (1.5 in total) but the Ray cluster has 1 GPUs" in store.docs[spec.name]["error"]


def test_the_application_config_is_plain_json_with_autoscaling_or_a_fixed_count():
    from modelhub_deployer.serving import application_config

    base: dict[str, Any] = dict(
        name="d",
        package_id="p",
        package_sha256="ab" * 32,
        package_zip=Path("/x.zip"),
        entrypoint="model:Model",
        mini_batch=4,
        num_cpus=0.1,
        num_gpus=0.25,
        secret="s",
    )
    fixed = application_config(ReplicaConfig(num_replicas=2, **base), "gcs://r.zip", "gcs://m.zip")
    (dep,) = fixed["deployments"]
    assert dep["num_replicas"] == 2 and "autoscaling_config" not in dep
    assert dep["ray_actor_options"]["num_gpus"] == 0.25
    assert dep["ray_actor_options"]["runtime_env"]["py_modules"] == ["gcs://r.zip", "gcs://m.zip"]
    assert fixed["import_path"] == "modelhub_replica:build" and fixed["route_prefix"] == "/d"
    assert fixed["args"]["secret"] == "s" and fixed["args"]["direct"] is True
    scaled = application_config(
        ReplicaConfig(num_replicas=1, min_replicas=0, max_replicas=4, **base), "gcs://r.zip", "gcs://m.zip"
    )
    (dep,) = scaled["deployments"]
    assert "num_replicas" not in dep
    assert scaled["args"]["direct"] is False  # Serve scales on the calls its proxy sees
    assert {"min_replicas": 0, "max_replicas": 4, "initial_replicas": 1}.items() <= dep["autoscaling_config"].items()
    # Serve's own defaults when none was asked for: 600 s, and its 30 s look-back
    assert (dep["autoscaling_config"]["downscale_delay_s"], dep["autoscaling_config"]["look_back_period_s"]) == (
        600,
        30,
    )
    quick = application_config(
        ReplicaConfig(num_replicas=1, min_replicas=0, max_replicas=1, scale_down_delay_s=5, **base), "r", "m"
    )
    (dep,) = quick["deployments"]
    # idle for 5 s is idle: the load is not averaged over a longer window than that
    assert (dep["autoscaling_config"]["downscale_delay_s"], dep["autoscaling_config"]["look_back_period_s"]) == (5, 5)
    import json

    assert json.loads(json.dumps(scaled)) == scaled


async def test_following_serve_records_a_lost_replica_and_its_reason_then_clears_it(world):
    store, serve, _, deployer = world
    spec = make_spec()
    store.add(spec)
    await deploy(deployer, spec)
    await deployer.follow()
    assert (store.docs[spec.name]["ready_replicas"], store.docs[spec.name]["error"]) == (2, None)
    serve.apps[spec.name] = AppState("DEPLOYING", "Deployment 'ModelReplica' failed to start: boom-91", 1)
    await deployer.follow()
    doc = store.docs[spec.name]
    assert (doc["status"], doc["ready_replicas"]) == ("running", 1) and "boom-91" in doc["error"]
    assert store.history[spec.name][-1] == "running"  # no status move, only what Serve says
    serve.apps[spec.name] = AppState("RUNNING", "", 2)
    await deployer.follow()
    assert (store.docs[spec.name]["ready_replicas"], store.docs[spec.name]["error"]) == (2, None)


async def test_following_serve_redeploys_an_application_that_is_gone(world):
    store, serve, _, deployer = world
    spec = make_spec()
    store.add(spec)
    await deploy(deployer, spec)
    serve.apps.clear()  # the Ray head restarted: Serve starts empty
    await deployer.follow()
    await asyncio.wait_for(deployer.join(spec.name), 5)
    assert len(serve.submitted) == 2 and store.docs[spec.name]["status"] == "running"
    assert store.history[spec.name][-2:] == ["deploying", "running"]


class RestartingServe(FakeServe):
    """Ray's dashboard down for the first `down` calls (its head restarting), then back."""

    def __init__(self, down: int) -> None:
        super().__init__()
        self.down = down

    def _maybe_down(self) -> None:
        if self.down > 0:
            self.down -= 1
            raise ServeUnavailable("the Ray dashboard did not answer GET /api/v0/nodes: ConnectError")

    async def cluster_resources(self) -> dict[str, float]:
        self._maybe_down()
        return await super().cluster_resources()

    async def app_state(self, name: str) -> AppState | None:
        self._maybe_down()
        return await super().app_state(name)


async def test_a_deploy_asked_for_while_ray_restarts_waits_for_it_and_runs():
    store, serve = MemoryStore(), RestartingServe(down=3)
    deployer = Deployer(store, serve, FakePackages(), timeout_s=0.3, replica_node_wait_s=0.5, poll_s=0.01)
    spec = make_spec()
    store.add(spec)
    await deploy(deployer, spec)
    assert store.docs[spec.name]["status"] == "running", store.docs[spec.name]["error"]
    assert serve.down == 0 and len(serve.submitted) == 1


async def test_a_ray_that_never_answers_fails_the_deploy_with_the_reason_after_the_wait():
    store, serve = MemoryStore(), RestartingServe(down=10**6)
    deployer = Deployer(store, serve, FakePackages(), timeout_s=0.3, replica_node_wait_s=0.1, poll_s=0.01)
    spec = make_spec()
    store.add(spec)
    await deploy(deployer, spec)
    doc = store.docs[spec.name]
    assert doc["status"] == "failed" and serve.submitted == []
    assert doc["error"].startswith("Ray did not answer for 0.1 s: the Ray dashboard did not answer")


async def test_a_model_process_that_died_shows_in_the_deployment_with_its_reason(world):
    store, serve, packages, deployer = world
    spec = make_spec()
    store.add(spec)
    await deploy(deployer, spec)
    serve.model_processes[spec.name] = {"jailed": True, "restarts": 0, "last_death": None}
    await deployer.follow()
    assert store.docs[spec.name]["model_process"] == {"jailed": True, "restarts": 0, "last_death": None}
    death = {"jailed": True, "restarts": 1, "last_death": "exited with code 3; its last output:\nboom"}
    serve.model_processes[spec.name] = death
    await deployer.follow()
    assert store.docs[spec.name]["model_process"] == death and store.docs[spec.name]["status"] == "running"
    serve.model_processes[spec.name] = {"jailed": True, "restarts": 0, "last_death": None}  # another replica
    await deployer.follow()
    assert store.docs[spec.name]["model_process"] == death  # the latest death stays


# ------------------------------------------------- the package's own environment (custom_env)


class FilePackages:
    """A package unpacked in a temp folder, with the files a test gives it."""

    def __init__(self, root: Path, files: dict[str, str]) -> None:
        self.root = root
        for name, text in files.items():
            (root / name).write_text(text)

    async def prepare(self, name: str, package_object: str, sha256: str) -> PreparedPackage:
        has = lambda f: (self.root / f).exists()  # noqa: E731
        return PreparedPackage(
            self.root, self.root / "package.zip", "model:Model", has("requirements.txt"), has("environment.yml")
        )


def env_world(tmp_path: Path, files: dict[str, str], host: Host) -> tuple[MemoryStore, FakeServe, Deployer]:
    store, serve = MemoryStore(), FakeServe()
    deployer = Deployer(store, serve, FilePackages(tmp_path, files), timeout_s=0.3, poll_s=0.01, host=host)
    return store, serve, deployer


async def test_a_conda_only_environment_fails_at_once_naming_the_packages_and_submits_nothing(tmp_path):
    environment = "dependencies:\n  - numpy\n  - cudatoolkit=11.8\n  - cudnn\n"
    store, serve, deployer = env_world(tmp_path, {"environment.yml": environment}, Host(conda=None))
    spec = make_spec(custom_env=True)
    store.add(spec)
    await deploy(deployer, spec)  # bounded: 5 s, far below any deploy timeout
    doc = store.docs[spec.name]
    assert store.history[spec.name] == ["pending", "deploying", "failed"]
    assert doc["error"].startswith("custom_env: environment.yml needs what pip cannot install")
    assert "cudatoolkit=11.8" in doc["error"] and "cudnn" in doc["error"]
    assert serve.submitted == [] and doc.get("environment") is None


async def test_the_route_taken_is_recorded_and_its_runtime_env_reaches_the_replicas(tmp_path):
    environment = "dependencies:\n  - python=3.11\n  - conda-forge::numpy=1.26\n  - pip:\n      - roman==5.2\n"
    store, serve, deployer = env_world(tmp_path, {"environment.yml": environment}, Host(conda=None))
    spec = make_spec(custom_env=True)
    store.add(spec)
    await deploy(deployer, spec)
    doc = store.docs[spec.name]
    assert doc["status"] == "running", doc["error"]
    assert doc["environment"]["route"] == "pip" and doc["environment"]["file"] == "environment.yml"
    assert doc["environment"]["packages"] == ["numpy==1.26.*", "roman==5.2"]
    assert serve.submitted[0].runtime_env == {"pip": ["numpy==1.26.*", "roman==5.2"]}


async def test_with_conda_on_the_node_environment_yml_takes_the_conda_route(tmp_path):
    files = {"environment.yml": "dependencies:\n  - cudatoolkit=11.8\n", "requirements.txt": "roman\n"}
    store, serve, deployer = env_world(tmp_path, files, Host(conda="/opt/conda/bin/conda"))
    spec = make_spec(custom_env=True)
    store.add(spec)
    await deploy(deployer, spec)
    doc = store.docs[spec.name]
    assert doc["environment"]["route"] == "conda" and "requirements.txt is not used" in doc["environment"]["reason"]
    assert serve.submitted[0].runtime_env == {"conda": {"dependencies": ["cudatoolkit=11.8"]}}


async def test_requirements_txt_alone_is_recorded_as_the_pip_route(tmp_path):
    store, serve, deployer = env_world(tmp_path, {"requirements.txt": "humanize==4.9.0\n"}, Host(conda=None))
    spec = make_spec(custom_env=True)
    store.add(spec)
    await deploy(deployer, spec)
    assert store.docs[spec.name]["environment"] == {
        "route": "pip",
        "file": "requirements.txt",
        "packages": ["humanize==4.9.0"],
        "skipped": [],
        "reason": "pip installs requirements.txt",
    }
    assert serve.submitted[0].runtime_env == {"pip": ["humanize==4.9.0"]}


async def test_without_custom_env_the_package_s_files_are_not_used(tmp_path):
    store, serve, deployer = env_world(tmp_path, {"environment.yml": "dependencies: [cudnn]\n"}, Host(conda=None))
    spec = make_spec(custom_env=False)
    store.add(spec)
    await deploy(deployer, spec)
    assert store.docs[spec.name]["status"] == "running" and store.docs[spec.name]["environment"] is None
    assert serve.submitted[0].runtime_env == {}


def test_serve_gets_the_planned_environment_as_content_and_still_reads_a_file_path(tmp_path):
    from modelhub_deployer.serving import application_config

    def env_of(runtime_env: dict) -> dict:
        config = ReplicaConfig("d", "p", "ab" * 32, Path("/x.zip"), "model:Model", 1, 1, 0.1, 0, runtime_env)
        return application_config(config, "gcs://r.zip", "gcs://m.zip")["deployments"][0]["ray_actor_options"][
            "runtime_env"
        ]

    conda = {"channels": ["conda-forge"], "dependencies": ["numpy"]}
    assert env_of({"pip": ["roman==5.2"]})["pip"] == ["roman==5.2"]
    assert env_of({"conda": conda})["conda"] == conda
    (tmp_path / "requirements.txt").write_text("# c\nroman\n\n")
    assert env_of({"pip": str(tmp_path / "requirements.txt")})["pip"] == ["roman"]


async def test_scale_to_zero_reaches_serve_and_zero_ready_replicas_stay_running_unprobed(world):
    store, serve, _, deployer = world
    spec = make_spec(num_replicas=1, min_replicas=0, max_replicas=2, scale_down_delay_s=7.5)
    store.add(spec)
    await deploy(deployer, spec)
    (config,) = serve.submitted
    assert (config.num_replicas, config.min_replicas, config.max_replicas, config.scale_down_delay_s) == (1, 0, 2, 7.5)
    store.docs[spec.name]["serve_secret"] = "s"
    serve.apps[spec.name] = AppState("RUNNING", "", 0)  # idle: Serve took the last replica away
    await deployer.follow()
    doc = store.docs[spec.name]
    assert (doc["status"], doc["ready_replicas"], doc["error"]) == ("running", 0, None)
    assert store.history[spec.name][-1] == "running"
    # the model-process probe goes through Serve's proxy: it would count as load and wake it
    assert serve.probed == []
    other = make_spec(num_replicas=1, min_replicas=1, max_replicas=2)
    store.add(other)
    await deploy(deployer, other)
    assert serve.probed == [other.name]  # once as it is deployed: Serve's proxy warmed for its first job
    store.docs[other.name]["serve_secret"] = "s"
    await deployer.follow()
    assert serve.probed == [other.name, other.name]


async def test_a_deployment_reads_running_only_after_one_call_through_serves_proxy(world):
    store, serve, _, deployer = world
    spec = make_spec(num_replicas=2)
    store.add(spec)
    seen: list[str] = []
    probe = serve.model_process

    async def model_process(name: str, secret: str) -> dict | None:
        seen.append(store.docs[name]["status"])
        assert secret == store.docs[name]["serve_secret"]  # this deploy's secret
        return await probe(name, secret)

    serve.model_process = model_process
    await deploy(deployer, spec)
    assert seen == ["deploying"] and store.docs[spec.name]["status"] == "running"


def test_a_deployment_request_without_a_delay_reads_with_serves_default():
    old = DeploymentRequested.model_validate(
        {
            "schema_version": 2,
            "deployment": "d",
            "model": "m",
            "version": 1,
            "package_object": "p",
            "package_sha256": "ab" * 32,
            "mini_batch": 1,
            "num_replicas": 1,
            "num_gpus": 0,
            "custom_env": False,
            "requested_by": "ann",
            "min_replicas": 0,
            "max_replicas": 1,
        }
    )
    spec = DeploySpec.from_event(old)
    assert (spec.scale_down_delay_s, spec.scales_to_zero) == (None, True)
    assert old.schema_version == DeploymentRequested(**old.model_dump()).schema_version == 2  # an optional addition
