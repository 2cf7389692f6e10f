"""`modelhub jobs trace JOB_ID`: a job's spans as a tree with durations.

The embedded stack's services write their spans as JSON lines under DIR/telemetry/ (see
modelhub_runtime.telemetry); a job's trace is every span of the traces in which a span carries
the job's id (`modelhub.job_id`): the submit, and a retry's submit, each start one. With an OTLP
exporter configured instead, the spans are in your tracing backend (Jaeger: search by the tag
modelhub.job_id) and this command finds none.
"""

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

JOB_ATTR = "modelhub.job_id"
SHOWN_PREFIX = "modelhub."


def read_spans(directory: Path) -> Iterator[dict[str, Any]]:
    """Every span recorded under `directory` (a line cut short mid-write is skipped)."""
    for path in sorted(directory.glob("*.jsonl*")):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                span = json.loads(line)
            except ValueError:
                continue
            if isinstance(span, dict) and {"trace_id", "span_id", "start_ns", "end_ns"} <= span.keys():
                yield span


def job_spans(spans: Iterable[dict[str, Any]], job_id: str) -> list[dict[str, Any]]:
    """The spans of every trace that has a span of this job, ordered by start."""
    spans = list(spans)
    traces = {s["trace_id"] for s in spans if (s.get("attributes") or {}).get(JOB_ATTR) == job_id}
    return sorted((s for s in spans if s["trace_id"] in traces), key=lambda s: (s["start_ns"], s["end_ns"]))


def _label(span: dict[str, Any]) -> str:
    attrs = {k[len(SHOWN_PREFIX) :]: v for k, v in (span.get("attributes") or {}).items() if k.startswith(SHOWN_PREFIX)}
    service = str(span.get("service", "?")).removeprefix("modelhub-")
    text = f"{span['name']} [{service}]"
    if span.get("status") == "ERROR":
        text += " ERROR" + (f": {span['error']}" if span.get("error") else "")
    if attrs:
        text += "  " + " ".join(f"{k}={v}" for k, v in attrs.items())
    return text


def _walk(
    lines: list[str],
    children: dict[str | None, list[dict[str, Any]]],
    start: int,
    span: dict[str, Any],
    prefix: str,
    last: bool,
) -> None:
    """Append `span` (offset from the trace's `start`) and, below it, its children."""
    offset, took = (span["start_ns"] - start) / 1e6, (span["end_ns"] - span["start_ns"]) / 1e6
    lines.append(f"{offset:>10.1f} ms {took:>9.1f} ms  {prefix}{'└─ ' if last else '├─ '}{_label(span)}")
    kids = children.get(span["span_id"], [])
    for i, kid in enumerate(kids):
        _walk(lines, children, start, kid, prefix + ("   " if last else "│  "), i == len(kids) - 1)


def render_tree(spans: list[dict[str, Any]]) -> list[str]:
    """One block per trace: each span with its start offset and duration, children indented."""
    lines: list[str] = []
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in spans:
        by_trace[span["trace_id"]].append(span)
    for trace_id, members in by_trace.items():
        ids = {s["span_id"] for s in members}
        children: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
        for span in members:
            children[span["parent_id"] if span.get("parent_id") in ids else None].append(span)
        start = min(s["start_ns"] for s in members)
        end = max(s["end_ns"] for s in members)
        services = sorted({str(s.get("service", "?")).removeprefix("modelhub-") for s in members})
        lines.append(
            f"trace {trace_id}: {len(members)} spans, {(end - start) / 1e9:.3f} s, services: {', '.join(services)}"
        )
        roots = children.get(None, [])
        for i, root in enumerate(roots):
            _walk(lines, children, start, root, "", i == len(roots) - 1)
    return lines
