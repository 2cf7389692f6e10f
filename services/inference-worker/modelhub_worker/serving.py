"""Ray Serve access for the worker: one connection per process, cached handles, bounded calls."""

import asyncio
import logging
import time

import ray
from ray import exceptions as ray_errors
from ray import serve
from ray.serve import exceptions as serve_errors

from modelhub_contracts import subjects, telemetry

from modelhub_worker.errors import DeploymentUnavailable, ServingLost

log = logging.getLogger(__name__)

__all__ = ["DeploymentUnavailable", "ServeClient", "ServingLost", "short_error"]

# Raised by Ray/Serve when no replica answered (it died mid-call, or none is up yet). The model's
# own exceptions arrive as RayTaskError instead and are not among these.
LOST_ERRORS = (ray_errors.RayActorError, ray_errors.ActorUnavailableError,
               serve_errors.DeploymentUnavailableError, serve_errors.ReplicaUnavailableError,
               serve_errors.BackPressureError, serve_errors.RequestCancelledError)


class ServeClient:
    """Calls a deployment's replicas with samples for one Model.predict call each: `predict_chunk`
    with a job task's samples, `predict_batch` with online samples (online.py batches them and
    bounds their calls per deployment). Job calls are bounded per deployment: a flood of unbounded
    handle calls makes Serve's throughput collapse, and one deployment's backlog must not hold
    back calls to another."""

    def __init__(self, address: str, max_in_flight: int = 64, call_timeout: float = 300.0,
                 tel: telemetry.Telemetry | None = None) -> None:
        self.address = address
        self.tel = tel
        # A call that hangs (a replica wedged, an app deleted under it) would keep its task alive
        # through in_progress() forever; past this bound it is retried like a dead replica.
        self.call_timeout = call_timeout
        self.max_in_flight = max_in_flight
        self.limits: dict[str, asyncio.Semaphore] = {}
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

    async def predict_chunk(self, deployment: str, samples: list[dict]) -> list[dict]:
        """Each sample's outputs, from one Model.predict call on all of them (a job's task)."""
        async with self.limits.setdefault(deployment, asyncio.Semaphore(self.max_in_flight)):
            if self.tel is None:
                return await self._call(deployment, subjects.REPLICA_CHUNK_METHOD, samples)
            if not self.tel.enabled:  # metrics only: the replica's reply stays a plain list
                started = time.perf_counter()
                try:
                    return await self._call(deployment, subjects.REPLICA_CHUNK_METHOD, samples)
                finally:
                    self.tel.metrics.serve_call_duration.record(time.perf_counter() - started,
                                                                {"deployment": deployment})
            return await self._traced_call(self.tel, deployment, samples)

    async def _traced_call(self, tel: telemetry.Telemetry, deployment: str, samples: list[dict]) -> list[dict]:
        """The call in a span of its own; the replica gets its context and reports its timing,
        recorded here as the replica's span (service modelhub-replica)."""
        attributes = {telemetry.DEPLOYMENT: deployment, telemetry.BATCH_SIZE: len(samples)}
        with tel.tracer.start_as_current_span("serve call", kind=telemetry.trace.SpanKind.CLIENT,
                                              attributes=attributes) as span:
            started = time.perf_counter()
            try:
                reply = await self._call(deployment, subjects.REPLICA_CHUNK_METHOD, samples,
                                         traceparent=telemetry.current_traceparent())
            finally:
                tel.metrics.serve_call_duration.record(time.perf_counter() - started, {"deployment": deployment})
        if isinstance(reply, dict) and "outputs" in reply:
            if isinstance(reply.get("span"), dict):
                record_replica_span(tel, span, reply["span"], attributes)
            return reply["outputs"]
        return reply

    async def predict_batch(self, deployment: str, samples: list[dict]) -> list[dict]:
        """Like predict_chunk, for online samples: not queued behind jobs' calls (online.py
        bounds these per deployment), and cancelled in Serve when the caller is cancelled."""
        return await self._call(deployment, subjects.REPLICA_CHUNK_METHOD, samples)

    async def _call(self, deployment: str, method: str, payload: object, **kwargs: object):
        handle = await self.handle(deployment)
        try:
            return await asyncio.wait_for(_cancellable(getattr(handle, method).remote(payload, **kwargs)),
                                          self.call_timeout)
        except (*LOST_ERRORS, TimeoutError) as exc:
            self.forget(deployment)  # a fresh handle sees a redeployed or restarted app
            raise ServingLost(f"deployment '{deployment}' gave no answer: {short_error(exc)}") from exc


def record_replica_span(tel: telemetry.Telemetry, parent: telemetry.trace.Span, timing: dict,
                        attributes: dict) -> None:
    """The replica's span, from the timing it reported, as a child of the call's span."""
    try:
        start, end = int(timing["start_ns"]), int(timing["end_ns"])
    except (KeyError, TypeError, ValueError):
        return
    span = tel.replica_tracer().start_span(
        "replica predict_chunk", context=telemetry.trace.set_span_in_context(parent),
        kind=telemetry.trace.SpanKind.SERVER, start_time=start,
        attributes={**attributes, "process.pid": int(timing.get("pid", 0) or 0),
                    "modelhub.predict_ms": round((end - int(timing.get("predict_start_ns", start))) / 1e6, 3)})
    span.end(end_time=end)


async def _cancellable(response):
    """Await a Serve response; when we are cancelled, cancel the request in Serve as well (Ray
    only stops awaiting otherwise, and the replica would still run it for nobody)."""
    try:
        return await response
    except asyncio.CancelledError:
        response.cancel()
        raise


def short_error(exc: BaseException) -> str:
    """The useful last line of an exception (Ray wraps the replica's traceback around it)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:500]
