"""prompt_batches: a batch consumer hands over what is there as soon as its first message came."""

import asyncio

import pytest
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from nats.errors import ConnectionClosedError

from modelhub_runtime import prompt_batches as pb


class Subscription:
    """A pull subscription whose fetches answer from a script: each entry is the list of messages
    that fetch returns, or an exception it raises. Records (batch, timeout) of every call."""

    def __init__(self, script: list) -> None:
        self.script, self.calls = list(script), []

    async def fetch(self, batch: int, timeout: float) -> list:
        self.calls.append((batch, timeout))
        await asyncio.sleep(0)
        if not self.script:
            raise TimeoutError
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step[:batch]


class Subscriber:
    def __init__(self, script: list, stop_after: int) -> None:
        self.running, self.subscription, self.batches = True, Subscription(script), []
        self._stop_after = stop_after

    async def _consume_pull(self) -> None:  # FastStream's loop, replaced
        raise AssertionError("FastStream's own loop ran")

    async def consume(self, messages: list) -> None:
        self.batches.append(list(messages))
        if len(self.batches) >= self._stop_after:
            self.running = False


async def run(subscriber: Subscriber, max_batch: int) -> None:
    pb.prompt_batches(subscriber, max_batch)
    await asyncio.wait_for(subscriber._consume_pull(), timeout=5)


async def test_a_lone_message_is_handed_over_without_waiting_for_a_batch():
    subscriber = Subscriber([["a"], TimeoutError(), ["b"], []], stop_after=2)
    await run(subscriber, max_batch=64)
    assert subscriber.batches == [["a"], ["b"]]
    # first a long pull for one message, then a short top-up for the rest of the batch
    assert subscriber.subscription.calls[:2] == [(1, pb.IDLE_WAIT_S), (63, pb.TOP_UP_WAIT_S)]


async def test_what_is_waiting_joins_the_first_message_up_to_the_batch_size():
    subscriber = Subscriber([["a"], ["b", "c", "d", "e"]], stop_after=1)
    await run(subscriber, max_batch=3)
    assert subscriber.batches == [["a", "b", "c"]]
    assert subscriber.subscription.calls[:2] == [(1, pb.IDLE_WAIT_S), (2, pb.TOP_UP_WAIT_S)]


async def test_idle_pulls_and_a_lost_connection_hand_over_nothing(monkeypatch):
    monkeypatch.setattr(pb, "RECONNECT_PAUSE_S", 0.0)
    # idle (timeout), connection lost before a first message, then mid-batch (that batch is
    # dropped unacked: JetStream redelivers it), then a batch that arrives whole
    script = [TimeoutError(), ConnectionClosedError(), ["lost"], ConnectionClosedError(), ["x"], ["y"]]
    subscriber = Subscriber(script, stop_after=1)
    await run(subscriber, max_batch=8)
    assert subscriber.batches == [["x", "y"]]


def test_it_replaces_the_loop_of_a_real_faststream_batch_subscriber():
    broker = NatsBroker()
    subscriber = broker.subscriber(
        "prompt.test",
        stream=JStream(name="prompt-test"),
        durable="prompt-test",
        ack_policy=AckPolicy.MANUAL,
        pull_sub=PullSub(batch_size=8, timeout=0.2, batch=True),
    )
    pb.prompt_batches(subscriber, 8)
    assert subscriber._consume_pull.__qualname__.startswith("prompt_batches")
    for name in ("running", "subscription", "consume"):  # what the loop uses of FastStream's object
        assert hasattr(subscriber, name), name


def test_a_subscriber_without_a_pull_loop_is_refused():
    with pytest.raises(RuntimeError, match="no pull loop"):
        pb.prompt_batches(object(), 8)


async def test_with_concurrency_a_batch_is_handled_while_another_one_is():
    started, release = [], asyncio.Event()

    class Slow(Subscriber):
        async def consume(self, messages: list) -> None:
            started.append(messages)
            if len(started) == 2:
                release.set()  # the second began while the first still waits
            await release.wait()
            await super().consume(messages)

    subscriber = Slow([["a"], [], ["b"], []], stop_after=2)
    pb.prompt_batches(subscriber, 8, concurrency=2)
    await asyncio.wait_for(subscriber._consume_pull(), timeout=5)
    assert sorted(map(tuple, subscriber.batches)) == [("a",), ("b",)]


async def test_one_at_a_time_by_default():
    active, most = 0, 0

    class Counting(Subscriber):
        async def consume(self, messages: list) -> None:
            nonlocal active, most
            active += 1
            most = max(most, active)
            for _ in range(10):  # give the loop every chance to start another batch meanwhile
                await asyncio.sleep(0)
            active -= 1
            await super().consume(messages)

    subscriber = Counting([["a"], [], ["b"], [], ["c"], []], stop_after=3)
    await run(subscriber, max_batch=8)
    assert subscriber.batches == [["a"], ["b"], ["c"]] and most == 1
