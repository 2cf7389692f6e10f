"""NATS helpers every service uses: the events stream, idempotent publishing, RPC replies."""

from faststream.nats import JStream, NatsBroker
from nats.js.api import StorageType
from pydantic import BaseModel

from modelhub_contracts import subjects
from modelhub_contracts.events import Event, RpcReply

# One stream for every event; file storage so a nats-server restart loses nothing, and a
# duplicate window so a retried publish with the same Nats-Msg-Id is stored once.
EVENTS_STREAM = JStream(
    name=subjects.STREAM,
    subjects=subjects.STREAM_SUBJECTS,
    storage=StorageType.FILE,
    duplicate_window=120.0,
)


async def publish_event(broker: NatsBroker, subject: str, event: Event) -> None:
    """Publish to JetStream and wait for the stream's ack; the event id dedupes retries."""
    await broker.publish(
        event, subject, stream=subjects.STREAM, headers={"Nats-Msg-Id": event.event_id}, timeout=10
    )


async def request(broker: NatsBroker, subject: str, body: BaseModel, timeout: float = 10) -> RpcReply:
    """Send a command over request/reply and parse the typed reply."""
    message = await broker.request(body, subject, timeout=timeout)
    return RpcReply.model_validate_json(message.body)


def ok(data: object = None, status: int = 200) -> RpcReply:
    return RpcReply(status=status, data=data)


def refuse(status: int, detail: str) -> RpcReply:
    return RpcReply(status=status, detail=detail)
