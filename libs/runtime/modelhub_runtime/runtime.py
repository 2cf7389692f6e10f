"""Process plumbing shared by the NATS services: the event loop, readiness pings and logging."""

import gc
from collections.abc import Coroutine
from typing import Any

import uvloop
from faststream.nats import NatsBroker

from modelhub_contracts import subjects
from modelhub_runtime import bus, logs


def answer_pings(broker: NatsBroker, service: str) -> None:
    """Answer `modelhub.rpc.ping.<service>`: the gateway's health route asks every service."""

    subject = subjects.RPC_PING.format(service=service)

    @broker.subscriber(
        subject, title=bus.receiving(service, subject), description="readiness ping from the gateway's health route"
    )
    async def ping() -> dict:
        return {"service": service, "ready": True}


def configure_logging(service: str) -> None:
    """JSON lines on stdout (modelhub_runtime.logs)."""
    logs.configure_logging(service)


# Net new container objects between two young collections (CPython's default: 700). Once the
# start-up objects are frozen, a service's young collections are all its collector does, and a
# job makes many short-lived containers: collecting them less often costs less CPU per job, and
# cycles are still found, a little later.
YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Take what start-up made (modules, classes, functions, pydantic and FastAPI schemas: 90,000
    to 150,000 objects per service) out of the cyclic garbage collector's walks (gc.freeze, after a
    collection so no garbage is kept), and collect the young generation less often. Otherwise every
    full collection walks the start-up objects again, a sizeable share of a service's CPU per job.
    Objects made later are collected as usual; called once start-up is done (ops.run for the NATS
    services, the gateway's main)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


def run_service(main: Coroutine[Any, Any, None]) -> None:
    """Run a NATS service's main coroutine to its end on uvloop, as uvicorn already runs the gateway:
    the job path's services (worker, scheduler) spend much of their CPU in the event loop itself
    (sockets to NATS, MongoDB and Serve for every task), which libuv's loop does in less."""
    uvloop.run(main)
