"""Traces and metrics for every modelhub process: one TracerProvider and one MeterProvider each.

Why one module: the services must agree on names (span attributes, metric names that a Grafana
dashboard is built on, the `modelhub-<service>` service names) and on how trace context travels
(NATS headers through FastStream's telemetry middleware; `traceparent` strings stored with a job's
tasks, which are published long after the submit that started the trace).

Exporters follow the standard `OTEL_*` variables, read here and nowhere else:
  - `OTEL_SDK_DISABLED=true`: no spans at all (metrics stay: they are counters in memory);
  - `OTEL_TRACES_EXPORTER=none|otlp|console`, and OTLP whenever `OTEL_EXPORTER_OTLP_ENDPOINT`
    (or `..._TRACES_ENDPOINT`) is set (OTLP over HTTP/protobuf; its own variables configure it);
  - none of those, and a telemetry dir given (the embedded stack passes `DIR/telemetry`): spans are
    written as JSON lines there, one file per process, rotated at `MAX_FILE_BYTES`, the dir pruned
    to `MAX_DIR_BYTES` at each start. `modelhub jobs trace` reads them.
Metrics are always served in Prometheus' text format (`/metrics`); with an OTLP endpoint they are
also pushed there.
"""

import asyncio
import json
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CollectorRegistry

from modelhub_contracts.documents import ON_CLUSTER

log = logging.getLogger(__name__)

SERVICE_PREFIX = "modelhub-"
VERSION = "0.1.0"
REPLICA_SERVICE = "replica"  # the replica's spans are recorded by the worker under this name

# Span attributes (one name each, everywhere)
JOB_ID = "modelhub.job_id"
TASK_ID = "modelhub.task_id"
DATASET = "modelhub.dataset"
DEPLOYMENT = "modelhub.deployment"
MODEL = "modelhub.model"
MODEL_VERSION = "modelhub.model_version"
BATCH_SIZE = "modelhub.batch_size"
SAMPLES_OK = "modelhub.samples_ok"
SAMPLES_FAILED = "modelhub.samples_failed"
ATTEMPT = "modelhub.attempt"

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_DIR_BYTES = 256 * 1024 * 1024
SPAN_FILE_SUFFIX = ".jsonl"

_PROPAGATOR = TraceContextTextMapPropagator()
_FALSY = {"", "0", "false", "no", "off"}


# ------------------------------------------------------------------ metrics (fixed names)

# Latency buckets in seconds (OTel's default buckets are meant for milliseconds)
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Metrics:
    """modelhub's own instruments. Names are a contract (the Grafana dashboard uses them): the
    Prometheus exporter adds `_total` to counters, and keeps the `_seconds` these already have."""

    def __init__(self, provider: MeterProvider) -> None:
        meter = provider.get_meter("modelhub", VERSION)
        self.samples_annotated = meter.create_counter(
            "modelhub_samples_annotated", description="samples whose outputs were written, by deployment"
        )
        self.samples_failed = meter.create_counter(
            "modelhub_samples_failed", description="samples that failed (model error, bad output, gone), by deployment"
        )
        self.task_duration = meter.create_histogram(
            "modelhub_task_duration_seconds",
            unit="s",
            description="a job task in a worker, load to publish",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self.serve_call_duration = meter.create_histogram(
            "modelhub_serve_call_duration_seconds",
            unit="s",
            description="one call into a deployment's replicas",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )
        self.tasks_waiting = meter.create_gauge(
            "modelhub_tasks_waiting", description="tasks queued in the scheduler, not yet published"
        )
        self.tasks_in_flight = meter.create_gauge(
            "modelhub_tasks_in_flight", description="tasks published to the workers and not done"
        )
        self.replicas_ready = meter.create_gauge(
            "modelhub_replicas_ready", description="Serve replicas running, by deployment"
        )
        self.jobs = meter.create_gauge("modelhub_jobs", description="jobs by status")
        # The gateway's count of annotated samples, from the stored jobs: on the API's own port, and
        # named apart from the worker's counter so that summing that one over services stays right.
        self.jobs_samples_annotated = meter.create_counter(
            "modelhub_jobs_samples_annotated",
            description="samples annotated, as the stored jobs count them, by deployment",
        )


class GaugeSet:
    """Sets a gauge for every key of a fresh reading, and 0 for keys that were there before and
    are gone (a deployment whose queue emptied must read 0, not its last value)."""

    def __init__(self, gauge: Any, label: str) -> None:
        self.gauge, self.label, self.seen = gauge, label, set[str]()

    def update(self, values: Mapping[str, float]) -> None:
        for key in self.seen - set(values):
            self.gauge.set(0, {self.label: key})
        for key, value in values.items():
            self.gauge.set(value, {self.label: key})
        self.seen |= set(values)


class CounterSet:
    """Adds to a counter, for every key of a fresh reading of running totals, what the total grew
    by since the last reading (the first reading whole): a total read from MongoDB becomes a
    counter that never goes down (a dataset deleted with its jobs lowers the total, not the counter)."""

    def __init__(self, counter: Any, label: str) -> None:
        self.counter, self.label, self.last = counter, label, dict[str, float]()

    def update(self, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            grown = value - self.last.get(key, 0)
            if grown > 0:
                self.counter.add(grown, {self.label: key})
        self.last = dict(values)


async def poll_gauge(
    read: Callable[[], Awaitable[Mapping[str, float]]], gauges: GaugeSet | CounterSet, every: float = 5.0
) -> None:
    """Update a gauge (or counter) from a fresh reading every `every` seconds, forever (a failed
    reading, MongoDB away, keeps the last values until the next one)."""
    while True:
        try:
            gauges.update(await read())
        except Exception:
            log.debug("gauge reading failed", exc_info=True)
        await asyncio.sleep(every)


async def jobs_by_status(db: Any) -> dict[str, float]:
    """{status: number of jobs} over the jobs collection (the `modelhub_jobs` gauge)."""
    rows = await db["jobs"].aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}])
    return {str(row["_id"]): row["n"] async for row in rows}


async def samples_annotated_by_deployment(db: Any) -> dict[str, float]:
    """{deployment: samples its jobs annotated} over the jobs collection (the gateway's
    `modelhub_jobs_samples_annotated` counter): each job's `succeeded`, summed by deployment."""
    rows = await db["jobs"].aggregate([{"$group": {"_id": "$deployment", "n": {"$sum": "$succeeded"}}}])
    return {str(row["_id"]): row["n"] async for row in rows}


async def replicas_ready(db: Any) -> dict[str, float]:
    """{deployment: ready replicas} for deployments that hold replicas (the deployer's gauge)."""
    cursor = db["deployments"].find({"status": {"$in": list(ON_CLUSTER)}}, projection={"ready_replicas": 1})
    return {doc["_id"]: doc.get("ready_replicas", 0) or 0 async for doc in cursor}


# ------------------------------------------------------------------ spans to JSON lines


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """One span as the JSON object `modelhub jobs trace` reads."""
    ctx = span.get_span_context()
    assert ctx is not None  # a span made by the SDK always has its context
    parent = span.parent
    return {
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "service": span.resource.attributes.get("service.name", "?"),
        "instance": span.resource.attributes.get("service.instance.id"),
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "error": span.status.description,
        "attributes": {
            k: v if isinstance(v, (str, int, float, bool)) else list(v) if isinstance(v, Sequence) else str(v)
            for k, v in (span.attributes or {}).items()
        },
        "links": [
            {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
            for link in span.links
        ],
    }


class JsonLinesSpanExporter(SpanExporter):
    """Appends spans to `<dir>/<stem>.jsonl`; past `max_bytes` the file becomes `<stem>.jsonl.1`
    (one older file kept), so a process never holds more than twice `max_bytes` on disk."""

    def __init__(self, directory: Path, stem: str, max_bytes: int = MAX_FILE_BYTES) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{stem}{SPAN_FILE_SUFFIX}"
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        text = "".join(json.dumps(span_record(s), separators=(",", ":")) + "\n" for s in spans)
        try:
            with self._lock:
                if self.path.exists() and self.path.stat().st_size + len(text) > self.max_bytes:
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                with open(self.path, "a", encoding="utf-8") as out:
                    out.write(text)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def prune(directory: Path, max_total: int = MAX_DIR_BYTES) -> None:
    """Delete the oldest span files until the dir holds at most `max_total` bytes (restarted
    processes leave their files behind; this keeps the dir bounded across restarts)."""
    try:
        files = sorted(
            (p for p in directory.iterdir() if SPAN_FILE_SUFFIX in p.name),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        total = 0
        for path in files:
            total += path.stat().st_size
            if total > max_total:
                path.unlink(missing_ok=True)
    except OSError:
        pass


# ------------------------------------------------------------------ sampling


class QuietRoots(Sampler):
    """Health pings start traces of their own every few seconds; they are dropped at the root (no
    span, nothing exported). Everything else is kept; children follow their parent's decision."""

    def should_sample(
        self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None
    ) -> SamplingResult:
        if ".rpc.ping." in name or name.startswith("GET /health"):
            return SamplingResult(Decision.DROP)
        return ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return "QuietRoots"


# ------------------------------------------------------------------ set-up


class Telemetry:
    """A process's providers; `tracer` for its own spans, `metrics` for modelhub's instruments,
    `registry` for its `/metrics` endpoint."""

    def __init__(
        self,
        service: str,
        tracer_provider: trace.TracerProvider,
        meter_provider: MeterProvider,
        registry: CollectorRegistry,
        exporters: list[SpanExporter],
    ) -> None:
        self.service = service
        self.tracer_provider, self.meter_provider, self.registry = tracer_provider, meter_provider, registry
        self.tracer = tracer_provider.get_tracer(f"modelhub.{service}", VERSION)
        self.metrics = Metrics(meter_provider)
        self._exporters = exporters
        self._replica_tracer: trace.Tracer | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._exporters)

    def replica_tracer(self) -> trace.Tracer:
        """A tracer whose spans carry service.name `modelhub-replica`: the worker records the
        replica's span from the timing the replica reports (the replica has no exporter)."""
        if self._replica_tracer is None:
            provider = _tracer_provider(_resource(REPLICA_SERVICE), self._exporters)
            self._replica_tracer = provider.get_tracer("modelhub.replica", VERSION)
        return self._replica_tracer

    def shutdown(self) -> None:
        for provider in (self.tracer_provider, self.meter_provider):
            shutdown = getattr(provider, "shutdown", None)
            if shutdown:
                shutdown()


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def _resource(service: str) -> Resource:
    return Resource.create(
        {
            "service.name": SERVICE_PREFIX + service,
            "service.version": VERSION,
            "service.namespace": "modelhub",
            "service.instance.id": f"{socket.gethostname()}-{os.getpid()}",
        }
    )


def _span_exporters(service: str, telemetry_dir: Path | None) -> list[SpanExporter]:
    if _env("OTEL_SDK_DISABLED").lower() not in _FALSY:
        return []
    chosen = _env("OTEL_TRACES_EXPORTER").lower()
    if chosen == "none":
        return []
    if chosen == "otlp" or _env("OTEL_EXPORTER_OTLP_ENDPOINT") or _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return [OTLPSpanExporter()]
    if chosen == "console":
        return [ConsoleSpanExporter()]
    if telemetry_dir is not None:
        prune(telemetry_dir)
        return [JsonLinesSpanExporter(telemetry_dir, f"spans-{service}-{os.getpid()}")]
    return []


def _tracer_provider(resource: Resource, exporters: list[SpanExporter]) -> trace.TracerProvider:
    if not exporters:
        return trace.NoOpTracerProvider()
    provider = TracerProvider(resource=resource, sampler=ParentBased(root=QuietRoots()))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _meter_provider(resource: Resource, registry: CollectorRegistry) -> MeterProvider:
    readers: list[Any] = [PrometheusMetricReader(registry=registry, disable_target_info=True, scope_info_enabled=False)]
    otlp = _env("OTEL_EXPORTER_OTLP_ENDPOINT") or _env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    if otlp and _env("OTEL_METRICS_EXPORTER").lower() != "none":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    return MeterProvider(resource=resource, metric_readers=readers)


def setup(service: str, telemetry_dir: Path | None = None) -> Telemetry:
    """The process's providers, built once at start (app.py). Also instruments pymongo: every
    MongoDB command issued inside a span gets a span of its own."""
    resource = _resource(service)
    exporters = _span_exporters(service, telemetry_dir)
    tracer_provider = _tracer_provider(resource, exporters)
    registry = CollectorRegistry(auto_describe=True)
    telemetry = Telemetry(service, tracer_provider, _meter_provider(resource, registry), registry, exporters)
    if exporters:
        from modelhub_runtime.mongotrace import instrument

        instrument(telemetry.tracer)
    return telemetry


# ------------------------------------------------------------------ context carried in events


def current_traceparent() -> str | None:
    """The current span's context as a W3C `traceparent`, to store with an event that another
    process handles later (None when no span is being recorded)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def context_from(traceparent: str | None) -> otel_context.Context | None:
    return _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None


@contextmanager
def attached(traceparent: str | None) -> Iterator[None]:
    """Run the block as part of the trace `traceparent` names (a no-op without one): what it
    publishes carries that trace on, even from a sweep that runs outside any message."""
    ctx = context_from(traceparent)
    if ctx is None:
        yield
        return
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def annotate_current(attributes: Mapping[str, Any]) -> None:
    """Set modelhub attributes on the span being recorded (e.g. a FastStream consumer span)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})
