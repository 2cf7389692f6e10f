"""Spans for MongoDB commands, from pymongo's command monitoring.

Why not opentelemetry-instrumentation-pymongo: its newest release pins an older
opentelemetry-semantic-conventions than the SDK modelhub uses, so the two cannot be installed
together. This listener does the part modelhub needs: a CLIENT span per command issued inside a
span (a job's writes show up in the job's trace); commands outside any span (sweeps, health
pings) record nothing. pymongo calls listeners inline in the task that runs the command, so the
current context is the caller's.
"""

import threading

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pymongo import monitoring

_registered = threading.Lock()
_listener: "CommandSpans | None" = None


class CommandSpans(monitoring.CommandListener):
    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer
        self.spans: dict[tuple[int, object], trace.Span] = {}

    @staticmethod
    def _key(
        event: monitoring.CommandStartedEvent | monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent,
    ) -> tuple[int, object]:
        return event.request_id, event.connection_id

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not trace.get_current_span().get_span_context().is_valid:
            return
        collection = event.command.get(event.command_name)
        span = self.tracer.start_span(
            f"mongodb {event.command_name}",
            kind=SpanKind.CLIENT,
            attributes={
                "db.system": "mongodb",
                "db.name": event.database_name,
                "db.operation": event.command_name,
                **({"db.mongodb.collection": collection} if isinstance(collection, str) else {}),
            },
        )
        self.spans[self._key(event)] = span

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if span := self.spans.pop(self._key(event), None):
            span.end()

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        if span := self.spans.pop(self._key(event), None):
            span.set_status(Status(StatusCode.ERROR, str(event.failure.get("errmsg", ""))[:200]))
            span.end()


def instrument(tracer: trace.Tracer) -> None:
    """Register the listener once per process; clients created afterwards report to it."""
    global _listener
    with _registered:
        if _listener is None:
            _listener = CommandSpans(tracer)
            monitoring.register(_listener)
