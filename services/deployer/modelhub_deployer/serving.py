"""Ray Serve behind a small async class. Ray's API blocks, so every call runs in a thread."""

import asyncio
from pathlib import Path

import yaml

import ray
from ray import serve
from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_put

from modelhub_contracts import subjects
from modelhub_deployer import deploy
from modelhub_deployer.deploy import AppState, ReplicaConfig
from modelhub_deployer.replica import (PACKAGE_KV_NAMESPACE, REPLICA_RESOURCE, REPLICA_RESOURCE_SHARE,
                                       ModelReplica)

assert subjects.REPLICA_METHOD == "predict_one", "replica.py names the method predict_one"
assert subjects.REPLICA_CHUNK_METHOD == "predict_chunk", "replica.py names the method predict_chunk"
assert deploy.REPLICA_RESOURCE == REPLICA_RESOURCE, "deploy.py and replica.py name one resource"


def start_serve() -> None:
    """Start (or join) Serve without any HTTP proxy: modelhub only calls apps through handles,
    so nothing binds 0.0.0.0 or port 8000 (the gateway's default port)."""
    serve.start(proxy_location="Disabled", http_options={"host": "127.0.0.1"})


class RayServe:
    """Deploys, inspects and deletes Serve applications named after deployments."""

    async def cluster_resources(self) -> dict[str, float]:
        return await asyncio.to_thread(ray.cluster_resources)

    async def submit(self, config: ReplicaConfig) -> None:
        """Hand the application to Serve and return without waiting for replicas."""
        await asyncio.to_thread(self._submit, config)

    async def app_state(self, name: str) -> AppState | None:
        return await asyncio.to_thread(self._app_state, name)

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(serve.delete, name)

    async def drop_package(self, sha256: str) -> None:
        await asyncio.to_thread(_internal_kv_del, sha256, namespace=PACKAGE_KV_NAMESPACE)

    @staticmethod
    def _submit(config: ReplicaConfig) -> None:
        publish_package(config.package_sha256, config.package_zip)
        app = ModelReplica.options(
            name=config.name,
            num_replicas=config.num_replicas,
            max_ongoing_requests=2 * config.mini_batch + 8,
            ray_actor_options={
                "num_cpus": config.num_cpus,
                "num_gpus": config.num_gpus,
                # only replica nodes advertise this: never the head, next to the control plane
                "resources": {REPLICA_RESOURCE: REPLICA_RESOURCE_SHARE},
                "runtime_env": _runtime_env(config),
            },
        ).bind(config.package_id, config.package_sha256, config.entrypoint, config.mini_batch,
               config.batch_wait_ms / 1000)
        # run_many can return before the replicas are up (serve.run waits for RUNNING);
        # route_prefix=None: reachable through handles only.
        serve.run_many([serve.RunTarget(target=app, name=config.name, route_prefix=None)],
                       wait_for_applications_running=False)

    @staticmethod
    def _app_state(name: str) -> AppState | None:
        app = serve.status().applications.get(name)
        if app is None:
            return None
        ready = sum(d.replica_states.get("RUNNING", 0) for d in app.deployments.values())
        messages = [app.message] + [d.message for d in app.deployments.values()]
        message = "\n".join(m for m in messages if m)
        return AppState(status=str(app.status.value), message=message, ready_replicas=ready)


def publish_package(sha256: str, zip_path: Path) -> None:
    """Put the verified zip into the cluster's GCS key-value store under its sha-256, where every
    node can fetch it (replica.fetch_package). Always overwritten: any Ray member can write there,
    so a deploy repairs a tampered entry (and replicas check the sha-256 anyway). Like Ray's own
    runtime_env packages, it is bounded by Ray's gRPC message size (512 MiB, the upload cap)."""
    _internal_kv_put(sha256, Path(zip_path).read_bytes(), overwrite=True,
                     namespace=PACKAGE_KV_NAMESPACE)


def _runtime_env(config: ReplicaConfig) -> dict:
    """No working_dir: replicas fetch the package themselves (by id and sha-256, verified), not
    through a path on the deployer's disk. The pip/conda files are read here so that nothing is
    resolved on the Serve controller."""
    env: dict = {}
    if pip := config.runtime_env.get("pip"):
        lines = Path(pip).read_text().splitlines()
        env["pip"] = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if conda := config.runtime_env.get("conda"):
        env["conda"] = yaml.safe_load(Path(conda).read_text())
    return env
