"""Sending commands to other services; a refusal in their reply comes back as the domain error it
stands for (the app's one handler answers it)."""

from collections.abc import Awaitable, Callable

from faststream.nats import NatsBroker
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import BaseModel

from modelhub_contracts.errors import from_status
from modelhub_contracts.events import RpcReply
from modelhub_runtime.messaging import request

Requester = Callable[[NatsBroker, str, BaseModel, float], Awaitable[RpcReply]]


async def call(
    broker: NatsBroker,
    subject: str,
    command: BaseModel,
    timeout: float = 15,
    timeout_status: int = 503,
    requester: Requester = request,
) -> object:
    """Send a command; return its data, or raise the domain error the service answered (with its
    retry_after when it said when to retry). No service there: 503; no answer in time:
    `timeout_status` (504 where the service had a deadline of its own and missed it)."""
    service = subject.split(".")[2]
    try:
        reply = await requester(broker, subject, command, timeout)
    except NoRespondersError as exc:
        raise from_status(503, f"service unavailable for {service}; try again") from exc
    except (NatsTimeout, TimeoutError) as exc:
        detail = (
            f"no answer from {service} within {timeout:g} s"
            if timeout_status == 504
            else f"service unavailable for {service}; try again"
        )
        raise from_status(timeout_status, detail) from exc
    if reply.status >= 400:
        raise from_status(reply.status, reply.detail or "request refused", reply.retry_after)
    return reply.data
