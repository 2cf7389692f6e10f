"""Inference worker: runs tasks against Ray Serve deployments, publishes SampleAnnotated."""

import asyncio

from faststream import FastStream
from faststream.nats import NatsBroker

from modelhub_contracts import logs, mongo
from modelhub_contracts.raywatch import watch_cluster
from modelhub_contracts.runtime import answer_pings, configure_logging
from modelhub_contracts.settings import ServiceSettings

from modelhub_worker import handlers
from modelhub_worker.serving import ServeClient
from modelhub_worker.store import WorkerStore


def build_app(settings: ServiceSettings) -> FastStream:
    """Wire broker, store, Ray Serve client and handlers; the one place configuration enters."""
    broker = NatsBroker(settings.nats_url)
    _, db = mongo.connect(settings)
    serve = ServeClient(settings.ray_address)
    handlers.register(broker, WorkerStore(db), serve)
    # answers only once started: subscribers start after the start-up hooks (Ray connected)
    answer_pings(broker, "inference-worker")
    app = FastStream(broker)

    watchers: set[asyncio.Task] = set()  # keeps the watch task referenced

    @app.on_startup
    async def connect_ray() -> None:
        await serve.connect()
        logs.reclaim()  # ray.init put its own handler on the root logger
        watchers.add(asyncio.create_task(watch_cluster()))

    return app


def main() -> None:
    configure_logging("inference-worker")
    asyncio.run(build_app(ServiceSettings()).run())
