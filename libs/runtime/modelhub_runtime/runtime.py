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
# start-up objects are frozen, a service's young collections are all its collector does: the
# same probe counted ~400 per service in three jobs, 10-20 ms of CPU per job in each service;
# with 10,000, 2-7 in all, 4-18 ms in all three jobs. Cycles are found as before, a little later.
YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Take what start-up made (modules, classes, functions, pydantic and FastAPI schemas: 90,000
    to 150,000 objects per service) out of the cyclic garbage collector's walks (gc.freeze, after a
    collection so no garbage is kept), and collect the young generation less often. Every full
    collection walked the start-up objects: in a probe of three 20,000-sample jobs the gateway's
    three full collections took 0.36 s of CPU (0.12 s each), each worker's 0.21 s and the
    scheduler's 0.12 s, about a tenth of the stack's CPU per job (0.03, 0.007 and 0.006 s frozen).
    Objects made later are collected as before; called once start-up is done (ops.run for the NATS
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
