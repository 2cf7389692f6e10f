"""What every NATS service runs besides its handlers: the broker with tracing and Prometheus
middleware, and a small HTTP server for probes and metrics.

HTTP (port `http_port`, env MODELHUB_HTTP_PORT; the embedded stack gives each process a free one on
127.0.0.1): `/metrics` (Prometheus text: modelhub's metrics and FastStream's own), `/health/live`
(204 while the process serves), `/health/ready` (204 when NATS and MongoDB answer, else 503). No
token: these ports are meant for the host or the cluster network, never published to users; they
carry counts by deployment name and status, no credentials.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import FastStream
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.nats import NatsBroker
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from faststream.nats.prometheus import NatsPrometheusMiddleware
from faststream.nats.security import NatsSecurity, NatsToken, NatsUserPassword
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelhub_runtime.runtime import tune_gc
from modelhub_runtime.settings import NatsPool, ServiceSettings
from modelhub_runtime.telemetry import SERVICE_PREFIX, Telemetry

log = logging.getLogger(__name__)

READY_TIMEOUT = 2.0


def make_broker(settings: ServiceSettings, telemetry: Telemetry) -> NatsBroker:
    """The service's broker: every publish, request and consumed message is traced (context in
    the NATS headers) and counted (FastStream's Prometheus metrics, `faststream_*`). Its servers are
    MODELHUB_NATS_URL's pool: one server, or a cluster's, which the client fails over between."""
    pool = settings.nats_pool()
    return NatsBroker(
        pool.servers,
        security=nats_security(pool),
        middlewares=(
            NatsTelemetryMiddleware(tracer_provider=telemetry.tracer_provider),
            NatsPrometheusMiddleware(registry=telemetry.registry, app_name=SERVICE_PREFIX + telemetry.service),
        ),
    )


def nats_security(pool: NatsPool) -> NatsSecurity | None:
    """The pool's credentials as FastStream's security option (client options for every server)."""
    if pool.user is not None:
        return NatsUserPassword(pool.user, pool.password or "")
    return NatsToken(pool.token) if pool.token else None


def metrics_handler(telemetry: Telemetry):
    @get(include_in_schema=False)
    async def metrics(scope: Any) -> AsgiResponse:
        return AsgiResponse(generate_latest(telemetry.registry), 200, headers={"content-type": CONTENT_TYPE_LATEST})

    return metrics


def probe_handlers(broker: NatsBroker, mongo_ping: Callable[[], Awaitable[Any]] | None):
    @get(include_in_schema=False)
    async def live(scope: Any) -> AsgiResponse:
        return AsgiResponse(b"", 204)

    @get(include_in_schema=False)
    async def ready(scope: Any) -> AsgiResponse:
        missing = [] if await broker.ping(READY_TIMEOUT) else ["nats"]
        if mongo_ping is not None:
            try:
                await asyncio.wait_for(mongo_ping(), READY_TIMEOUT)
            except Exception:
                missing.append("mongo")
        return (
            AsgiResponse(b"", 204) if not missing else AsgiResponse(("not ready: " + ", ".join(missing)).encode(), 503)
        )

    return live, ready


def with_http(
    app: FastStream, broker: NatsBroker, telemetry: Telemetry, mongo_ping: Callable[[], Awaitable[Any]] | None = None
) -> AsgiFastStream:
    """The FastStream app as an ASGI app serving /metrics and the probes beside its handlers."""
    live, ready = probe_handlers(broker, mongo_ping)
    return AsgiFastStream.from_app(
        app, asgi_routes=[("/metrics", metrics_handler(telemetry)), ("/health/live", live), ("/health/ready", ready)]
    )


async def run(
    app: FastStream,
    broker: NatsBroker,
    telemetry: Telemetry,
    settings: ServiceSettings,
    mongo_ping: Callable[[], Awaitable[Any]] | None = None,
) -> None:
    """Run the service: with an `http_port`, under uvicorn on `http_host` with the probes and
    /metrics; without one, as a plain FastStream app. Start-up ends here: what it made is frozen
    out of the garbage collector's walks (runtime.tune_gc) before the service runs."""
    try:
        asgi = None if settings.http_port is None else with_http(app, broker, telemetry, mongo_ping)
        tune_gc()
        if asgi is None:
            await app.run()
        else:
            await asgi.run(
                log_level=logging.WARNING,
                run_extra_options={
                    "host": settings.http_host,
                    "port": settings.http_port,
                    "access_log": "false",
                    "log_config": None,
                },
            )
    finally:
        telemetry.shutdown()
