"""Online predict's subscription, on nats-py directly: the per-request path with the least work.

Why: FastStream's per-message path (two log lines, the tracing and Prometheus middlewares,
dependency injection and parsing) costs more CPU than the rest of a request's handling in the
worker, on a machine whose cores every process of the stack shares (profile in bench/README.md).
The bypass itself is `modelhub_runtime.adapters.faststream.take_over`, which says what upstream
lacks and when it can go.

One code path underneath: each request is one task here: parse the PredictRequest, one consumer
span (continuing the gateway's trace from the message headers, as FastStream's middleware does),
then the `answer` that handlers.py gives both this and the declared FastStream subscriber, and one
reply. No log line per request.

The FastStream subscriber stays declared in handlers.py: it is the bus contract (the AsyncAPI
document shows the worker receiving this subject) and answers until `start` swaps it for this
subscription, in the same queue group, once the broker is connected.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from faststream.nats import NatsBroker
from faststream.nats.subscriber.usecases.basic import LogicSubscriber
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import ValidationError

from modelhub_contracts import subjects
from modelhub_contracts.events import PredictRequest, RpcReply
from modelhub_runtime import telemetry
from modelhub_runtime.adapters.faststream import take_over
from modelhub_runtime.messaging import refuse

log = logging.getLogger(__name__)

QUEUE = "inference-worker"
# nats-py's pending limit per subscription (messages not yet handed to the callback): well over
# what admission lets in (OnlineBatcher.max_samples), so a burst is answered 429, never dropped.
PENDING_MESSAGES = 65_536
STOP_GRACE_S = 10.0  # how long a stopping worker lets requests in progress finish

_PROPAGATOR = TraceContextTextMapPropagator()

Answer = Callable[[PredictRequest], Awaitable[RpcReply]]


class PredictSubscription:
    """`modelhub.rpc.predict` in the queue group `inference-worker`, each request in a task."""

    def __init__(
        self, answer: Answer, tel: telemetry.Telemetry | None = None, replaces: LogicSubscriber | None = None
    ) -> None:
        self._answer, self._tel, self._replaces = answer, tel, replaces
        self._tasks: set[asyncio.Task] = set()
        self._subscription = None

    async def start(self, broker: NatsBroker) -> None:
        """Subscribe on the broker's connection (call once it is connected), then stop `replaces`
        (the FastStream subscriber of the same subject and queue group): both answer alike, so no
        request goes unanswered while they swap."""
        if self._replaces is None:
            raise RuntimeError("start() needs the declared subscriber this subscription replaces")
        self._subscription = await take_over(
            broker, self._replaces, subjects.RPC_PREDICT, QUEUE, self._received, PENDING_MESSAGES
        )

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """No new requests; those in progress get `grace_s` to be answered, then are cancelled
        (their callers get no reply and answer 504 at their deadline)."""
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def _received(self, msg: Msg) -> None:
        # nats-py awaits this callback before it hands over the next message: answer in a task
        task = asyncio.create_task(self._handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, msg: Msg) -> None:
        if not msg.reply:
            return  # a request without a reply subject: nobody to answer
        try:
            reply = await self.answer(msg.data, msg.headers)
        except Exception:  # a bug, not a verdict: logged, and the caller gets a 500 now, not a 504 later
            log.exception("online predict failed")
            reply = refuse(500, "the inference worker failed on this request")
        try:
            await msg.respond(reply.model_dump_json().encode())
        except NatsError as exc:  # the connection is gone: the caller answers 504 at its deadline
            log.warning("online predict reply not sent: %s", exc)

    async def answer(self, data: bytes, headers: dict[str, str] | None) -> RpcReply:
        """The reply to one raw request, in a consumer span of the caller's trace."""
        try:
            request = PredictRequest.model_validate_json(data)
        except ValidationError as exc:
            return refuse(422, f"not a PredictRequest: {exc.errors()[:3]}")
        if self._tel is None or not self._tel.enabled:
            return await self._answer(request)
        with self._tel.tracer.start_as_current_span(
            f"{subjects.RPC_PREDICT} process",
            context=_PROPAGATOR.extract(headers or {}),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": subjects.RPC_PREDICT,
                telemetry.DEPLOYMENT: request.deployment,
            },
        ) as span:
            reply = await self._answer(request)
            if reply.status >= 500:
                span.set_status(Status(StatusCode.ERROR, (reply.detail or "")[:200]))
            return reply
