"""Scheduler service: splits a dataset into mini-batch tasks for the inference workers."""

import asyncio

from faststream import FastStream
from faststream.nats import NatsBroker

from modelhub_contracts import mongo
from modelhub_contracts.runtime import answer_pings, configure_logging
from modelhub_contracts.settings import ServiceSettings

from modelhub_scheduler import handlers
from modelhub_scheduler.store import SchedulerStore


def build_app(settings: ServiceSettings) -> FastStream:
    """Wire broker, store and handlers; the one place configuration enters."""
    broker = NatsBroker(settings.nats_url)
    _, db = mongo.connect(settings)
    handlers.register(broker, SchedulerStore(db))
    answer_pings(broker, "scheduler")
    return FastStream(broker)


def main() -> None:
    configure_logging("scheduler")
    asyncio.run(build_app(ServiceSettings()).run())
