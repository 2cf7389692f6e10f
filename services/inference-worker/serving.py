"""Ray Serve access for the worker: one connection per process, cached handles, bounded calls."""

import asyncio
import logging

import ray
from ray import serve

from modelhub_contracts import subjects

log = logging.getLogger(__name__)


class DeploymentUnavailable(Exception):
    """The Serve application is not there (stopped, failed, or never deployed)."""


class ServeClient:
    """Calls a deployment's `predict_one`, one sample per call; @serve.batch on the replica groups
    concurrent calls into Model.predict batches. In-flight calls are bounded: a flood of unbounded
    handle calls makes Serve's throughput collapse."""

    def __init__(self, address: str, max_in_flight: int = 64) -> None:
        self.address = address
        self.limit = asyncio.Semaphore(max_in_flight)
        self.handles: dict[str, serve.handle.DeploymentHandle] = {}
        self._connected = False

    def _connect(self) -> None:
        if not self._connected:
            ray.init(address=self.address, namespace=subjects.SERVE_NAMESPACE, log_to_driver=False,
                     logging_level=logging.WARNING, ignore_reinit_error=True)
            self._connected = True

    async def connect(self) -> None:
        await asyncio.to_thread(self._connect)

    async def handle(self, deployment: str):
        if deployment not in self.handles:
            try:
                self.handles[deployment] = await asyncio.to_thread(serve.get_app_handle, deployment)
            except Exception as exc:  # Serve raises a plain exception for an unknown app
                raise DeploymentUnavailable(f"deployment '{deployment}' is not available") from exc
        return self.handles[deployment]

    def forget(self, deployment: str) -> None:
        self.handles.pop(deployment, None)

    async def predict_one(self, deployment: str, inputs: dict) -> dict:
        handle = await self.handle(deployment)
        async with self.limit:
            return await getattr(handle, subjects.REPLICA_METHOD).remote(inputs)


def short_error(exc: BaseException) -> str:
    """The useful last line of an exception (Ray wraps the replica's traceback around it)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:500]
