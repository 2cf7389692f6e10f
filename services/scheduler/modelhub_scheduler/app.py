"""Scheduler service: plans jobs into mini-batch tasks and feeds them to the inference workers
through a bounded window per deployment."""

import asyncio

from faststream import FastStream
from faststream.nats import NatsBroker

from modelhub_contracts import mongo
from modelhub_contracts.runtime import answer_pings, configure_logging
from modelhub_contracts.settings import ServiceSettings

from modelhub_scheduler import handlers
from modelhub_scheduler.store import SchedulerStore


def build_app(settings: ServiceSettings) -> FastStream:
    """Wire broker, store and handlers; the one place configuration enters."""
    broker = NatsBroker(settings.nats_url)
    _, db = mongo.connect(settings)
    store = SchedulerStore(db)
    dispatcher = handlers.register(broker, store)
    answer_pings(broker, "scheduler")
    app = FastStream(broker)
    sweeps: set[asyncio.Task] = set()  # keeps the sweep task referenced

    @app.on_startup
    async def indexes() -> None:
        await store.ensure_indexes()

    @app.after_startup
    async def start_sweep() -> None:
        sweeps.add(asyncio.create_task(handlers.sweep(store, dispatcher)))

    return app


def main() -> None:
    configure_logging("scheduler")
    asyncio.run(build_app(ServiceSettings()).run())
