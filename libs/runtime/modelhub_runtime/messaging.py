"""NATS helpers every service uses: the events stream, idempotent publishing, RPC replies."""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from faststream import AckPolicy as HandlerAcks
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.message import NatsMessage
from nats.errors import NotJSMessageError
from nats.js.api import AckPolicy, ConsumerConfig, PubAck, RetentionPolicy, StorageType
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError
from pydantic import BaseModel

from modelhub_contracts import subjects
from modelhub_contracts.errors import DomainError
from modelhub_contracts.events import Event, RpcReply
from modelhub_runtime import bus

log = logging.getLogger(__name__)
Stored = TypeVar("Stored")

# One stream for every event; file storage so a nats-server restart loses nothing, and a
# duplicate window so a retried publish with the same Nats-Msg-Id is stored once. Interest
# retention: a message is removed once every durable consumer of its subject has acked it, so the
# stream (and nats-server's memory) holds what is in flight, not the history of every job. A task
# that ran out of deliveries is kept (JetStream keeps max-delivered messages under interest
# retention) for its dead letter to fetch.
EVENTS_STREAM = JStream(
    name=subjects.STREAM,
    subjects=subjects.STREAM_SUBJECTS,
    storage=StorageType.FILE,
    duplicate_window=120.0,
    retention=RetentionPolicy.INTEREST,
)


# On a JetStream cluster the events stream has no leader for a few seconds after the server leading
# it is lost (its RAFT group's election: 4 to 9 s with nats-server's timings): a publish then has no
# responders (503 at once), and one sent to the leader as it died gets no ack. Both are sent again,
# under the event's id (JetStream stores it once), until PUBLISH_RETRY_S has passed. A handler thus
# rides out the election instead of failing: a failed handler NAKs, and its consumer may be without
# a leader too, which drops the NAK, so the message would wait out the consumer's whole ack_wait.
# An attempt waits PUBLISH_ATTEMPT_S for its ack: a publish that went to the leader as it died is
# sent again after that, so it bounds what such a publish adds to a short election (an ack takes
# milliseconds; one later than that is sent again and deduped). The pauses between attempts bound
# how long after the election a publish waits: the stream answers 503 at once until then, so short
# pauses only cost a few cheap requests a second per waiting publisher.
PUBLISH_ATTEMPT_S = 2.0
PUBLISH_RETRY_S = 30.0
PUBLISH_PAUSES = (0.05, 0.1, 0.2)  # between attempts, the last one repeated: a new leader is used soon
RETRIED_PUBLISH_ERRORS = (NoStreamResponseError, ServiceUnavailableError, TimeoutError)


async def publish_event(broker: NatsBroker, subject: str, event: Event) -> None:
    """Publish to JetStream through the publisher declared for `subject` (bus.declare) and wait for
    the stream's ack, sent again while the stream has no leader (see above); the event id dedupes."""
    publisher = bus.publisher(broker, subject)

    async def once(timeout: float) -> PubAck:
        return await publisher.publish(
            event, stream=subjects.STREAM, headers={"Nats-Msg-Id": event.event_id}, timeout=timeout
        )

    await through_elections(once, f"{subject} {event.event_id}")


async def through_elections(
    attempt: Callable[[float], Awaitable[Stored]],
    what: str,
    budget: float = PUBLISH_RETRY_S,
    attempt_timeout: float = PUBLISH_ATTEMPT_S,
) -> Stored:
    """`attempt(timeout)` until it returns or `budget` seconds have passed (then its error is raised),
    again after each error of RETRIED_PUBLISH_ERRORS (a stream without a leader, a lost ack)."""
    deadline, tried = time.monotonic() + budget, 0
    while True:
        try:
            return await attempt(max(0.1, min(attempt_timeout, deadline - time.monotonic())))
        except RETRIED_PUBLISH_ERRORS as exc:
            pause = PUBLISH_PAUSES[min(tried, len(PUBLISH_PAUSES) - 1)]
            if time.monotonic() + pause >= deadline:
                raise
            if tried == 0:
                log.info("publish %s: %s; sending it again", what, type(exc).__name__)
            tried += 1
            await asyncio.sleep(pause)


async def request(broker: NatsBroker, subject: str, body: BaseModel | None, timeout: float = 10) -> RpcReply:
    """Send a command over request/reply (through its declared publisher) and parse the typed reply."""
    message = await bus.publisher(broker, subject).request(body, timeout=timeout)
    return RpcReply.model_validate_json(message.body)


def ok(data: object = None, status: int = 200) -> RpcReply:
    return RpcReply(status=status, data=data)


def refuse(status: int, detail: str) -> RpcReply:
    return RpcReply(status=status, detail=detail)


def refused(error: DomainError) -> RpcReply:
    """The reply for a use case's domain error: its kind's status and its sentence (the gateway's
    `rpc.call` raises the same kind again)."""
    return RpcReply(status=error.status, detail=error.message, retry_after=error.retry_after)


# ------------------------------------------------------------------ durable consumer hardening
#
# Consumers ack explicitly (AckPolicy.MANUAL): FastStream's default (REJECT_ON_ERROR) would
# TERM a message whose handler raised, e.g. while MongoDB restarts, and the event would be gone.
# Retries are spaced by NAK delays taken from RETRY_DELAYS by delivery count. The consumer's own
# `backoff` is left unset on purpose: JetStream's BackOff replaces AckWait, so its first value
# would become the ack deadline of every first delivery (2 s), far shorter than a task runs.

RETRY_DELAYS = (2.0, 5.0, 15.0, 30.0)
KEEP_ALIVE_SECONDS = 10.0  # in_progress() period; well under every consumer's ack_wait


def consumer_config(ack_wait: float, max_deliver: int) -> ConsumerConfig:
    """An explicit-ack durable consumer config (the durable name is filled in by FastStream)."""
    return ConsumerConfig(
        ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait, max_deliver=max_deliver, max_ack_pending=1024
    )


def durable_subscriber(
    broker: NatsBroker,
    service: str,
    subject: str,
    durable: str,
    *,
    ack_wait: float,
    max_deliver: int,
    stream: JStream = EVENTS_STREAM,
    pull_sub: PullSub | None = None,
    max_workers: int | None = None,
    reads: type[BaseModel] | None = None,
):
    """A durable JetStream pull consumer of `subject` (a restarted service resumes where it
    stopped) whose handler acks explicitly (consumer_config, AckPolicy.MANUAL: see above), one
    message per fetch unless `pull_sub` says otherwise, `max_workers` handled at once when given,
    and shown in the bus contract as `service` receiving `subject`. `reads`: a model of the part
    of each message the handler reads (and takes), validated from the body's JSON in one pass:
    the rest of the message is skipped, never turned into Python objects (FastStream would
    json.loads the whole body first). Not for batches: FastStream validates a batch's items
    again, which cost more than it saved."""
    if reads is not None and pull_sub is not None and pull_sub.batch:
        raise ValueError("`reads` decodes one message at a time, not a batch")
    return broker.subscriber(
        subject,
        stream=stream,
        durable=durable,
        config=consumer_config(ack_wait, max_deliver),
        ack_policy=HandlerAcks.MANUAL,
        pull_sub=pull_sub or PullSub(batch_size=1, timeout=1.0),
        title=bus.receiving(service, subject),
        max_workers=max_workers,
        decoder=_decoding(reads) if reads is not None else None,
    )


def _decoding(model: type[BaseModel]) -> Callable[[NatsMessage], dict]:
    """A FastStream decoder: the message body's JSON validated as `model` in one pass, handed on
    as the fields the handler's model takes."""

    def decode(message: NatsMessage) -> dict:
        return model.model_validate_json(message.body).model_dump()

    return decode


def deliveries(message: NatsMessage) -> int:
    """How many times JetStream has delivered this message (1 the first time)."""
    raw = message.raw_message
    first = raw[0] if isinstance(raw, list) else raw
    try:
        return first.metadata.num_delivered
    except (NotJSMessageError, AttributeError, ValueError):
        return 1  # not a JetStream message (FastStream's TestNatsBroker): a first delivery


def retry_delay(delivered: int) -> float:
    """Seconds to wait before the next delivery, growing with the deliveries so far."""
    return RETRY_DELAYS[min(max(delivered, 1), len(RETRY_DELAYS)) - 1]


@asynccontextmanager
async def keep_alive(message: NatsMessage, every: float = KEEP_ALIVE_SECONDS) -> AsyncIterator[None]:
    """Tell JetStream the message is still being worked on, so a long handler is not redelivered
    to another consumer while it runs (a crashed one stops heartbeating and is redelivered)."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(Exception):  # a missed beat only risks a redelivery
                await message.in_progress()

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating


def current_message(broker: NatsBroker) -> NatsMessage:
    """The message the calling handler is handling. Hot handlers take it from FastStream's context
    instead of declaring `message: NatsMessage`: fast-depends resolves such a parameter in a worker
    thread, a thread hop and two GIL hand-offs per message, on the path every task takes."""
    return broker.context.get_local("message")


async def settle(message: NatsMessage, work: Awaitable[None]) -> None:
    """Ack once `work` is done; on any error NAK with a growing delay (and re-raise for the log)."""
    try:
        async with keep_alive(message):
            await work
    except Exception:
        await message.nack(delay=retry_delay(deliveries(message)))
        raise
    await message.ack()
