"""Service logs: one JSON object per line, no colour codes, with the ids at hand.

Each record carries `timestamp` (UTC, ISO 8601), `level`, `service`, `logger` and `message`, plus
when known: `job_id`, `task_id`, `deployment`, `dataset` (bound by a handler with `log_ids`, or
passed as `extra=`), `trace_id`/`span_id` (OpenTelemetry's current span, when that package is
importable and a span is recording), FastStream's `subject` and `message_id`, and `exception`.

Health pings (`modelhub.rpc.ping.*`, asked every few seconds by the gateway's /health) and the
gateway's own /health and /v2/health/* access lines are logged at DEBUG, not INFO. Anything else written to stdout
or stderr (a library's print, Ray's C++ core) is wrapped into a JSON line of logger `stdio`.
"""

import contextlib
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

ID_KEYS = ("job_id", "task_id", "deployment", "dataset")
EXTRA_KEYS = ("subject", "message_id")
PING_PREFIX = "modelhub.rpc.ping."
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Loggers that install their own (coloured) handlers and do not propagate: they get ours instead.
SELF_HANDLED = (
    "faststream",
    "faststream.access.nats",
    "ray",
    "ray.serve",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
)

_ids: ContextVar[dict[str, str] | None] = ContextVar("modelhub_log_ids", default=None)


@contextlib.contextmanager
def log_ids(**ids: object) -> Iterator[None]:
    """Every record logged inside carries these ids (None values are left out)."""
    token = _ids.set({**(_ids.get() or {}), **{k: str(v) for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _ids.reset(token)


def _trace_ids() -> dict[str, str]:
    try:
        from opentelemetry import trace
    except ImportError:
        return {}
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON (newlines inside the message stay escaped in the string)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": ANSI.sub("", record.getMessage()),
        }
        line.update(_ids.get() or {})
        for key in (*ID_KEYS, *EXTRA_KEYS):
            value = getattr(record, key, None)
            if value not in (None, ""):
                line[key] = str(value)
        line.update(_trace_ids())
        if record.exc_info:
            line["exception"] = ANSI.sub("", self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


class QuietPings(logging.Filter):
    """Health pings and health-probe access lines (/health, /v2/health/*) are DEBUG records: shown
    only when DEBUG is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and _is_health(record):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def _is_health(record: logging.LogRecord) -> bool:
    if str(getattr(record, "subject", "")).startswith(PING_PREFIX):
        return True
    # uvicorn.access: (client, method, path, http version, status)
    args = record.args if isinstance(record.args, tuple) else ()
    if record.name != "uvicorn.access" or len(args) < 3:
        return False
    path = str(args[2]).split("?")[0]
    # the hub's /health, and the Open Inference Protocol's probes (/v2/health/live, /v2/health/ready)
    return path.endswith("/health") or path.startswith("/v2/health/")


def handler(service: str, stream: TextIO | None = None) -> logging.StreamHandler:
    """A handler writing JSON lines to `stream` (stdout by default: the supervisor or the
    container runtime files them)."""
    out = _JsonHandler(stream or sys.stdout)
    out.setFormatter(JsonFormatter(service))
    out.addFilter(QuietPings())
    return out


class _JsonHandler(logging.StreamHandler):
    """Keeps its JSON formatter: ray.init sets its own format on the root logger's handlers."""

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        if self.formatter is None:
            super().setFormatter(fmt)


_configured: list[logging.Handler] = []  # this process's handler, once configured


def configure_logging(service: str, level: int | str = logging.INFO) -> None:
    """JSON lines on stdout for this process: the root logger and the libraries that bring their
    own handlers (FastStream, Ray, uvicorn); uncaught exceptions and warnings as records too; and
    whatever else reaches stdout or stderr (print, Ray's C++ core) wrapped into JSON lines.
    Idempotent: a second call only re-applies the handlers (see reclaim)."""
    if not _configured:
        stream = _capture_stray_output(service)
        _configured.append(handler(service, stream))
        logging.captureWarnings(True)

        def log_uncaught(kind, value, tb) -> None:
            logging.getLogger(service).critical("uncaught exception", exc_info=(kind, value, tb))

        sys.excepthook = log_uncaught
    logging.getLogger().setLevel(level)
    reclaim()


def reclaim() -> None:
    """Put this process's JSON handler back on the root logger and on the libraries that replace
    handlers (ray.init configures the root logger with its own format): call after such a call."""
    if not _configured:
        return
    out = _configured[0]
    logging.getLogger().handlers = [out]
    for name in SELF_HANDLED:
        adopted = logging.getLogger(name)
        adopted.handlers = [out]
        adopted.propagate = False


def _capture_stray_output(service: str) -> TextIO:
    """Point file descriptors 1 and 2 at a pipe whose lines a thread writes on as JSON lines, and
    return a stream on the original stdout for the log records themselves."""
    original = os.dup(1)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 1)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    records = os.fdopen(os.dup(original), "w", buffering=1, encoding="utf-8", errors="replace")

    def pump() -> None:
        with os.fdopen(read_fd, "rb") as source:
            for raw in source:
                text = ANSI.sub("", raw.decode("utf-8", errors="replace")).rstrip("\r\n")
                if text.strip():
                    os.write(original, (_stray_line(service, text) + "\n").encode())

    threading.Thread(target=pump, name="stray-output", daemon=True).start()
    return records


def _stray_line(service: str, text: str) -> str:
    """A line that reached stdout/stderr outside logging: kept as is when it is already one of our
    JSON lines, wrapped into one otherwise."""
    if text.startswith("{"):
        with contextlib.suppress(ValueError):
            if isinstance(json.loads(text), dict):
                return text
    return json.dumps(
        {
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": "INFO",
            "service": service,
            "logger": "stdio",
            "message": text,
        },
        ensure_ascii=False,
    )
