"""Sending commands to other services and turning their replies into HTTP answers."""

from fastapi import HTTPException
from faststream.nats import NatsBroker
from nats.errors import NoRespondersError, TimeoutError as NatsTimeout
from pydantic import BaseModel

from modelhub_contracts.messaging import request


async def call(broker: NatsBroker, subject: str, command: BaseModel, timeout: float = 15) -> object:
    """Send a command; return its data, or raise the HTTP error the service answered."""
    try:
        reply = await request(broker, subject, command, timeout=timeout)
    except (NoRespondersError, NatsTimeout, TimeoutError) as exc:
        raise HTTPException(503, f"service unavailable for {subject.split('.')[2]}; try again") from exc
    if reply.status >= 400:
        raise HTTPException(reply.status, reply.detail or "request refused")
    return reply.data
