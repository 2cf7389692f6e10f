"""The shared NATS helpers' guarantees that do not need a server."""

import pytest
from faststream.nats import NatsBroker, PullSub, TestNatsBroker
from nats.js.errors import NoStreamResponseError

from modelhub_contracts.events import SampleAnnotated, SampleAnnotatedHead, SampleOutcome
from modelhub_runtime.messaging import durable_subscriber, retry_delay, through_elections


def test_retry_delays_grow_and_stay_bounded():
    assert [retry_delay(n) for n in (1, 2, 3, 4, 5, 50)] == [2.0, 5.0, 15.0, 30.0, 30.0, 30.0]


async def test_a_publish_is_sent_again_while_the_stream_has_no_leader():
    """An election on a JetStream cluster: no responders (503), then a lost ack, then stored."""
    errors = [NoStreamResponseError(), TimeoutError()]
    timeouts: list[float] = []

    async def attempt(timeout: float) -> str:
        timeouts.append(timeout)
        if errors:
            raise errors.pop(0)
        return "stored"

    assert await through_elections(attempt, "evt", budget=5.0, attempt_timeout=2.0) == "stored"
    assert len(timeouts) == 3 and all(0 < t <= 2.0 for t in timeouts)


async def test_a_stream_without_a_leader_past_the_budget_fails_and_other_errors_at_once():
    calls = 0

    async def leaderless(timeout: float) -> str:
        nonlocal calls
        calls += 1
        raise NoStreamResponseError()

    with pytest.raises(NoStreamResponseError):
        await through_elections(leaderless, "evt", budget=0.5)
    assert calls > 1

    async def refused(timeout: float) -> str:
        raise ValueError("not a leader problem")

    with pytest.raises(ValueError):
        await through_elections(refused, "evt", budget=5.0)


async def test_a_subscriber_that_reads_a_part_gets_that_part_of_the_whole_event():
    """The scheduler's view of an outcome event: the task and chunk, its outcomes skipped."""
    broker, got = NatsBroker(), []

    @durable_subscriber(broker, "s", "t.done", "s-done", ack_wait=5.0, max_deliver=-1, reads=SampleAnnotatedHead)
    async def on_done(event: SampleAnnotatedHead) -> None:
        got.append(event)

    full = SampleAnnotated(
        job_id="j",
        attempt=2,
        task_id="j.t3",
        samples=[
            SampleOutcome(sample_id=f"s{i}", ok=i % 2 == 0, error=None if i % 2 == 0 else "no") for i in range(512)
        ],
        chunk=1,
        chunks=4,
    )
    async with TestNatsBroker(broker) as test_broker:
        await test_broker.publish(full, "t.done")
    assert got == [SampleAnnotatedHead(task_id="j.t3", chunk=1, chunks=4)]


def test_a_batch_subscriber_cannot_read_a_part():
    with pytest.raises(ValueError, match="batch"):
        durable_subscriber(
            NatsBroker(),
            "s",
            "t.done",
            "s-batch",
            ack_wait=5.0,
            max_deliver=-1,
            pull_sub=PullSub(batch_size=8, timeout=0.1, batch=True),
            reads=SampleAnnotatedHead,
        )
