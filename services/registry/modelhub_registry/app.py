"""Registry service: models, versions and schemas in MongoDB; package zips in NATS's object store."""

import asyncio

from faststream import FastStream
from faststream.nats import NatsBroker
from pymongo.asynchronous.database import AsyncDatabase

from modelhub_contracts import subjects
from modelhub_contracts.package import PackageLimits
from modelhub_registry import aliases, handlers
from modelhub_registry.store import ModelStore, PackageBlobs
from modelhub_runtime import cluster, mongo, ops, telemetry
from modelhub_runtime.messaging import EVENTS_STREAM
from modelhub_runtime.runtime import answer_pings, configure_logging
from modelhub_runtime.settings import ServiceSettings


def build_app(
    settings: ServiceSettings, tel: telemetry.Telemetry | None = None
) -> tuple[FastStream, NatsBroker, AsyncDatabase]:
    """Wire broker, stores and handlers; the one place configuration enters. Returns the app, its
    broker and the database (the HTTP probes ping both)."""
    tel = tel or telemetry.setup("registry", settings.telemetry_dir)
    broker = ops.make_broker(settings, tel)
    _, db = mongo.connect(settings)
    store = ModelStore(db)
    # Subscribers are declared here, where the AsyncAPI document sees them; they start after the
    # start-up hook below, which attaches the object store they use.
    blobs = PackageBlobs(None, settings.data_dir / "tmp" / "registry")
    handlers.register(broker, store, blobs, PackageLimits())
    answer_pings(broker, "registry")
    app = FastStream(broker)

    @app.on_startup
    async def connect() -> None:
        await cluster.join(broker, settings.nats_replicas, streams=[EVENTS_STREAM], buckets=[subjects.PACKAGES_BUCKET])
        await store.ensure_indexes()
        await aliases.flush_queued(store)
        blobs.store = await broker.object_storage(subjects.PACKAGES_BUCKET)  # declared by cluster.join

    return app, broker, db


def main() -> None:
    configure_logging("registry")
    settings = ServiceSettings()
    tel = telemetry.setup("registry", settings.telemetry_dir)
    app, broker, db = build_app(settings, tel)
    asyncio.run(ops.run(app, broker, tel, settings, lambda: db.command("ping")))
