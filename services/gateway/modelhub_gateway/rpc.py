"""Sending commands to other services and turning their replies into HTTP answers."""

import math
from collections.abc import Awaitable, Callable

from fastapi import HTTPException
from faststream.nats import NatsBroker
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import BaseModel

from modelhub_contracts.events import RpcReply
from modelhub_contracts.messaging import request

Requester = Callable[[NatsBroker, str, BaseModel, float], Awaitable[RpcReply]]


async def call(broker: NatsBroker, subject: str, command: BaseModel, timeout: float = 15,
               timeout_status: int = 503, requester: Requester = request) -> object:
    """Send a command; return its data, or raise the HTTP error the service answered (with
    Retry-After when it said when to retry). No service there: 503; no answer in time:
    `timeout_status` (504 where the service had a deadline of its own and missed it)."""
    service = subject.split('.')[2]
    try:
        reply = await requester(broker, subject, command, timeout)
    except NoRespondersError as exc:
        raise HTTPException(503, f"service unavailable for {service}; try again") from exc
    except (NatsTimeout, TimeoutError) as exc:
        detail = (f"no answer from {service} within {timeout:g} s" if timeout_status == 504
                  else f"service unavailable for {service}; try again")
        raise HTTPException(timeout_status, detail) from exc
    if reply.status >= 400:
        headers = {"Retry-After": str(math.ceil(reply.retry_after))} if reply.retry_after else None
        raise HTTPException(reply.status, reply.detail or "request refused", headers=headers)
    return reply.data
