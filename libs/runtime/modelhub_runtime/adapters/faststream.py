"""Where modelhub goes around FastStream (checked against faststream 0.7.8, the pin in
constraints.txt; the packages allow `>=0.7,<0.8` so that a new minor is checked before it is used).

Three bypasses, each applied explicitly by the service that needs it:

`prompt_batches(subscriber, ...)`: the gateway's progress consumer. FastStream's JetStream batch
loop (`BatchPullStreamSubscriber._consume_pull`, a private method) keeps fetching until the batch
is full or `PullSub.timeout` has passed, so every event waits out that timeout before it is
handled; and when nats-py's multi-message `fetch` raises the builtin `TimeoutError` (it does once
its deadline passes mid-batch) the loop, which catches only `nats.errors.TimeoutError`, lets it
escape and drops the part of a batch fetched so far, unacked until `ack_wait`. There is no public
option for "hand over what is there once a first message came" (`PullSub` has `batch_size`,
`timeout` and `batch`; `max_workers` is ignored with `batch`), so this replaces that loop on the
subscriber object: a batch starts with the first message there is (a long pull: idle consumers
send one request every IDLE_WAIT_S) and takes whatever else is already waiting, up to the batch
size, in a second short fetch. A lone event is handed over at once; a busy stream still gives
full batches, because messages pile up while the last batch is handled. With `concurrency` above
one, the next batch is fetched and handled while earlier ones are. Single-message pull consumers
(every other durable subscriber) need nothing: nats-py's `fetch(batch=1)` raises only its own
`TimeoutError`, which FastStream catches.

`take_over(broker, declared, ...)` and `lean_request(...)`: online predict, the one per-request
NATS path. FastStream runs the broker's middlewares (tracing, Prometheus) and logs two lines for
every message a subscriber handles and every request it sends, and 0.7 gives one subscriber or
publisher no way out of them (`broker.subscriber` takes no middlewares or log level). The
worker's predict subscription and the gateway's predict request therefore use the broker's
nats-py connection (`broker.connection`) directly, with one span of their own; the FastStream
subscriber and publisher stay declared, so the bus contract (AsyncAPI) still shows them.

How to drop them: `tests/unit/test_adapters_faststream.py` checks that upstream still has what
these rely on and still behaves as worked around here; when it says upstream changed, use
FastStream's own batch loop (`PullSub(batch=True)`) or its subscriber and `messaging.request`,
and delete what it names.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream.nats import NatsBroker
from faststream.nats.subscriber.usecases.basic import LogicSubscriber
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import ConnectionClosedError
from nats.js.errors import ServiceUnavailableError
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel

from modelhub_contracts.events import RpcReply
from modelhub_runtime import bus

log = logging.getLogger(__name__)

# The long pull for a batch's first message. A pull pending on a consumer leader that dies is never
# answered: it is given up only when it expires, so this bounds what a lost leader adds to its
# consumer's election (an idle consumer sends one request per IDLE_WAIT_S: nothing to speak of).
IDLE_WAIT_S = 2.0
TOP_UP_WAIT_S = 0.01  # the most the rest of a batch may add to the first message's wait
RECONNECT_PAUSE_S = 0.2  # not connected, or a consumer without a leader (503 at once): try again soon

_PROPAGATOR = TraceContextTextMapPropagator()


def prompt_batches(subscriber: Any, max_batch: int, concurrency: int = 1, top_up_s: float = TOP_UP_WAIT_S) -> None:
    """Give a FastStream JetStream batch pull subscriber (`PullSub(..., batch=True)`) this loop,
    handling up to `concurrency` batches at once (the handler must allow that). Call before the
    broker starts. Raises RuntimeError when FastStream's loop is not where this expects it."""
    if not callable(getattr(subscriber, "_consume_pull", None)):
        raise RuntimeError(f"{type(subscriber).__name__} has no pull loop to replace; check FastStream's version")

    async def consume_pull() -> None:
        slots = asyncio.Semaphore(concurrency)
        running: set[asyncio.Task] = set()

        async def consume(messages: list) -> None:
            try:
                await subscriber.consume(messages)
            finally:
                slots.release()

        try:
            while subscriber.running:
                await slots.acquire()  # a free slot before fetching: what is fetched is handled now
                messages = await _fetch(subscriber.subscription, 1, IDLE_WAIT_S)
                if messages and len(messages) < max_batch:
                    more = await _fetch(subscriber.subscription, max_batch - len(messages), top_up_s)
                    messages = None if more is None else messages + more
                if not messages or not subscriber.running:
                    slots.release()
                    if messages is None:  # not connected (a batch cut by it is redelivered whole)
                        await asyncio.sleep(RECONNECT_PAUSE_S)
                    continue
                task = asyncio.create_task(consume(messages))
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            if running:  # stopping: the batches in hand finish (unacked ones would come again)
                await asyncio.gather(*running, return_exceptions=True)

    subscriber._consume_pull = consume_pull


async def _fetch(subscription: Any, batch: int, timeout: float) -> list | None:
    """Up to `batch` messages, [] when none came in `timeout`, None when not connected."""
    try:
        return await subscription.fetch(batch=batch, timeout=timeout)
    except TimeoutError:  # asyncio's and nats-py's (a subclass) alike
        return []
    except (ConnectionClosedError, ServiceUnavailableError) as exc:
        log.debug("batch fetch: %s", exc)
        return None


async def take_over(
    broker: NatsBroker,
    declared: LogicSubscriber,
    subject: str,
    queue: str,
    received: Callable[[Msg], Awaitable[None]],
    pending_msgs_limit: int,
) -> Subscription:
    """Subscribe `received` to `subject` in `queue` on the broker's nats-py connection (call once
    the broker is connected), then stop `declared`, the FastStream subscriber of the same subject
    and queue group: both are in the group while they swap, so no request goes unanswered."""
    subscription = await broker.connection.subscribe(
        subject, queue=queue, cb=received, pending_msgs_limit=pending_msgs_limit
    )
    await declared.stop()
    return subscription


async def lean_request(broker: NatsBroker, subject: str, command: BaseModel, timeout: float) -> RpcReply:
    """`messaging.request` without FastStream's publish path (its middlewares, built for each
    call). The subject must still be declared (bus.declare: the bus contract); the caller's trace
    goes on in a `traceparent` header, as FastStream's tracing middleware would send it."""
    bus.publisher(broker, subject)  # Undeclared when the bus contract does not show it
    headers: dict[str, str] = {}
    _PROPAGATOR.inject(headers)
    message = await broker.connection.request(
        subject, command.model_dump_json().encode(), timeout=timeout, headers=headers or None
    )
    return RpcReply.model_validate_json(message.data)
