"""Service logs are JSON lines with the ids at hand; pings are DEBUG; the supervisor rotates files."""

import io
import json
import logging

import pytest

from modelhub import logfiles
from modelhub_runtime import logs


@pytest.fixture
def captured():
    """A logger writing through the services' handler into a buffer."""
    out = logs.handler("scheduler")
    buffer = io.StringIO()
    out.setStream(buffer)
    logger = logging.getLogger("modelhub.test.logs")
    logger.handlers, logger.propagate = [out], False
    logger.setLevel(logging.INFO)
    yield logger, lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    logger.handlers = []


def test_a_record_is_one_line_of_json_with_the_fields_ops_read(captured):
    logger, lines = captured
    logger.warning("two\nlines and \x1b[31mcolour\x1b[0m %s", "here")
    (line,) = lines()
    assert line["level"] == "WARNING" and line["service"] == "scheduler" and line["logger"] == "modelhub.test.logs"
    assert line["message"] == "two\nlines and colour here"  # no ANSI codes, newline escaped inside the JSON
    assert line["timestamp"].endswith("+00:00") and "T" in line["timestamp"]


def test_ids_bound_by_a_handler_and_passed_as_extra_are_on_the_record(captured):
    logger, lines = captured
    with logs.log_ids(job_id="j1", task_id="j1.1.0", deployment=None):
        logger.info("in a task", extra={"dataset": "photos"})
    logger.info("after")
    inside, after = lines()
    assert (inside["job_id"], inside["task_id"], inside["dataset"]) == ("j1", "j1.1.0", "photos")
    assert "deployment" not in inside
    assert "job_id" not in after


def test_the_trace_id_comes_from_the_current_opentelemetry_span(captured):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    logger, lines = captured
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        logger.info("traced")
    logger.info("untraced")
    traced, untraced = lines()
    assert traced["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert traced["span_id"] == format(span.get_span_context().span_id, "016x")
    assert "trace_id" not in untraced
    assert trace.get_current_span().get_span_context().is_valid is False


def test_an_exception_is_kept_in_the_same_line(captured):
    logger, lines = captured
    try:
        raise ValueError("bad")
    except ValueError:
        logger.exception("failed")
    (line,) = lines()
    assert line["message"] == "failed" and "ValueError: bad" in line["exception"]


def test_health_pings_and_health_access_lines_are_debug(captured):
    logger, lines = captured
    logger.info("Received", extra={"subject": "modelhub.rpc.ping.registry", "message_id": "abc"})
    logger.info("Received", extra={"subject": "modelhub.evt.jobs.submitted", "message_id": "abc"})
    access = logging.getLogger("uvicorn.access")
    record = access.makeRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", "/api/v1/health", "1.1", 200),
        None,
    )
    assert logs.QuietPings().filter(record) is False and record.levelname == "DEBUG"
    for path, quiet in (("/v2/health/ready", True), ("/v2/health/live", True), ("/v2/models/m/ready", False)):
        probe = access.makeRecord(
            "uvicorn.access", logging.INFO, __file__, 1, "%s %s %s", ("127.0.0.1:1", "GET", path, "1.1", 200), None
        )
        assert logs.QuietPings().filter(probe) is not quiet, path
    (line,) = lines()
    assert line["subject"] == "modelhub.evt.jobs.submitted" and line["message_id"] == "abc"
    logger.setLevel(logging.DEBUG)
    logger.info("Received", extra={"subject": "modelhub.rpc.ping.registry"})
    assert lines()[-1]["level"] == "DEBUG"


def test_rotation_keeps_a_few_bounded_files(tmp_path):
    log = tmp_path / "gateway.log"
    for round_ in range(5):
        log.write_text(f"{round_}\n" * 100)
        assert logfiles.rotate_all(tmp_path, max_bytes=50, keep=3) == [log]
    assert log.read_text() == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "gateway.log",
        "gateway.log.1",
        "gateway.log.2",
        "gateway.log.3",
    ]
    assert (tmp_path / "gateway.log.1").read_text().startswith("4\n")
    assert (tmp_path / "gateway.log.3").read_text().startswith("2\n")
    log.write_text("small\n")
    assert logfiles.rotate_all(tmp_path, max_bytes=50, keep=3) == []  # under the bound: left alone


def test_the_supervisors_banner_is_a_json_line_too():
    line = json.loads(logfiles.banner("registry", "starting registry: python -m modelhub_registry"))
    assert line["service"] == "registry" and line["logger"] == "modelhub.supervisor"
