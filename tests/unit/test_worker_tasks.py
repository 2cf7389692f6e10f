"""One delivery of a task: the write lease, retries for serving failures, and dead letters."""

from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from modelhub_contracts.events import OUTCOMES_PER_EVENT, TaskScheduled
from modelhub_worker.annotate import PredictChunk, annotate
from modelhub_worker.errors import ServingLost
from modelhub_worker.store import REFUSED, Lease
from modelhub_worker.tasks import (
    MAX_DELIVER,
    NO_ACK,
    MaxDeliveriesAdvisory,
    attempt,
    dead_letter_advised,
    dead_letter_events,
    run_task,
)


def task(*sample_ids: str) -> TaskScheduled:
    return TaskScheduled(
        task_id="j.1.0",
        job_id="j",
        attempt=1,
        dataset="ds",
        deployment="dep",
        sample_ids=list(sample_ids),
        inputs={"text": "text"},
        outputs={"out": "out"},
        output_types={"out": "text"},
    )


class FakeStore:
    def __init__(self, *sample_ids: str, lease: bool = True, cancelled: bool = False) -> None:
        self.docs = {s: {"_id": s, "filepath": f"/{s}", "fields": {"text": s}} for s in sample_ids}
        self.lease, self.cancelled = lease, cancelled
        self.written: dict = {}
        self.failures: dict[str, str] = {}
        self.leases_held = 0
        self.inputs: list[str] = []

    async def is_cancelled(self, job_id):
        return self.cancelled

    async def load(self, sample_ids, dataset, inputs):
        self.inputs = sorted(inputs)
        return {i: self.docs[i] for i in sample_ids if i in self.docs}

    @asynccontextmanager
    async def write_lease(self, task):
        if not self.lease:
            yield REFUSED
            return
        self.leases_held += 1
        try:
            yield Lease({"job_id": task.job_id, "model": "m", "version": 1, "deployment": task.deployment})
        finally:
            self.leases_held -= 1

    async def write_fields(self, fields_by_sample, lease):
        assert self.leases_held == 1 and lease, "fields written outside the write lease"
        assert lease.writer["job_id"] and lease.writer["deployment"]  # the lineage goes with them
        self.written.update(fields_by_sample)

    async def note_failure(self, task_id, error):
        self.failures[task_id] = error

    async def last_failure(self, task_id):
        return self.failures.get(task_id)


def chunked(per_sample: Callable[[str, dict], Awaitable[dict]]) -> PredictChunk:
    """A chunk call built from a per-sample fake: like one Model.predict call, it fails as a whole
    when any of its samples raises."""

    async def predict_chunk(deployment: str, samples: list[dict]) -> list[dict]:
        return [await per_sample(deployment, inputs) for inputs in samples]

    return predict_chunk


@chunked
async def upper(deployment, inputs):
    return {"out": inputs["text"].upper()}


@chunked
async def replica_died(deployment, inputs):
    raise ServingLost("deployment 'dep' gave no answer: ActorDiedError")


class Published(list):
    async def __call__(self, event):
        self.append(event)


def outcomes(events) -> set:
    """(sample, ok, event id) for every sample outcome the events carry."""
    return {(o.sample_id, o.ok, e.event_id) for e in events for o in e.samples}


async def test_fields_are_written_under_the_lease_then_one_event_for_the_task():
    store, published = FakeStore("a", "b"), Published()
    await run_task(task("a", "b"), store, upper, published, str)
    assert store.inputs == ["text"]  # only the fields the model reads are loaded
    assert store.written == {"a": {"out": "A"}, "b": {"out": "B"}}
    assert len(published) == 1 and [o.sample_id for o in published[0].samples] == ["a", "b"]
    assert outcomes(published) == {("a", True, "j.1.0.annotated.0"), ("b", True, "j.1.0.annotated.0")}


async def test_a_job_being_cancelled_gets_no_write_and_no_event():
    store, published = FakeStore("a", lease=False), Published()
    await run_task(task("a"), store, upper, published, str)
    assert store.written == {} and published == []


async def test_a_dead_replica_fails_no_sample_it_raises_for_a_retry():
    store, published = FakeStore("a", "b"), Published()
    with pytest.raises(ServingLost):
        await run_task(task("a", "b"), store, replica_died, published, str)
    assert store.written == {} and published == []


async def test_a_failed_delivery_is_retried_later_with_growing_delays():
    store, published = FakeStore("a"), Published()
    work = lambda: run_task(task("a"), store, replica_died, published, str)  # noqa: E731
    delays: list[float] = []
    for n in range(1, MAX_DELIVER):
        delay = await attempt(task("a"), n, work, store, published, str)
        assert delay is not None  # retried later, not given up before MAX_DELIVER
        delays.append(delay)
    assert delays == sorted(delays) and delays[0] > 0 and len(set(delays)) > 1
    assert published == [] and "ActorDiedError" in store.failures["j.1.0"]


async def test_the_last_failed_delivery_fails_every_sample_with_the_reason():
    store, published = FakeStore("a", "b"), Published()
    work = lambda: run_task(task("a", "b"), store, replica_died, published, str)  # noqa: E731
    assert await attempt(task("a", "b"), MAX_DELIVER, work, store, published, str) is None  # acked
    assert outcomes(published) == {("a", False, "j.1.0.annotated.0"), ("b", False, "j.1.0.annotated.0")}
    assert all(
        o.error.startswith(f"task failed after {MAX_DELIVER} deliveries: ") and "ActorDiedError" in o.error
        for e in published
        for o in e.samples
    )


async def test_a_successful_delivery_is_acked():
    store, published = FakeStore("a"), Published()
    work = lambda: run_task(task("a"), store, upper, published, str)  # noqa: E731
    assert await attempt(task("a"), 1, work, store, published, str) is None
    assert [o.ok for e in published for o in e.samples] == [True]


ADVISORY = (
    '{"type": "io.nats.jetstream.advisory.v1.max_deliver", "id": "x", "timestamp": "2024-01-01T00:00:00Z",'
    ' "stream": "MODELHUB", "consumer": "worker-tasks", "stream_seq": 42, "deliveries": 5}'
)


async def test_the_max_deliveries_advisory_dead_letters_the_original_task():
    store, published, asked = FakeStore(), Published(), []

    async def fetch(stream, seq):
        asked.append((stream, seq))
        return task("a", "b")

    await dead_letter_advised(MaxDeliveriesAdvisory.model_validate_json(ADVISORY), fetch, store, published)
    assert asked == [("MODELHUB", 42)]
    assert outcomes(published) == {("a", False, "j.1.0.annotated.0"), ("b", False, "j.1.0.annotated.0")}
    assert published[0].samples[0].error == f"task failed after 5 deliveries: {NO_ACK}"


async def test_an_advisory_for_a_vanished_message_publishes_nothing():
    async def fetch(stream, seq):
        return None

    published = Published()
    await dead_letter_advised(MaxDeliveriesAdvisory.model_validate_json(ADVISORY), fetch, FakeStore(), published)
    assert published == []


async def test_a_replica_that_died_gives_the_task_back_at_once():
    calls = []

    async def predict(deployment, samples):
        calls.append([s["text"] for s in samples])
        raise ServingLost("replica died")

    with pytest.raises(ServingLost):
        await annotate(task("a", "b"), FakeStore("a", "b").docs, predict, str)
    assert calls == [["a", "b"]]  # no bisecting against a dying deployment: the task is retried later


async def test_a_model_exception_still_fails_its_sample_alone():
    @chunked
    async def predict(deployment, inputs):
        if inputs["text"] == "b":
            raise ValueError("cannot read b")
        return {"out": inputs["text"]}

    outcomes = await annotate(task("a", "b"), FakeStore("a", "b").docs, predict, str)
    assert (outcomes["a"].error, outcomes["b"].error) == (None, "cannot read b")


async def test_a_big_task_announces_in_chunks_by_position_whoever_publishes():
    ids = [f"s{i:04d}" for i in range(OUTCOMES_PER_EVENT + 3)]
    store, published = FakeStore(*ids), Published()
    await run_task(task(*ids), store, upper, published, str)
    assert [(e.chunk, e.chunks, len(e.samples)) for e in published] == [(0, 2, OUTCOMES_PER_EVENT), (1, 2, 3)]
    assert [o.sample_id for e in published for o in e.samples] == ids  # every sample once, in task order
    # the dead letter of the same task uses the same ids for the same samples: duplicates of these
    dead = dead_letter_events(task(*ids), "gave up")
    assert [(e.event_id, [o.sample_id for o in e.samples]) for e in dead] == [
        (e.event_id, [o.sample_id for o in e.samples]) for e in published
    ]
