"""Online predict in the gateway: the checks and bounds a request passes before a worker runs it.

- Inputs are checked against the version's schema, which is cached by package: versions are
  immutable, so only the first request of a deployment reads it from MongoDB.
- Each deployment takes at most `max_in_flight` samples at once through this gateway; past that a
  request is refused at once with 429 and `Retry-After` instead of waiting in a queue whose end
  nobody knows (its latency would grow without bound with the number of clients).
- A request that gets no answer within its `timeout_s` is answered 504; the worker cancels its
  Serve calls at the same deadline, and the sample count is released either way.
"""

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from faststream.nats import NatsBroker
from nats.errors import MaxPayloadError

from modelhub_contracts import subjects
from modelhub_contracts.documents import Deployment, DeploymentStatus, User
from modelhub_contracts.errors import Busy, Conflict, Invalid, TooLarge
from modelhub_contracts.events import DEFAULT_BATCH_WAIT_MS, PredictRequest
from modelhub_contracts.model_schema import input_types, output_types
from modelhub_gateway.bus.rpc import call
from modelhub_gateway.deployments import visible_deployment
from modelhub_gateway.schemas import DEFAULT_MAX_IN_FLIGHT, PredictIn, PredictOut
from modelhub_gateway.store import GatewayStore
from modelhub_runtime.adapters.faststream import lean_request

MAX_PREDICT_VALUES = 10_000
RETRY_AFTER_S = 1
# The worker answers 504 at the request's deadline; the gateway waits this much longer for it.
REPLY_MARGIN_S = 5.0


def check_predict_inputs(body: PredictIn, declared: dict[str, str]) -> int:
    """Every declared input, nothing else, as lists of one equal length (1 to 10,000); else 422.
    Returns that length: the number of samples."""
    if set(body.inputs) != set(declared):
        raise Invalid(
            f"inputs must be exactly the model's: {', '.join(sorted(declared))} "
            f"(got: {', '.join(sorted(body.inputs)) or 'none'})"
        )
    lengths = {len(values) for values in body.inputs.values()}
    if len(lengths) != 1:
        raise Invalid("every input list must have the same length")
    n = lengths.pop()
    if not 1 <= n <= MAX_PREDICT_VALUES:
        raise Invalid(f"each input list must hold 1 to {MAX_PREDICT_VALUES} values")
    return n


def check_running(deployment: Deployment) -> None:
    """409 unless the deployment is running (online predict's answer, and OIP's "not ready")."""
    if deployment["status"] != DeploymentStatus.RUNNING:
        raise Conflict(f"deployment '{deployment['_id']}' is {deployment['status']}, not running")


class InFlight:
    """Samples of online predict in flight, per deployment, in this gateway process."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)

    @contextmanager
    def hold(self, deployment: str, samples: int, limit: int) -> Iterator[None]:
        """Count `samples` while the block runs, or refuse with 429 at once when that would pass
        `limit` (a request larger than the limit still runs when the deployment is idle)."""
        held = self.counts[deployment]
        if held and held + samples > limit:
            raise Busy(
                f"deployment '{deployment}' has {held} samples in flight (its max_in_flight "
                f"is {limit}); retry after {RETRY_AFTER_S} s",
                retry_after=RETRY_AFTER_S,
            )
        self.counts[deployment] = held + samples
        try:
            yield
        finally:
            self.counts[deployment] -= samples
            if not self.counts[deployment]:
                del self.counts[deployment]


class OnlinePredict:
    """The predict use case; one per gateway process (it holds the counts and the schema cache)."""

    def __init__(self) -> None:
        self.in_flight = InFlight()
        self._schemas: dict[str, tuple[dict[str, str], dict[str, str]]] = {}

    async def schema(self, store: GatewayStore, deployment: Deployment) -> tuple[dict[str, str], dict[str, str]]:
        """(input types, output types) of the deployment's version, read once per package."""
        key = deployment["package_object"]
        if key not in self._schemas:
            version = await store.version(deployment["model"], deployment["version"])
            if version is None:
                raise Conflict(f"version {deployment['version']} of '{deployment['model']}' is gone")
            self._schemas[key] = (input_types(version["schema"]), output_types(version["schema"]))
        return self._schemas[key]

    async def answer(
        self, store: GatewayStore, broker: NatsBroker, user: User, name: str, body: PredictIn
    ) -> PredictOut:
        """`POST /deployments/{name}/predict` for an authenticated caller and a valid body: the one
        implementation under both HTTP paths (the FastAPI route, api/routes/predict.py, and its lean
        ASGI twin, api/predict_asgi.py); OIP's infer (oip/models.py) runs `predict` as well. 404/403 for a deployment the caller may not run (read
        through the store's short-lived cache), 409 when it is not running, then `predict`."""
        deployment = await visible_deployment(store, user, name, recent=True)
        check_running(deployment)
        return await self.predict(store, broker, deployment, body)

    async def predict(
        self, store: GatewayStore, broker: NatsBroker, deployment: Deployment, body: PredictIn
    ) -> PredictOut:
        """Run the inputs through a running deployment and return its checked outputs in order."""
        inputs, outputs = await self.schema(store, deployment)
        samples = check_predict_inputs(body, inputs)
        name = deployment["_id"]
        command = PredictRequest(
            deployment=name,
            inputs=body.inputs,
            output_types=outputs,
            mini_batch=deployment["mini_batch"],
            num_replicas=deployment.get("max_replicas") or deployment["num_replicas"],
            batch_wait_ms=deployment.get("batch_wait_ms", DEFAULT_BATCH_WAIT_MS),
            timeout_s=body.timeout_s,
        )
        with self.in_flight.hold(name, samples, deployment.get("max_in_flight", DEFAULT_MAX_IN_FLIGHT)):
            try:
                data = await call(
                    broker,
                    subjects.RPC_PREDICT,
                    command,
                    timeout=body.timeout_s + REPLY_MARGIN_S,
                    timeout_status=504,
                    requester=lean_request,
                )
            except MaxPayloadError as exc:
                raise TooLarge(
                    "the request is too large for one message to the inference worker; send fewer samples per request"
                ) from exc
        return PredictOut.model_validate(data)
