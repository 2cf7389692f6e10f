"""The deployer process: NATS (FastStream) + MongoDB + Ray Serve, wired once from settings.

It holds the hub's credentials, so it is no Ray driver: Serve is reached through the Ray
dashboard's REST API, JSON over HTTP (serving.py)."""

import asyncio
import os

from faststream import FastStream
from faststream.nats import NatsBroker
from pymongo.asynchronous.database import AsyncDatabase

from modelhub_deployer import environments
from modelhub_deployer.authz import EventAuthorizer
from modelhub_deployer.deploy import Deployer
from modelhub_deployer.handlers import register
from modelhub_deployer.packages import ObjectStorePackages
from modelhub_deployer.serving import DashboardServe, ray_auth_token
from modelhub_deployer.store import DeploymentStore
from modelhub_deployer.watch import watch_deployments
from modelhub_runtime import cluster, mongo, ops, telemetry
from modelhub_runtime.messaging import EVENTS_STREAM
from modelhub_runtime.runtime import answer_pings, configure_logging
from modelhub_runtime.settings import ServiceSettings


def jail_args(settings: ServiceSettings) -> dict:
    """What every replica's model jail is told (modelhub_replica.jail): the media roots it may read
    (none: the machine less the covered places), the data dir it never shows, and whether a node
    without bubblewrap may run models unjailed."""
    roots = [p for p in settings.media_roots.split(os.pathsep) if p.strip()]
    return {"media_roots": roots, "hidden": [str(settings.data_dir)], "allow_unsealed": settings.allow_unsealed}


def build_app(
    settings: ServiceSettings | None = None, tel: telemetry.Telemetry | None = None
) -> tuple[FastStream, NatsBroker, AsyncDatabase]:
    """The deployer's FastStream app; subscribers (and the ping) start once Mongo is up. Returns
    the app, its broker and the database (the HTTP probes ping both)."""
    settings = settings or ServiceSettings()
    tel = tel or telemetry.setup("deployer", settings.telemetry_dir)
    broker = ops.make_broker(settings, tel)
    client, db = mongo.connect(settings)
    serve = DashboardServe(settings.ray_dashboard_url, settings.serve_url, ray_auth_token(), jail=jail_args(settings))
    store = DeploymentStore(db)
    # Ray's own conda settings (RAY_CONDA_HOME, CONDA_EXE) and PATH: where a node would find conda
    host = environments.Host.detect(os.environ)
    deployer = Deployer(store, serve, ObjectStorePackages(broker, settings.data_dir), host=host)
    register(broker, deployer, EventAuthorizer(db))
    answer_pings(broker, "deployer")
    app = FastStream(broker)
    watchers: set[asyncio.Task] = set()  # keeps the watch task referenced

    @app.on_startup
    async def connect() -> None:
        await db.command("ping")
        await cluster.join(broker, settings.nats_replicas, streams=[EVENTS_STREAM])

    @app.after_startup
    async def reconcile() -> None:
        await deployer.reconcile()
        watchers.add(asyncio.create_task(watch_deployments(deployer)))
        watchers.add(
            asyncio.create_task(
                telemetry.poll_gauge(
                    lambda: telemetry.replicas_ready(db), telemetry.GaugeSet(tel.metrics.replicas_ready, "deployment")
                )
            )
        )

    @app.on_shutdown
    async def close() -> None:
        for task in watchers:
            task.cancel()
        await deployer.close()
        await serve.close()
        await client.close()

    return app, broker, db


def main() -> None:
    configure_logging("deployer")
    settings = ServiceSettings()
    tel = telemetry.setup("deployer", settings.telemetry_dir)
    app, broker, db = build_app(settings, tel)
    asyncio.run(ops.run(app, broker, tel, settings, lambda: db.command("ping")))
