"""The gateway's telemetry: HTTP spans (FastAPI's instrumentation), the progress fold's spans in
each job's trace, the metrics it reads from MongoDB (jobs by status, annotated samples by
deployment) and the /metrics route on its own port.

/metrics is served on the gateway's own port without a token (API.md section 6), for Prometheus;
it shows counts by deployment name, job status and NATS subject, never a token or credential.
"""

import contextlib
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modelhub_contracts.documents import Job
from modelhub_contracts.events import SampleAnnotated
from modelhub_runtime import telemetry

_PROPAGATOR = TraceContextTextMapPropagator()
# Probes and scrapes start no trace
EXCLUDED_URLS = "api/v1/health,v2/health,metrics"


def instrument(app: FastAPI, tel: telemetry.Telemetry) -> None:
    """A server span per request (the root of a job's trace for a submit); context from a
    caller's `traceparent` header is continued."""
    if tel.enabled:
        # No "http send"/"http receive" child spans: three more spans per request to create and
        # export, on every online predict, for timings the server span already holds
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=tel.tracer_provider, excluded_urls=EXCLUDED_URLS, exclude_spans=["receive", "send"]
        )


def submitted(job: Job) -> None:
    """Mark the submit's span (the job trace's root) with what the job is."""
    telemetry.annotate_current(
        {
            telemetry.JOB_ID: job["_id"],
            telemetry.DATASET: job["dataset"],
            telemetry.DEPLOYMENT: job["deployment"],
            telemetry.MODEL: job.get("model"),
            telemetry.MODEL_VERSION: job.get("version"),
            "modelhub.samples_total": job["total"],
        }
    )


@contextlib.contextmanager
def fold_spans(
    tel: telemetry.Telemetry, events: Sequence[SampleAnnotated], headers: Sequence[dict[str, Any]]
) -> Iterator[None]:
    """One span per folded event (a task's outcomes), each in its job's trace (the context its
    worker published it with), open while the batch is written."""
    spans: list[Span] = []
    if tel.enabled:
        for event, carrier in zip(events, headers, strict=False):
            ok = sum(1 for s in event.samples if s.ok)
            spans.append(
                tel.tracer.start_span(
                    "fold progress",
                    context=_PROPAGATOR.extract(carrier or {}),
                    attributes={
                        telemetry.JOB_ID: event.job_id,
                        telemetry.TASK_ID: event.task_id,
                        telemetry.ATTEMPT: event.attempt,
                        telemetry.SAMPLES_OK: ok,
                        telemetry.SAMPLES_FAILED: len(event.samples) - ok,
                    },
                )
            )
    try:
        yield
    except Exception as exc:
        for span in spans:
            span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
        raise
    finally:
        for span in spans:
            span.end()


def polls(db: Any, tel: telemetry.Telemetry, every: float = 5.0) -> list[Coroutine[Any, Any, None]]:
    """The metrics the gateway reads from MongoDB, each kept fresh by a loop of its own: jobs by
    status, and the samples the stored jobs annotated by deployment (API.md section 6 promises that
    counter on this port; the worker's own counts only what each worker process saw)."""
    return [
        telemetry.poll_gauge(
            lambda: telemetry.jobs_by_status(db), telemetry.GaugeSet(tel.metrics.jobs, "status"), every
        ),
        telemetry.poll_gauge(
            lambda: telemetry.samples_annotated_by_deployment(db),
            telemetry.CounterSet(tel.metrics.jobs_samples_annotated, "deployment"),
            every,
        ),
    ]


async def metrics(request: Request) -> Response:
    """Public (no token, as API.md says: bind the port to loopback or filter /metrics at the proxy
    in production): Prometheus text format, counts by deployment and job status, never a token."""
    registry = request.app.state.telemetry.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
