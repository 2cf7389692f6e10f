"""Process plumbing shared by the NATS services: the event loop, readiness pings and logging."""

from collections.abc import Coroutine
from typing import Any

import uvloop
from faststream.nats import NatsBroker

from modelhub_contracts import bus, logs, subjects


def answer_pings(broker: NatsBroker, service: str) -> None:
    """Answer `modelhub.rpc.ping.<service>`: the gateway's health route asks every service."""

    subject = subjects.RPC_PING.format(service=service)

    @broker.subscriber(
        subject, title=bus.receiving(service, subject), description="readiness ping from the gateway's health route"
    )
    async def ping() -> dict:
        return {"service": service, "ready": True}


def configure_logging(service: str) -> None:
    """JSON lines on stdout (modelhub_contracts.logs)."""
    logs.configure_logging(service)


def run_service(main: Coroutine[Any, Any, None]) -> None:
    """Run a NATS service's main coroutine to its end on uvloop, as uvicorn already runs the gateway:
    the job path's services (worker, scheduler) spend much of their CPU in the event loop itself
    (sockets to NATS, MongoDB and Serve for every task), which libuv's loop does in less."""
    uvloop.run(main)
