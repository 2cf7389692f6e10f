"""Registry service: models, versions and schemas in MongoDB; package zips in NATS's object store."""

from faststream import FastStream
from faststream.nats import NatsBroker

from modelhub_contracts import mongo, subjects
from modelhub_contracts.package import PackageLimits
from modelhub_contracts.runtime import answer_pings, configure_logging
from modelhub_contracts.settings import ServiceSettings

from modelhub_registry import handlers
from modelhub_registry.store import ModelStore, PackageBlobs


def build_app(settings: ServiceSettings) -> FastStream:
    """Wire broker, stores and handlers; the one place configuration enters."""
    broker = NatsBroker(settings.nats_url)
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
        await broker.connect()
        await store.ensure_indexes()
        blobs.store = await broker.object_storage(subjects.PACKAGES_BUCKET)

    return app


def main() -> None:
    import asyncio

    configure_logging("registry")
    asyncio.run(build_app(ServiceSettings()).run())
