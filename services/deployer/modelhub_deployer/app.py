"""The deployer process: NATS (FastStream) + MongoDB + Ray Serve, wired once from settings."""

import asyncio

import ray
from faststream import FastStream
from faststream.nats import NatsBroker

from modelhub_contracts import logs, mongo, subjects
from modelhub_contracts.raywatch import watch_cluster
from modelhub_contracts.runtime import answer_pings
from modelhub_contracts.settings import ServiceSettings

from modelhub_deployer.authz import EventAuthorizer
from modelhub_deployer.deploy import Deployer
from modelhub_deployer.handlers import register
from modelhub_deployer.packages import ObjectStorePackages
from modelhub_deployer.serving import RayServe, start_serve
from modelhub_deployer.store import DeploymentStore


def _connect_ray(address: str) -> None:
    # The Serve namespace lets the worker (another driver) find apps with serve.get_app_handle.
    ray.init(address=address, namespace=subjects.SERVE_NAMESPACE, ignore_reinit_error=True,
             log_to_driver=False)
    start_serve()


def build_app(settings: ServiceSettings | None = None) -> FastStream:
    """The deployer's FastStream app; subscribers (and the ping) start once Ray and Mongo are up."""
    settings = settings or ServiceSettings()
    broker = NatsBroker(settings.nats_url)
    client, db = mongo.connect(settings)
    deployer = Deployer(DeploymentStore(db), RayServe(),
                        ObjectStorePackages(broker, settings.data_dir))
    register(broker, deployer, EventAuthorizer(db))
    answer_pings(broker, "deployer")
    app = FastStream(broker)
    watchers: set[asyncio.Task] = set()  # keeps the watch task referenced

    @app.on_startup
    async def connect() -> None:
        await db.command("ping")
        await asyncio.to_thread(_connect_ray, settings.ray_address)
        logs.reclaim()  # ray.init put its own handler on the root logger

    @app.after_startup
    async def reconcile() -> None:
        await deployer.reconcile()
        watchers.add(asyncio.create_task(watch_cluster()))

    @app.on_shutdown
    async def close() -> None:
        await deployer.close()
        await client.close()

    return app
