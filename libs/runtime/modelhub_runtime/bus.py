"""The bus's declared send side: every subject a service publishes or requests on is declared on its
broker as a FastStream publisher with its payload type, so that the AsyncAPI document generated from
the brokers (scripts/asyncapi.py, docs/asyncapi.yaml) shows each `send` operation and its schema.

`messaging.publish_event` and `messaging.request` go through these publishers and refuse a subject
that was not declared: a publish the document does not show cannot be written by mistake.
"""

import weakref
from typing import Any

from faststream.nats import NatsBroker
from faststream.nats.publisher.usecase import LogicPublisher

_DECLARED: "weakref.WeakKeyDictionary[NatsBroker, dict[str, LogicPublisher]]" = weakref.WeakKeyDictionary()


class Undeclared(LookupError):
    """A publish or request on a subject that the service did not declare on its broker."""


def declare(broker: NatsBroker, service: str, subject: str, schema: Any, description: str) -> LogicPublisher:
    """Declare that `service` sends `schema` on `subject` (idempotent per broker and subject)."""
    publishers = _DECLARED.setdefault(broker, {})
    if subject not in publishers:
        publishers[subject] = broker.publisher(
            subject, schema=schema, title=f"{service}:send:{subject}", description=description
        )
    return publishers[subject]


def publisher(broker: NatsBroker, subject: str) -> LogicPublisher:
    """The publisher declared for `subject` on `broker`; Undeclared when there is none."""
    try:
        return _DECLARED[broker][subject]
    except KeyError:
        raise Undeclared(
            f"no publisher is declared for '{subject}' on this broker; declare it "
            "with modelhub_runtime.bus.declare so that the AsyncAPI document shows it"
        ) from None


def receiving(service: str, subject: str) -> str:
    """The AsyncAPI title of `service`'s subscriber on `subject` (unique across the whole bus, where
    FastStream's default, subject and handler name, would collide between services)."""
    return f"{service}:receive:{subject}"
