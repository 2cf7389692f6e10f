"""Deployer use cases: deploy, stop and reconcile deployments as Ray Serve applications.

Status flow (the `deployments` document): pending -> deploying -> running, or -> failed with
an error message; a stop goes -> stopping -> stopped from any of them, and wins over a deploy
in flight. Each status move is a compare-and-set in the store, so a late deploy result can
never overwrite a stop. Plain async code over three small ports (store, Serve, packages),
so it is tested with fakes.
"""

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from modelhub_contracts.documents import ACTIVE_DEPLOYMENT_STATES, DEPLOYABLE, STOPPABLE, Deployment, DeploymentStatus
from modelhub_contracts.events import DEFAULT_BATCH_WAIT_MS, DEFAULT_SCALE_DOWN_DELAY_S, DeploymentRequested
from modelhub_contracts.mlmodel import MLmodelError
from modelhub_deployer import environments, mlflow_env

log = logging.getLogger(__name__)
T = TypeVar("T")

# A replica of a small model should not reserve a whole core: 4 replicas on 2 cores is normal.
REPLICA_NUM_CPUS = 0.1
DEPLOY_TIMEOUT_S = 300.0
CUSTOM_ENV_TIMEOUT_S = 1800.0  # building a pip/conda environment takes a while
# Replicas run only on Ray nodes that advertise this resource (modelhub up's sealed replica nodes,
# or `ray start --resources '{"modelhub_replica": 1}'`); the name is replica.REPLICA_RESOURCE.
REPLICA_RESOURCE = "modelhub_replica"
# How long a deploy waits for a replica node to join (after a Ray head restart they rejoin).
REPLICA_NODE_WAIT_S = 120.0
_LIVE_APP = {"RUNNING", "DEPLOYING", "UNHEALTHY"}  # Serve is serving or healing it itself
_FAILED_APP = {"DEPLOY_FAILED", "UNHEALTHY"}


@dataclass(frozen=True)
class ReplicaConfig:
    """Everything Serve needs to run one deployment's replicas."""

    name: str
    package_id: str  # the version's package object: replicas fetch it by this id and sha-256
    package_sha256: str
    package_zip: Path  # the verified zip on the deployer's disk, handed to the cluster's store
    entrypoint: str
    mini_batch: int
    num_replicas: int
    num_cpus: float
    num_gpus: float
    runtime_env: dict = field(default_factory=dict)  # "pip": [lines] or "conda": {environment}
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS
    secret: str = ""  # the replicas answer only callers that send it (the inference worker)
    min_replicas: int = 0  # with max_replicas: Serve autoscales in between, from num_replicas
    max_replicas: int = 0
    scale_down_delay_s: float = DEFAULT_SCALE_DOWN_DELAY_S  # with max_replicas: Serve's downscale_delay_s


@dataclass(frozen=True)
class AppState:
    """What Serve reports about one application."""

    status: str  # ray.serve ApplicationStatus value: DEPLOYING, RUNNING, DEPLOY_FAILED, ...
    message: str
    ready_replicas: int


class ServeUnavailable(Exception):
    """Ray's API did not answer at all (its head or dashboard restarting): a deploy waits for it,
    within its bounds, instead of failing at once as it does on a refusal."""


class DeployError(Exception):
    """A deployment cannot run; the message is shown to the user as the deployment's error."""


@dataclass(frozen=True)
class DeploySpec:
    """What to deploy; equal specs mean a redelivered (or reconciled) request."""

    name: str
    package_object: str
    package_sha256: str
    mini_batch: int
    num_replicas: int
    num_gpus: float
    custom_env: bool
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS
    min_replicas: int | None = None  # autoscaling between these two when max_replicas is set
    max_replicas: int | None = None
    scale_down_delay_s: float | None = None  # with max_replicas; None: DEFAULT_SCALE_DOWN_DELAY_S

    @classmethod
    def from_event(cls, event: DeploymentRequested) -> "DeploySpec":
        return cls(
            event.deployment,
            event.package_object,
            event.package_sha256,
            event.mini_batch,
            event.num_replicas,
            event.num_gpus,
            event.custom_env,
            event.batch_wait_ms,
            event.min_replicas,
            event.max_replicas,
            event.scale_down_delay_s,
        )

    @classmethod
    def from_doc(cls, doc: Deployment) -> "DeploySpec":
        return cls(
            doc["_id"],
            doc["package_object"],
            doc["package_sha256"],
            doc["mini_batch"],
            doc["num_replicas"],
            doc["num_gpus"],
            bool(doc.get("custom_env")),
            float(doc.get("batch_wait_ms", DEFAULT_BATCH_WAIT_MS)),
            doc.get("min_replicas"),
            doc.get("max_replicas"),
            doc.get("scale_down_delay_s"),
        )

    @property
    def autoscaling(self) -> bool:
        return self.max_replicas is not None

    @property
    def scales_to_zero(self) -> bool:
        """Serve may take every replica away while the deployment is idle (it stays running)."""
        return self.autoscaling and not self.min_replicas

    @property
    def initial_replicas(self) -> int:
        """Replicas at the start: num_replicas, kept between min_replicas and max_replicas."""
        if self.max_replicas is None:  # not autoscaling
            return self.num_replicas
        return max(self.min_replicas or 0, min(self.num_replicas, self.max_replicas))


@dataclass(frozen=True)
class PreparedPackage:
    """A package checked and unpacked on the deployer's disk (its pip/conda files are read here);
    `zip` is the verified original, which replicas get through the cluster's own store."""

    root: Path
    zip: Path
    entrypoint: str
    has_requirements: bool
    has_environment: bool
    format: str = "python"  # package.PackageInfo.format: "mlflow" is checked by check_mlflow


class Store(Protocol):
    async def get(self, name: str) -> Deployment | None: ...
    async def move(
        self, name: str, *, from_: Iterable[DeploymentStatus], to: DeploymentStatus, **fields: Any
    ) -> bool: ...
    async def note(self, name: str, *, status: DeploymentStatus, **fields: Any) -> bool: ...
    async def with_status(self, statuses: Iterable[DeploymentStatus]) -> list[Deployment]: ...


class Serve(Protocol):
    async def cluster_resources(self) -> dict[str, float]: ...
    async def submit(self, config: ReplicaConfig) -> None: ...
    async def app_state(self, name: str) -> AppState | None: ...

    async def model_process(self, name: str, secret: str) -> dict[str, Any] | None: ...
    async def delete(self, name: str) -> None: ...
    async def drop_package(self, sha256: str) -> None: ...


class Packages(Protocol):
    async def prepare(self, name: str, package_object: str, sha256: str) -> PreparedPackage: ...


def check_resources(spec: DeploySpec, cluster: dict[str, float]) -> None:
    """Fail at once when the cluster can never hold the replicas, instead of pending forever."""
    missing = []
    for resource, per_replica in (("GPU", spec.num_gpus), ("CPU", REPLICA_NUM_CPUS)):
        total, have = per_replica * max(spec.initial_replicas, 1), cluster.get(resource, 0.0)
        if per_replica and total > have + 1e-9:
            missing.append(
                f"needs {per_replica:g} {resource} per replica ({total:g} in total) "
                f"but the Ray cluster has {have:g} {resource}s"
            )
    if missing:
        raise DeployError("; ".join(missing))


def trim_message(text: str, tail: int = 6, max_chars: int = 2000) -> str:
    """Serve's messages carry whole tracebacks: keep the headline and the last lines (the error)."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip(" ^~\t")]  # no carets
    if len(lines) > tail + 1:
        lines = [lines[0], "..."] + lines[-tail:]
    return "\n".join(lines)[-max_chars:]


def runtime_env(spec: DeploySpec, package: PreparedPackage, host: environments.Host) -> environments.Plan | None:
    """How the replicas' environment is built (environments.py): None without custom_env.
    Raises DeployError, before anything reaches Ray, for an environment that cannot be built."""
    if not spec.custom_env:
        return None
    try:
        if package.has_environment:
            return environments.from_environment(package.root, host, package.has_requirements)
        if package.has_requirements:
            return environments.from_requirements(package.root)
        if package.format == "mlflow" and (pip := mlflow_env.python_env_pip(package.root)):
            return environments.Plan(
                route="pip",
                file=mlflow_env.PYTHON_ENV,
                packages=tuple(pip),
                runtime_env={"pip": pip},
                reason="pip installs the MLflow model's python_env.yaml dependencies",
            )
    except environments.Refused as exc:
        raise DeployError(f"custom_env: {exc}") from exc
    except MLmodelError as exc:
        raise DeployError(f"custom_env: {exc}") from exc
    if package.format == "mlflow":
        raise DeployError(
            "custom_env is set but the MLflow model has no requirements.txt, environment.yml or python_env.yaml"
        )
    raise DeployError("custom_env is set but the package has neither environment.yml nor requirements.txt")


def check_mlflow(spec: DeploySpec, package: PreparedPackage) -> None:
    """An MLflow model that its environment cannot serve fails the deploy at once, saying why:
    without custom env, one whose flavor needs packages the hub does not provide; with it, one
    whose python_env.yaml asks for another Python than the replicas'."""
    if package.format != "mlflow":
        return
    try:
        if spec.custom_env:
            why = mlflow_env.python_refusal(package.root)
        else:
            why = mlflow_env.hub_refusal(mlflow_env.read_mlmodel(package.root), package.root, mlflow_env.hub_packages())
    except MLmodelError as exc:
        why = str(exc)
    if why:
        raise DeployError(why)


async def _uninterrupted(awaitable: Awaitable[T]) -> T:
    """Let a Ray call running in a thread finish even if we are cancelled: a thread cannot be
    interrupted, and a stop's serve.delete must come after the deploy it cancels."""
    inner = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(inner)
    except asyncio.CancelledError:
        await asyncio.wait([inner])
        raise


class Deployer:
    """Runs deployments in background tasks, one per deployment name."""

    def __init__(
        self,
        store: Store,
        serve: Serve,
        packages: Packages,
        *,
        timeout_s: float = DEPLOY_TIMEOUT_S,
        custom_env_timeout_s: float = CUSTOM_ENV_TIMEOUT_S,
        replica_node_wait_s: float = REPLICA_NODE_WAIT_S,
        poll_s: float = 0.5,
        host: environments.Host | None = None,
    ) -> None:
        self._store, self._serve, self._packages = store, serve, packages
        self._host = host or environments.Host()  # app.py detects conda; without: the pip route
        self._timeout_s, self._custom_env_timeout_s = timeout_s, custom_env_timeout_s
        self._replica_node_wait_s = replica_node_wait_s
        self._poll_s = poll_s
        self._tasks: dict[str, asyncio.Task] = {}

    async def request(self, spec: DeploySpec) -> None:
        """Record `deploying` and start deploying in the background. Returns once recorded.

        A request that is already in flight, already running with the same spec, stale (the
        document describes another spec) or finished (failed/stopping/stopped) changes nothing.
        """
        if self._in_flight(spec.name):
            return
        doc = await self._store.get(spec.name)
        if doc is None or DeploySpec.from_doc(doc) != spec:
            log.warning("ignoring deployment request for %s: no such deployment or another spec", spec.name)
            return
        status = doc["status"]
        if status not in DEPLOYABLE:
            return
        if status == DeploymentStatus.RUNNING and await self._is_live(spec.name):
            return
        moved = await self._store.move(
            spec.name, from_=(status,), to=DeploymentStatus.DEPLOYING, error=None, ready_replicas=0
        )
        if moved and not self._in_flight(spec.name):
            self._tasks[spec.name] = asyncio.create_task(self._deploy(spec), name=f"deploy:{spec.name}")

    async def refuse(self, name: str, reason: str) -> None:
        """A request its acting user was not allowed to make: pending -> failed, nothing deployed."""
        await self._store.move(
            name, from_=(DeploymentStatus.PENDING,), to=DeploymentStatus.FAILED, error=reason, ready_replicas=0
        )

    async def stop(self, name: str) -> None:
        """Delete the Serve application and record `stopped`; cancels a deploy in flight."""
        moved = await self._store.move(name, from_=STOPPABLE, to=DeploymentStatus.STOPPING)
        if not moved:
            return  # unknown or already stopped: a redelivered stop
        await self._cancel(name)
        await self._serve.delete(name)
        await self._store.move(name, from_=(DeploymentStatus.STOPPING,), to=DeploymentStatus.STOPPED, ready_replicas=0)
        await self._release_package(name)

    async def _release_package(self, name: str) -> None:
        """Drop a stopped deployment's zip from the cluster's store (it lives in the head's memory)
        unless another live deployment runs the same package; a later deploy puts it back."""
        doc = await self._store.get(name)
        sha = doc.get("package_sha256") if doc else None
        live = await self._store.with_status(ACTIVE_DEPLOYMENT_STATES)
        if sha and not any(d.get("package_sha256") == sha for d in live):
            await self._serve.drop_package(sha)

    async def reconcile(self) -> None:
        """After a restart: finish stops, redo deploys that were in flight or whose app is gone."""
        for doc in await self._store.with_status(ACTIVE_DEPLOYMENT_STATES):
            try:
                if doc["status"] == DeploymentStatus.STOPPING:
                    await self.stop(doc["_id"])
                else:
                    await self.request(DeploySpec.from_doc(doc))
            except Exception:
                log.exception("could not reconcile deployment %s", doc["_id"])

    async def follow(self) -> None:
        """Bring `running` deployments' documents in line with Serve (watch.py calls this): the
        ready replicas and, while Serve reports trouble (a replica lost and not coming back), its
        reason as `error` (cleared once healthy). An application that is gone (the Ray head
        restarted, or someone deleted it) is deployed again."""
        for doc in await self._store.with_status((DeploymentStatus.RUNNING,)):
            name = doc["_id"]
            if self._in_flight(name):
                continue
            try:
                state = await self._serve.app_state(name)
            except Exception as exc:
                log.warning("could not read Serve's state of %s: %s", name, exc)
                return  # Ray is unreachable: nothing to conclude from it
            if state is None:
                log.warning("the Serve application of running deployment %s is gone; redeploying", name)
                await self.request(DeploySpec.from_doc(doc))
                continue
            # Serve explains trouble in its message; DEPLOYING without one is ordinary (a
            # replica being replaced or added), not worth an error
            if state.status == "RUNNING":
                error = None
            elif state.message:
                error = trim_message(state.message)
            else:
                error = None if state.status == "DEPLOYING" else f"Serve reports {state.status}"
            if (doc.get("ready_replicas"), doc.get("error")) != (state.ready_replicas, error):
                await self._store.note(
                    name, status=DeploymentStatus.RUNNING, ready_replicas=state.ready_replicas, error=error
                )
            await self._follow_model_process(doc)

    async def _follow_model_process(self, doc: Deployment) -> None:
        """A replica's model process that died and was started again: its latest death, and the
        replica's count of restarts, in the deployment's `model_process` (one replica per round,
        the one Serve's proxy picks; a later death replaces an earlier one). Not for a deployment
        that scales to zero: this call goes through Serve's proxy, so Serve would count it as load
        (and wake it from zero) every round, and it would never be idle."""
        secret = doc.get("serve_secret")
        if not secret or DeploySpec.from_doc(doc).scales_to_zero:
            return
        seen = await self._serve.model_process(doc["_id"], secret)
        if not seen:
            return
        known = doc.get("model_process") or {}
        newer_death = seen.get("last_death") and seen["last_death"] != known.get("last_death")
        if newer_death or not known:
            await self._store.note(doc["_id"], status=DeploymentStatus.RUNNING, model_process=seen)

    async def join(self, name: str) -> None:
        """Wait for the deploy in flight for `name`, if any (tests and shutdown)."""
        task = self._tasks.get(name)
        if task is not None:
            await asyncio.wait([task])

    async def close(self) -> None:
        """Abandon deploys in flight; they stay `deploying` and are reconciled on next start."""
        for name in list(self._tasks):
            await self._cancel(name)

    def _in_flight(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and not task.done()

    async def _cancel(self, name: str) -> None:
        task = self._tasks.get(name)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    async def _is_live(self, name: str) -> bool:
        state = await self._serve.app_state(name)
        return state is not None and state.status in _LIVE_APP

    async def _deploy(self, spec: DeploySpec) -> None:
        try:
            state = await self._run(spec)
            await self._store.move(
                spec.name,
                from_=(DeploymentStatus.DEPLOYING,),
                to=DeploymentStatus.RUNNING,
                ready_replicas=state.ready_replicas,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message = str(exc) if isinstance(exc, DeployError) else f"{type(exc).__name__}: {exc}"
            log.warning("deployment %s failed: %s", spec.name, message)
            await self._fail(spec.name, message)
        finally:
            if self._tasks.get(spec.name) is asyncio.current_task():
                del self._tasks[spec.name]

    async def _run(self, spec: DeploySpec) -> AppState:
        check_resources(spec, await self._replica_nodes())
        package = await self._packages.prepare(spec.name, spec.package_object, spec.package_sha256)
        check_mlflow(spec, package)
        env = await asyncio.to_thread(runtime_env, spec, package, self._host)  # reads the package's files
        # A fresh secret per deploy, recorded before Serve has it: the inference worker reads it
        # from the deployment's document and sends it with every call (never shown by the API).
        secret = secrets.token_urlsafe(32)
        await self._store.note(
            spec.name,
            status=DeploymentStatus.DEPLOYING,
            serve_secret=secret,
            environment=env.record() if env else None,
        )
        config = ReplicaConfig(
            name=spec.name,
            package_id=spec.package_object,
            package_sha256=spec.package_sha256,
            package_zip=package.zip,
            entrypoint=package.entrypoint,
            mini_batch=spec.mini_batch,
            num_replicas=spec.initial_replicas,
            num_cpus=REPLICA_NUM_CPUS,
            num_gpus=spec.num_gpus,
            runtime_env=env.runtime_env if env else {},
            batch_wait_ms=spec.batch_wait_ms,
            secret=secret,
            min_replicas=spec.min_replicas or 0,
            max_replicas=spec.max_replicas or 0,
            scale_down_delay_s=spec.scale_down_delay_s or DEFAULT_SCALE_DOWN_DELAY_S,
        )
        await _uninterrupted(self._serve.submit(config))
        state = await self._wait_running(spec)
        if not spec.scales_to_zero:
            # One call through Serve's proxy before the deployment reads "running": the proxy's
            # first call to a new application waits for its routing (~0.3 s measured), which
            # would otherwise be the first job's. Its answer does not matter; no model runs.
            await self._serve.model_process(spec.name, secret)
        return state

    async def _replica_nodes(self) -> dict[str, float]:
        """The cluster's resources once some node offers the replica resource (a bounded wait).
        Ray not answering counts as no node yet: after a head restart the dashboard comes back
        seconds after the head itself, and a deploy asked for meanwhile waits for it."""
        deadline = asyncio.get_running_loop().time() + self._replica_node_wait_s
        while True:
            unavailable: ServeUnavailable | None = None
            try:
                cluster = await self._serve.cluster_resources()
            except ServeUnavailable as exc:
                cluster, unavailable = {}, exc
            if cluster.get(REPLICA_RESOURCE, 0) > 0:
                return cluster
            if asyncio.get_running_loop().time() >= deadline:
                if unavailable is not None:
                    raise DeployError(f"Ray did not answer for {self._replica_node_wait_s:g} s: {unavailable}")
                raise DeployError(
                    f"no Ray node offers the {REPLICA_RESOURCE} resource, so replicas have nowhere "
                    f"to run (waited {self._replica_node_wait_s:g} s): `modelhub up` starts "
                    "--replica-nodes N; add your own with `ray start --address <head> --resources "
                    f"'{{\"{REPLICA_RESOURCE}\": 1}}'`"
                )
            await asyncio.sleep(self._poll_s)

    async def _wait_running(self, spec: DeploySpec) -> AppState:
        timeout = self._custom_env_timeout_s if spec.custom_env else self._timeout_s
        deadline = asyncio.get_running_loop().time() + timeout
        last: AppState | None = None
        while True:
            try:
                state = await self._serve.app_state(spec.name)
            except ServeUnavailable:
                state = None  # Ray restarting: ask again until the deadline
            last = state or last
            if state is not None and state.status == "RUNNING":
                return state
            if state is not None and state.status in _FAILED_APP:
                raise DeployError(trim_message(state.message) or f"Serve reports {state.status}")
            if asyncio.get_running_loop().time() >= deadline:
                detail = f"{last.status}: {trim_message(last.message)}" if last else "no status"
                raise DeployError(f"not running after {timeout:g} s (timeout); last status {detail}")
            await asyncio.sleep(self._poll_s)

    async def _fail(self, name: str, message: str) -> None:
        try:
            await _uninterrupted(self._serve.delete(name))
        except Exception:
            log.exception("could not delete the Serve application of failed deployment %s", name)
        await self._store.move(
            name, from_=(DeploymentStatus.DEPLOYING,), to=DeploymentStatus.FAILED, error=message, ready_replicas=0
        )
