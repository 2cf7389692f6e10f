"""The worker's task subscriber on FastStream's TestNatsBroker: what it publishes, and what not."""

from typing import cast

from faststream.nats import NatsBroker, TestNatsBroker
from test_worker_tasks import FakeStore, chunked, task

from modelhub_contracts import subjects
from modelhub_contracts.events import SampleAnnotated
from modelhub_runtime.messaging import EVENTS_STREAM
from modelhub_worker import handlers
from modelhub_worker.errors import ServingLost
from modelhub_worker.serving import ServeClient
from modelhub_worker.store import WorkerStore


class FakeServe:
    tel = None  # ServeClient's telemetry: none here

    def __init__(self, predict) -> None:
        self.predict_chunk, self.forgotten = chunked(predict), []
        self.predict_batch = self.predict_chunk

    def forget(self, deployment):
        self.forgotten.append(deployment)

    def spread(self, deployment):
        return 0  # no replica known directly: one mini-batch per call


async def run(store: FakeStore, predict) -> list[SampleAnnotated]:
    broker = NatsBroker()
    # the fakes stand in for the MongoDB store and the Serve client
    handlers.register(broker, cast(WorkerStore, store), cast(ServeClient, FakeServe(predict)))
    annotated: list[SampleAnnotated] = []

    @broker.subscriber(subjects.SAMPLE_ANNOTATED, stream=EVENTS_STREAM)
    async def collect(event: SampleAnnotated) -> None:
        annotated.append(event)

    async with TestNatsBroker(broker) as test_broker:
        await test_broker.publish(task("a", "b"), subjects.TASK_SCHEDULED)
    return annotated


async def test_a_task_is_annotated_and_announced_in_one_event():
    async def predict(deployment, inputs):
        return {"out": inputs["text"] * 2}

    store = FakeStore("a", "b")
    annotated = await run(store, predict)
    assert store.written == {"a": {"out": "aa"}, "b": {"out": "bb"}}
    assert len(annotated) == 1
    assert [(o.sample_id, o.ok) for o in annotated[0].samples] == [("a", True), ("b", True)]


async def test_a_task_whose_replica_died_announces_nothing_and_is_kept_for_a_retry():
    async def predict(deployment, inputs):
        raise ServingLost("replica died")

    store = FakeStore("a", "b")
    annotated = await run(store, predict)
    assert annotated == [] and store.written == {}
    assert "replica died" in store.failures["j.1.0"]  # noted for the dead letter, if it comes to that
