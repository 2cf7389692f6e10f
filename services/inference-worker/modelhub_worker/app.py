"""Inference worker: runs tasks against Ray Serve deployments, publishes SampleAnnotated.

It holds the hub's credentials, so it is no Ray driver: replicas are called over HTTP with JSON
through Serve's proxy (serving.py), and nothing a model returns is unpickled here."""

from faststream import FastStream
from faststream.nats import NatsBroker
from pymongo.asynchronous.database import AsyncDatabase

from modelhub_runtime import cluster, mongo, ops, telemetry
from modelhub_runtime.messaging import EVENTS_STREAM
from modelhub_runtime.runtime import answer_pings, configure_logging, run_service
from modelhub_runtime.settings import ServiceSettings
from modelhub_worker import handlers
from modelhub_worker.serving import ServeClient
from modelhub_worker.settings import WorkerSettings
from modelhub_worker.store import WorkerStore


def build_app(
    settings: ServiceSettings, tel: telemetry.Telemetry | None = None
) -> tuple[FastStream, NatsBroker, AsyncDatabase]:
    """Wire broker, store, Serve client and handlers; the one place configuration enters.
    Returns the app, its broker and the database (the HTTP probes ping both). Settings that are
    not WorkerSettings (tools building every service's broker) get the worker's default bounds."""
    tel = tel or telemetry.setup("inference-worker", settings.telemetry_dir)
    broker = ops.make_broker(settings, tel)
    _, db = mongo.connect(settings)
    store = WorkerStore(db)
    bounds = settings if isinstance(settings, WorkerSettings) else WorkerSettings.model_construct()
    serve = ServeClient(
        settings.serve_url,
        store.serve_secret,
        tel=tel,
        direct=settings.serve_direct,
        max_answer_bytes=bounds.max_answer_bytes,
        max_sample_bytes=bounds.max_sample_bytes,
        route=store.serve_route,
    )
    predict = handlers.register(broker, store, serve, tel.metrics)
    # answers only once started: subscribers start after the start-up hooks
    answer_pings(broker, "inference-worker")
    app = FastStream(broker)

    @app.on_startup
    async def connect_serve() -> None:
        await cluster.join(broker, settings.nats_replicas, streams=[EVENTS_STREAM, handlers.DEADLETTER_STREAM])
        await serve.connect()

    @app.after_startup
    async def predict_on_nats() -> None:
        await predict.start(broker)

    @app.on_shutdown
    async def close_serve() -> None:
        await predict.stop()
        await serve.close()

    return app, broker, db


def main() -> None:
    configure_logging("inference-worker")
    settings = WorkerSettings()
    tel = telemetry.setup("inference-worker", settings.telemetry_dir)
    app, broker, db = build_app(settings, tel)
    # on uvloop (run_service), as uvicorn gives the gateway: the worker's loop runs a NATS message
    # and a Serve HTTP call per online request and per job task, and the default loop's
    # Python-level transports cost more per call.
    run_service(ops.run(app, broker, tel, settings, lambda: db.command("ping")))
