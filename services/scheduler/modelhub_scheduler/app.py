"""Scheduler service: plans jobs into mini-batch tasks and feeds them to the inference workers
through a bounded window per deployment."""

import asyncio

from faststream import FastStream
from faststream.nats import NatsBroker
from pymongo.asynchronous.database import AsyncDatabase

from modelhub_runtime import cluster, mongo, ops, telemetry
from modelhub_runtime.messaging import EVENTS_STREAM
from modelhub_runtime.runtime import answer_pings, configure_logging, run_service
from modelhub_runtime.settings import ServiceSettings
from modelhub_scheduler import handlers
from modelhub_scheduler.store import SchedulerStore


def build_app(
    settings: ServiceSettings, tel: telemetry.Telemetry | None = None
) -> tuple[FastStream, NatsBroker, AsyncDatabase]:
    """Wire broker, store and handlers; the one place configuration enters. Returns the app, its
    broker and the database (the HTTP probes ping both)."""
    tel = tel or telemetry.setup("scheduler", settings.telemetry_dir)
    broker = ops.make_broker(settings, tel)
    _, db = mongo.connect(settings)
    store = SchedulerStore(db)
    dispatcher = handlers.register(broker, store)
    answer_pings(broker, "scheduler")
    app = FastStream(broker)
    sweeps: set[asyncio.Task] = set()  # keeps the sweep task referenced

    @app.on_startup
    async def indexes() -> None:
        await store.ensure_indexes()
        await cluster.join(broker, settings.nats_replicas, streams=[EVENTS_STREAM])

    @app.after_startup
    async def start_sweep() -> None:
        gauges = (
            telemetry.GaugeSet(tel.metrics.tasks_waiting, "deployment"),
            telemetry.GaugeSet(tel.metrics.tasks_in_flight, "deployment"),
        )
        sweeps.add(asyncio.create_task(handlers.sweep(store, dispatcher, gauges=gauges)))

    return app, broker, db


def main() -> None:
    configure_logging("scheduler")
    settings = ServiceSettings()
    tel = telemetry.setup("scheduler", settings.telemetry_dir)
    app, broker, db = build_app(settings, tel)
    run_service(ops.run(app, broker, tel, settings, lambda: db.command("ping")))
