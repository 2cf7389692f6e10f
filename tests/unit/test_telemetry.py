"""Telemetry set-up: the metric names the dashboard is built on, spans as bounded JSON lines,
trace context carried by a stored task, health pings kept out of traces, and the CLI's tree."""

import asyncio
import json

from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from prometheus_client import generate_latest

from modelhub import trace as cli_trace
from modelhub_contracts.events import JobSubmitted
from modelhub_gateway import observability
from modelhub_gateway.app import build_app
from modelhub_gateway.settings import GatewaySettings
from modelhub_runtime import telemetry
from modelhub_scheduler.schedule import task_for


def spans_on(tmp_path, monkeypatch) -> telemetry.Telemetry:
    for name in (
        "OTEL_SDK_DISABLED",
        "OTEL_TRACES_EXPORTER",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    return telemetry.setup("scheduler", tmp_path)


def test_metric_names_are_the_published_ones(tmp_path, monkeypatch):
    tel = spans_on(tmp_path, monkeypatch)
    m, labels = tel.metrics, {"deployment": "d1"}
    m.samples_annotated.add(9, labels)
    m.samples_failed.add(3, labels)
    m.task_duration.record(0.5, labels)
    m.serve_call_duration.record(0.25, labels)
    telemetry.GaugeSet(m.tasks_waiting, "deployment").update({"d1": 4})
    telemetry.GaugeSet(m.tasks_in_flight, "deployment").update({"d1": 2})
    telemetry.GaugeSet(m.replicas_ready, "deployment").update({"d1": 1})
    telemetry.GaugeSet(m.jobs, "status").update({"completed": 5})
    telemetry.CounterSet(m.jobs_samples_annotated, "deployment").update({"d1": 9})
    text = generate_latest(tel.registry).decode()
    for line in (
        'modelhub_samples_annotated_total{deployment="d1"} 9.0',
        'modelhub_samples_failed_total{deployment="d1"} 3.0',
        'modelhub_task_duration_seconds_count{deployment="d1"} 1.0',
        'modelhub_serve_call_duration_seconds_sum{deployment="d1"} 0.25',
        'modelhub_tasks_waiting{deployment="d1"} 4.0',
        'modelhub_tasks_in_flight{deployment="d1"} 2.0',
        'modelhub_replicas_ready{deployment="d1"} 1.0',
        'modelhub_jobs{status="completed"} 5.0',
        'modelhub_jobs_samples_annotated_total{deployment="d1"} 9.0',
    ):
        assert line in text, f"{line!r} not in\n{text}"
    tel.shutdown()


def test_a_gauge_reads_zero_for_a_key_that_is_gone(tmp_path, monkeypatch):
    tel = spans_on(tmp_path, monkeypatch)
    gauges = telemetry.GaugeSet(tel.metrics.tasks_waiting, "deployment")
    gauges.update({"a": 3, "b": 1})
    gauges.update({"b": 2})
    text = generate_latest(tel.registry).decode()
    assert 'modelhub_tasks_waiting{deployment="a"} 0.0' in text
    assert 'modelhub_tasks_waiting{deployment="b"} 2.0' in text


def test_a_counter_from_stored_totals_adds_what_they_grew_by_and_never_goes_down(tmp_path, monkeypatch):
    tel = spans_on(tmp_path, monkeypatch)
    counts = telemetry.CounterSet(tel.metrics.jobs_samples_annotated, "deployment")
    for reading in ({"a": 9}, {"a": 12, "b": 2}, {"a": 4}, {"a": 6, "b": 1}):  # a dataset deleted, then more
        counts.update(reading)
    text = generate_latest(tel.registry).decode()
    assert 'modelhub_jobs_samples_annotated_total{deployment="a"} 14.0' in text  # 9 + 3 + 2
    assert 'modelhub_jobs_samples_annotated_total{deployment="b"} 3.0' in text  # 2, gone, then 1 again


class FakeJobs:
    """The jobs collection for a one-stage `$group` pipeline summing a field (or 1) by a field."""

    def __init__(self, *docs: dict) -> None:
        self.docs = docs

    async def aggregate(self, pipeline: list[dict]):
        [stage] = pipeline
        group = stage["$group"]
        key = group["_id"].removeprefix("$")
        [(name, accumulator)] = [(k, v) for k, v in group.items() if k != "_id"]
        what = accumulator["$sum"]
        totals: dict = {}
        for doc in self.docs:
            add = doc[what.removeprefix("$")] if isinstance(what, str) else what
            totals[doc[key]] = totals.get(doc[key], 0) + add

        async def rows():
            for value, total in totals.items():
                yield {"_id": value, name: total}

        return rows()


READ = (b"modelhub_jobs_samples_annotated_total{", b"modelhub_jobs{")


def test_the_gateways_metrics_count_the_samples_its_stored_jobs_annotated(tmp_path, monkeypatch):
    """docs/API.md section 6: the annotated-samples counter is on the gateway's own /metrics, read
    from MongoDB, reaching each job's count."""
    jobs = FakeJobs(
        {"deployment": "d1", "status": "completed", "succeeded": 9},
        {"deployment": "d1", "status": "running", "succeeded": 4},
        {"deployment": "d2", "status": "completed", "succeeded": 0},
    )
    tel = spans_on(tmp_path, monkeypatch)
    app = build_app(GatewaySettings(data_dir=tmp_path, admin_token="x"), tel)

    async def one_reading() -> None:
        polls = [asyncio.create_task(p) for p in observability.polls({"jobs": jobs}, tel, every=60)]
        try:  # each loop reads once at its start: wait until both readings are in, with a bound
            async with asyncio.timeout(5):
                while not all(line in generate_latest(tel.registry) for line in READ):
                    await asyncio.sleep(0.001)
        finally:
            for poll in polls:
                poll.cancel()

    asyncio.run(one_reading())
    text = TestClient(app).get("/metrics").text  # no token
    assert 'modelhub_jobs_samples_annotated_total{deployment="d1"} 13.0' in text
    assert 'modelhub_jobs_samples_annotated_total{deployment="d2"}' not in text  # nothing annotated yet
    assert 'modelhub_jobs{status="completed"} 2.0' in text


def test_spans_go_to_json_lines_with_their_service_and_attributes(tmp_path, monkeypatch):
    tel = spans_on(tmp_path, monkeypatch)
    with tel.tracer.start_as_current_span("plan job") as span:
        telemetry.annotate_current({telemetry.JOB_ID: "j1", telemetry.BATCH_SIZE: 4, "skipped": None})
        traceparent = telemetry.current_traceparent()
        with telemetry.attached(None):
            pass
    provider = tel.tracer_provider
    assert isinstance(provider, TracerProvider)  # the SDK's: an exporter is configured
    provider.force_flush()
    [record] = [json.loads(line) for p in tmp_path.glob("*.jsonl") for line in p.read_text().splitlines()]
    assert record["service"] == "modelhub-scheduler" and record["name"] == "plan job"
    assert record["attributes"] == {"modelhub.job_id": "j1", "modelhub.batch_size": 4}
    assert traceparent.startswith(f"00-{record['trace_id']}-{record['span_id']}-")
    assert span.get_span_context().trace_id == int(record["trace_id"], 16)


def test_health_pings_start_no_trace_and_their_children_follow(tmp_path, monkeypatch):
    tel = spans_on(tmp_path, monkeypatch)
    with tel.tracer.start_as_current_span("modelhub.rpc.ping.scheduler process") as ping:
        assert not ping.is_recording()
        with tel.tracer.start_as_current_span("child") as child:
            assert not child.is_recording()
    with tel.tracer.start_as_current_span("modelhub.events.jobs.submitted process") as kept:
        assert kept.is_recording()


def test_the_span_file_rotates_and_keeps_one_older_file(tmp_path):
    exporter = telemetry.JsonLinesSpanExporter(tmp_path, "spans-x", max_bytes=2000)
    provider = trace_provider_with(exporter)
    tracer = provider.get_tracer("t")
    for i in range(40):
        with tracer.start_as_current_span(f"span {i}"):
            pass
        provider.force_flush()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["spans-x.jsonl", "spans-x.jsonl.1"]
    assert all(p.stat().st_size <= 2000 for p in tmp_path.iterdir())


def trace_provider_with(exporter):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def test_the_dir_is_pruned_to_its_bound_oldest_first(tmp_path):
    import os

    for i in range(5):
        path = tmp_path / f"spans-s-{i}.jsonl"
        path.write_text("x" * 1000)
        os.utime(path, (1000 + i, 1000 + i))
    telemetry.prune(tmp_path, max_total=2500)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spans-s-3.jsonl", "spans-s-4.jsonl"]


def test_a_planned_task_keeps_the_trace_it_was_planned_in():
    job = JobSubmitted(
        job_id="j",
        dataset="d",
        deployment="dep",
        inputs={},
        outputs={},
        output_types={},
        mini_batch=2,
        submitted_by="u",
        traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    )
    planned_in = "00-" + "c" * 32 + "-" + "d" * 16 + "-01"
    assert task_for(job, 0, ["s1"], planned_in).traceparent == planned_in
    assert task_for(job, 0, ["s1"]).traceparent == job.traceparent
    ctx = telemetry.context_from(planned_in)
    assert trace.get_current_span(ctx).get_span_context().trace_id == int("c" * 32, 16)


def test_the_cli_prints_the_jobs_trace_as_a_tree():
    def span(sid, parent, name, service, start, end, **attrs):
        return {
            "trace_id": "t1",
            "span_id": sid,
            "parent_id": parent,
            "name": name,
            "service": service,
            "start_ns": start,
            "end_ns": end,
            "status": "UNSET",
            "attributes": attrs,
        }

    spans = [
        span(
            "1", None, "POST /api/v1/datasets/{name}/jobs", "modelhub-gateway", 0, 5_000_000, **{"modelhub.job_id": "J"}
        ),
        span("2", "1", "jobs.submitted process", "modelhub-scheduler", 1_000_000, 3_000_000),
        span("3", "2", "replica predict_chunk", "modelhub-replica", 2_000_000, 2_500_000, **{"modelhub.batch_size": 4}),
        {**span("9", None, "other job", "modelhub-gateway", 0, 1), "trace_id": "t2"},
    ]
    found = cli_trace.job_spans(spans, "J")
    assert [s["span_id"] for s in found] == ["1", "2", "3"]
    lines = cli_trace.render_tree(found)
    assert lines[0] == "trace t1: 3 spans, 0.005 s, services: gateway, replica, scheduler"
    assert lines[1].split() == [
        "0.0",
        "ms",
        "5.0",
        "ms",
        "└─",
        "POST",
        "/api/v1/datasets/{name}/jobs",
        "[gateway]",
        "job_id=J",
    ]
    assert lines[2].endswith("   └─ jobs.submitted process [scheduler]") and "2.0 ms" in lines[2]
    assert lines[3].endswith("      └─ replica predict_chunk [replica]  batch_size=4")


def test_the_worker_counts_every_chunk_of_a_tasks_outcomes(tmp_path, monkeypatch):
    from modelhub_contracts.events import SampleAnnotated, SampleOutcome, TaskScheduled
    from modelhub_worker.handlers import count_outcomes

    tel = spans_on(tmp_path, monkeypatch)
    task = TaskScheduled(
        task_id="j.1.0",
        job_id="j",
        attempt=1,
        dataset="d",
        deployment="dep",
        sample_ids=[],
        inputs={},
        outputs={},
        output_types={},
    )
    totals = {telemetry.SAMPLES_OK: 0, telemetry.SAMPLES_FAILED: 0}
    with tel.tracer.start_as_current_span("task") as span:
        for chunk, oks in enumerate(([True, True, False], [True, False, False])):
            event = SampleAnnotated(
                job_id="j",
                attempt=1,
                task_id="j.1.0",
                chunk=chunk,
                chunks=2,
                samples=[SampleOutcome(sample_id=f"s{chunk}{i}", ok=ok) for i, ok in enumerate(oks)],
            )
            count_outcomes(tel.metrics, task, event, totals)
    assert isinstance(span, ReadableSpan) and span.attributes is not None  # a recording span
    assert span.attributes[telemetry.SAMPLES_OK] == 3 and span.attributes[telemetry.SAMPLES_FAILED] == 3
    text = generate_latest(tel.registry).decode()
    assert 'modelhub_samples_annotated_total{deployment="dep"} 3.0' in text
    assert 'modelhub_samples_failed_total{deployment="dep"} 3.0' in text
