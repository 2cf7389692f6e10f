"""Inference worker: runs tasks against Ray Serve deployments, publishes SampleAnnotated."""

import asyncio

from faststream import FastStream
from faststream.nats import NatsBroker

from modelhub_contracts import logs, mongo, ops, telemetry
from modelhub_contracts.raywatch import watch_cluster
from modelhub_contracts.runtime import answer_pings, configure_logging
from modelhub_contracts.settings import ServiceSettings

from modelhub_worker import handlers
from modelhub_worker.serving import ServeClient
from modelhub_worker.store import WorkerStore


def build_app(settings: ServiceSettings, tel: telemetry.Telemetry | None = None) -> tuple[FastStream, NatsBroker, object]:
    """Wire broker, store, Ray Serve client and handlers; the one place configuration enters.
    Returns the app, its broker and the database (the HTTP probes ping both)."""
    tel = tel or telemetry.setup("inference-worker", settings.telemetry_dir)
    broker = ops.make_broker(settings, tel)
    _, db = mongo.connect(settings)
    serve = ServeClient(settings.ray_address, tel=tel)
    handlers.register(broker, WorkerStore(db), serve, tel.metrics)
    # answers only once started: subscribers start after the start-up hooks (Ray connected)
    answer_pings(broker, "inference-worker")
    app = FastStream(broker)

    watchers: set[asyncio.Task] = set()  # keeps the watch task referenced

    @app.on_startup
    async def connect_ray() -> None:
        await serve.connect()
        logs.reclaim()  # ray.init put its own handler on the root logger
        watchers.add(asyncio.create_task(watch_cluster()))

    return app, broker, db


def main() -> None:
    configure_logging("inference-worker")
    settings = ServiceSettings()
    tel = telemetry.setup("inference-worker", settings.telemetry_dir)
    app, broker, db = build_app(settings, tel)
    asyncio.run(ops.run(app, broker, tel, settings, lambda: db.command("ping")))
