"""The FastStream adapter (modelhub_runtime.adapters.faststream): what each bypass does, and, in the
`test_upstream_*` tests, that FastStream and nats-py still have what it relies on and still behave
as it works around. A failing `test_upstream_*` test says which bypass to revisit or drop."""

import asyncio
import inspect
import json
from types import SimpleNamespace
from typing import cast
from unittest.mock import PropertyMock, patch

import nats.errors
import pytest
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.subscriber.usecases.basic import LogicSubscriber
from faststream.nats.subscriber.usecases.stream_pull_subscriber import BatchPullStreamSubscriber
from nats.aio.client import Client
from nats.errors import ConnectionClosedError
from nats.js.client import JetStreamContext

from modelhub_contracts.events import RpcReply
from modelhub_runtime import bus
from modelhub_runtime.adapters import faststream as pb


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


# ------------------------------------------------------------------ upstream, as prompt_batches assumes it

PROMPT_BATCHES_GONE = "FastStream's batch loop changed: check whether prompt_batches is still needed"


def upstream_batch_loop(script: list, batch_size: int = 8, timeout: float = 0.3):
    """FastStream's own `BatchPullStreamSubscriber._consume_pull`, run on a stand-in subscriber
    whose fetches answer from `script` (then wait out their timeout, as nats-py's do)."""

    class Upstream:
        def __init__(self) -> None:
            self.running, self.pull_sub, self.batches = True, PullSub(batch_size, timeout, batch=True), []
            self.subscription = self

        async def fetch(self, batch: int, timeout: float | None) -> list:
            if script:
                step = script.pop(0)
                if isinstance(step, BaseException):
                    raise step
                return step[:batch]
            await asyncio.sleep(timeout or 0)
            raise nats.errors.TimeoutError

        async def consume(self, messages: list) -> None:
            self.batches.append((asyncio.get_running_loop().time(), list(messages)))
            self.running = False

    upstream = Upstream()
    return upstream, BatchPullStreamSubscriber._consume_pull(cast(BatchPullStreamSubscriber, upstream))


async def test_upstream_batch_loop_still_waits_for_a_full_batch_or_its_timeout():
    upstream, loop = upstream_batch_loop([["a"]], timeout=0.3)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(loop, timeout=5)
    (handed_at, messages), *_ = upstream.batches
    assert messages == ["a"]
    # a lone message waited out the timeout: the reason prompt_batches replaces this loop
    assert handed_at - started >= 0.25, PROMPT_BATCHES_GONE + " (it hands a lone message over at once now)"


async def test_upstream_batch_loop_still_drops_a_partial_batch_on_asyncio_timeout():
    # nats-py's multi-message fetch can raise the builtin TimeoutError (next test); FastStream's
    # loop catches only nats-py's subclass, so the message fetched first is dropped unacked
    upstream, loop = upstream_batch_loop([["a"], TimeoutError()])
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(loop, timeout=5)
    assert upstream.batches == [], PROMPT_BATCHES_GONE + " (it keeps a partial batch on asyncio's timeout now)"


def test_upstream_nats_py_batch_fetch_still_raises_the_builtin_timeout():
    source = inspect.getsource(JetStreamContext.PullSubscription._fetch_n)
    assert "raise asyncio.TimeoutError" in source, (
        "nats-py's fetch no longer raises the builtin TimeoutError: prompt_batches' catch of it, and "
        "the note on FastStream's batch loop in the adapter's docstring, may go"
    )


async def test_upstream_still_starts_the_pull_loop_found_on_the_subscriber_object():
    """prompt_batches replaces `_consume_pull` on the object: FastStream must look it up there."""
    started: list = []

    async def pull_subscribe(**kwargs):
        return "subscription"

    subscriber = SimpleNamespace(
        subscription=None,
        jetstream=SimpleNamespace(pull_subscribe=pull_subscribe),
        subject=SimpleNamespace(broker_address="s"),
        config=None,
        extra_options={},
        add_task=lambda func, *args, **kwargs: started.append(func),
        _consume_pull=lambda: None,
    )
    pb.prompt_batches(subscriber, 8)
    await BatchPullStreamSubscriber._create_subscription(cast(BatchPullStreamSubscriber, subscriber))
    assert started == [subscriber._consume_pull], PROMPT_BATCHES_GONE + " (it starts its loop another way)"
    assert list(inspect.signature(BatchPullStreamSubscriber._consume_pull).parameters) == ["self"]


# ------------------------------------------------------------------ take_over and lean_request


def test_upstream_gives_a_subscriber_or_publisher_no_way_out_of_the_brokers_middlewares():
    options = set(inspect.signature(NatsBroker.subscriber).parameters) | set(
        inspect.signature(NatsBroker.publisher).parameters
    )
    assert not options & {"middlewares", "log_level", "logger"}, (
        "FastStream lets one subscriber or publisher leave out middlewares or logs now: see whether "
        "online predict can use that instead of take_over and lean_request"
    )


def test_upstream_still_has_what_take_over_and_lean_request_use():
    assert isinstance(inspect.getattr_static(NatsBroker, "connection"), property)
    subscribe = inspect.signature(Client.subscribe).parameters
    assert {"subject", "queue", "cb", "pending_msgs_limit"} <= set(subscribe)
    assert {"subject", "payload", "timeout", "headers"} <= set(inspect.signature(Client.request).parameters)
    assert inspect.iscoroutinefunction(LogicSubscriber.stop)


async def test_take_over_subscribes_before_it_stops_the_declared_subscriber():
    steps: list = []

    class Connection:
        async def subscribe(self, subject, queue, cb, pending_msgs_limit):
            steps.append(("subscribe", subject, queue, cb, pending_msgs_limit))
            return "raw"

    class Declared:
        async def stop(self):
            steps.append(("stop",))

    async def received(msg) -> None:
        pass

    broker = SimpleNamespace(connection=Connection())
    raw = await pb.take_over(cast(NatsBroker, broker), cast(LogicSubscriber, Declared()), "s", "q", received, 9)
    assert raw == "raw" and steps == [("subscribe", "s", "q", received, 9), ("stop",)]


async def test_lean_request_sends_on_the_connection_and_refuses_an_undeclared_subject():
    broker = NatsBroker()
    sent: list = []

    class Connection:
        async def request(self, subject, payload, timeout, headers):
            sent.append((subject, json.loads(payload), timeout, headers))
            return SimpleNamespace(data=RpcReply(status=200, data={"n": 1}).model_dump_json().encode())

    command = RpcReply(status=1)  # any model: the adapter sends its JSON
    with pytest.raises(bus.Undeclared):
        await pb.lean_request(broker, "modelhub.rpc.lean", command, 2.0)
    bus.declare(broker, "test", "modelhub.rpc.lean", RpcReply, "a test subject")
    fake = SimpleNamespace(connection=Connection())
    with patch.object(NatsBroker, "connection", new_callable=PropertyMock, return_value=fake.connection):
        reply = await pb.lean_request(broker, "modelhub.rpc.lean", command, 2.0)
    assert (reply.status, reply.data) == (200, {"n": 1})
    assert sent[0][:3] == ("modelhub.rpc.lean", json.loads(command.model_dump_json()), 2.0)
