"""Online predict in the worker without Ray: shared batches, order, isolation, bounds, deadlines."""

import asyncio
from typing import cast

import pytest
from faststream.nats import NatsBroker, TestNatsBroker
from nats.aio.msg import Msg as NatsMsg
from test_worker_handlers import FakeServe
from test_worker_tasks import FakeStore
from waiting import until

from modelhub_contracts import subjects
from modelhub_contracts.events import PredictRequest, RpcReply
from modelhub_worker import handlers
from modelhub_worker.errors import ServingLost
from modelhub_worker.online import OnlineBatcher, Overloaded, Shape, predict_online
from modelhub_worker.serving import ServeClient
from modelhub_worker.store import WorkerStore


class Replica:
    """A fake `predict_batch`: records each call's samples; the first `hold` calls wait for `gate`."""

    def __init__(self, hold: int = 0) -> None:
        self.calls: list[list[dict]] = []
        self.gate, self.hold, self.cancelled = asyncio.Event(), hold, 0

    async def __call__(self, deployment: str, samples: list[dict]) -> list[dict]:
        self.calls.append(samples)
        if len(self.calls) <= self.hold:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        if any(s["x"] == "bad" for s in samples):
            raise ValueError("cannot read 'bad'")
        return [{"y": f"{s['x']}!"} for s in samples]


async def test_concurrent_requests_share_batches_and_keep_their_order():
    replica = Replica(hold=1)
    batcher = OnlineBatcher(replica, str)
    shape = Shape(mini_batch=4, max_calls=1, wait_s=0)
    first = asyncio.create_task(batcher.run("dep", [{"x": "a"}], shape))
    await until(lambda: replica.calls, poll=0)  # an idle deployment: sent alone, at once
    second = asyncio.create_task(batcher.run("dep", [{"x": "b1"}, {"x": "b2"}, {"x": "b3"}], shape))
    third = asyncio.create_task(batcher.run("dep", [{"x": "c1"}, {"x": "c2"}], shape))
    await until(lambda: batcher.in_flight == 6, poll=0)
    replica.gate.set()
    assert await first == [{"y": "a!"}]
    assert await second == [{"y": "b1!"}, {"y": "b2!"}, {"y": "b3!"}]
    assert await third == [{"y": "c1!"}, {"y": "c2!"}]
    assert [len(c) for c in replica.calls] == [1, 4, 1]  # the queue went out in full mini-batches
    assert batcher.in_flight == 0


async def test_a_lone_request_does_not_wait_for_the_batch_window():
    batcher = OnlineBatcher(Replica(), str)
    shape = Shape(mini_batch=32, max_calls=2, wait_s=3600)  # an hour of window would hang this test
    assert await asyncio.wait_for(batcher.run("dep", [{"x": "a"}], shape), 60) == [{"y": "a!"}]


async def test_another_clients_poisoned_sample_fails_only_that_client():
    replica = Replica(hold=1)
    batcher = OnlineBatcher(replica, str)
    shape = Shape(mini_batch=8, max_calls=1, wait_s=0)
    warmup = asyncio.create_task(batcher.run("dep", [{"x": "w"}], shape))
    await until(lambda: replica.calls, poll=0)
    good = asyncio.create_task(predict_online(batcher.run, "dep", {"x": ["g1", "g2"]}, {"y": "text"}, shape))
    bad = asyncio.create_task(predict_online(batcher.run, "dep", {"x": ["bad"]}, {"y": "text"}, shape))
    await until(lambda: batcher.in_flight == 4, poll=0)
    replica.gate.set()
    await warmup
    assert await good == {"y": ["g1!", "g2!"]}
    with pytest.raises(RuntimeError, match="sample 0: cannot read 'bad'"):
        await bad
    assert len(replica.calls[1]) == 3  # they did share a batch, which was then split


async def test_outputs_are_checked_against_their_types_and_lists_must_match():
    async def replica(deployment, samples):
        return [{"y": s["x"]} for s in samples]

    shape = Shape(mini_batch=2, max_calls=1, wait_s=0)
    run = OnlineBatcher(replica, str).run
    assert await predict_online(run, "dep", {"x": [1, 2, 3]}, {"y": "number"}, shape) == {"y": [1, 2, 3]}
    with pytest.raises(RuntimeError, match="sample 1: output 'y' is not a valid number"):
        await predict_online(run, "dep", {"x": [1, "two"]}, {"y": "number"}, shape)
    with pytest.raises(ValueError, match="same length"):
        await predict_online(run, "dep", {"x": [1], "z": [1, 2]}, {"y": "number"}, shape)


async def test_a_request_past_its_deadline_leaves_nothing_behind():
    replica = Replica(hold=1)
    batcher = OnlineBatcher(replica, str)
    shape = Shape(mini_batch=1, max_calls=1, wait_s=0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await batcher.run("dep", [{"x": "a"}, {"x": "b"}], shape)
    await until(lambda: replica.cancelled, poll=0)  # the Serve call was cancelled, not left running
    assert batcher.in_flight == 0
    replica.gate.set()
    assert await batcher.run("dep", [{"x": "c"}], shape) == [{"y": "c!"}]
    assert [c[0]["x"] for c in replica.calls] == ["a", "c"]  # the queued "b" was never sent


async def test_a_full_worker_refuses_at_once_but_never_starves_a_large_request():
    replica = Replica(hold=1)
    batcher = OnlineBatcher(replica, str, max_samples=2)
    shape = Shape(mini_batch=4, max_calls=1, wait_s=0)
    held = asyncio.create_task(batcher.run("dep", [{"x": "a"}, {"x": "b"}], shape))
    await until(lambda: replica.calls, poll=0)
    with pytest.raises(Overloaded) as refused:
        await batcher.run("other", [{"x": "c"}], shape)
    assert refused.value.retry_after > 0 and "2 samples in flight (limit 2)" in str(refused.value)
    replica.gate.set()
    await held
    assert len(await batcher.run("dep", [{"x": str(i)} for i in range(5)], shape)) == 5  # idle: admitted


async def test_serving_lost_reaches_every_request_of_the_batch():
    async def replica(deployment, samples):
        raise ServingLost("replica died")

    run = OnlineBatcher(replica, str).run
    with pytest.raises(ServingLost):
        await run("dep", [{"x": "a"}, {"x": "b"}], Shape(mini_batch=2, max_calls=1, wait_s=0))


async def reply_to(request: PredictRequest, predict) -> RpcReply:
    broker = NatsBroker()
    # the fakes stand in for the MongoDB store and the Serve client
    handlers.register(broker, cast(WorkerStore, FakeStore()), cast(ServeClient, FakeServe(predict)))
    async with TestNatsBroker(broker) as test_broker:
        message = await test_broker.request(request, subjects.RPC_PREDICT)
        return RpcReply.model_validate_json(message.body)


async def test_the_worker_answers_predict_over_request_reply():
    async def predict(deployment, inputs):
        return {"n": len(inputs["text"])}

    reply = await reply_to(
        PredictRequest(deployment="d", inputs={"text": ["a", "bb"]}, output_types={"n": "number"}, mini_batch=2),
        predict,
    )
    assert (reply.status, reply.data) == (200, {"outputs": {"n": [1, 2]}})


async def test_the_worker_answers_504_when_the_deadline_passes():
    async def predict(deployment, inputs):
        await asyncio.Event().wait()

    reply = await reply_to(
        PredictRequest(deployment="d", inputs={"text": ["a"]}, output_types={"n": "number"}, timeout_s=0.05), predict
    )
    assert reply.status == 504 and "did not answer within 0.05 s; the request was cancelled" in (reply.detail or "")


def test_a_reply_too_large_for_nats_is_refused_with_413():
    reply = handlers.sized(RpcReply(data={"outputs": {"y": ["x" * 100]}}), max_bytes=50)
    assert reply.status == 413 and "send fewer samples per request" in (reply.detail or "")
    small = RpcReply(data={"outputs": {"y": ["x"]}})
    assert handlers.sized(small, max_bytes=1000) is small


async def test_a_call_cancelled_before_it_starts_gives_its_slot_back():
    replica = Replica()
    batcher = OnlineBatcher(replica, str)
    shape = Shape(mini_batch=1, max_calls=1, wait_s=0)
    lane = batcher._lane("dep", shape)
    loop = asyncio.get_running_loop()
    doomed = loop.create_future()
    lane.queue.append(({"x": "a"}, doomed))
    await batcher._pump("dep", lane)  # creates the call task; it has not run a step yet
    (call,) = lane.calls
    doomed.cancel()
    batcher._cancel_orphans(lane)  # what a request that timed out does
    await asyncio.gather(call, return_exceptions=True)
    assert lane.calls == {} and replica.calls == []
    assert await batcher.run("dep", [{"x": "b"}], shape) == [{"y": "b!"}]  # the only slot is free


async def test_the_nats_py_subscription_answers_as_the_declared_subscriber_does():
    """predict_sub.py's path: the same reply as the FastStream subscriber's for a request, and a
    422 (not a crash, not silence) for a body that is no PredictRequest."""
    from modelhub_worker.predict_sub import PredictSubscription

    async def predict(deployment, inputs):
        return {"n": len(inputs["text"])}

    request = PredictRequest(deployment="d", inputs={"text": ["a", "bb"]}, output_types={"n": "number"}, mini_batch=2)
    batcher = OnlineBatcher(FakeServe(predict).predict_batch, str)
    subscription = PredictSubscription(lambda r: handlers.predict_reply(r, batcher.run, lambda d: None))
    reply = await subscription.answer(request.model_dump_json().encode(), None)
    assert (reply.status, reply.data) == (200, {"outputs": {"n": [1, 2]}})
    assert reply == await reply_to(request, predict)
    refused = await subscription.answer(b'{"deployment": "d"}', {})
    assert refused.status == 422 and "not a PredictRequest" in (refused.detail or "")


async def test_stopping_the_subscription_waits_a_grace_period_then_cancels():
    from modelhub_worker.predict_sub import PredictSubscription

    async def never(request: PredictRequest) -> RpcReply:
        await asyncio.Event().wait()
        raise AssertionError("never answers")

    subscription = PredictSubscription(never)
    request = PredictRequest(deployment="d", inputs={"text": ["a"]}, output_types={"n": "number"})
    pending = asyncio.create_task(subscription.answer(request.model_dump_json().encode(), None))
    subscription._tasks.add(pending)
    await asyncio.sleep(0)
    await asyncio.wait_for(subscription.stop(grace_s=0.05), 5)
    assert pending.cancelled()


async def test_a_failing_answer_still_gets_a_reply():
    from modelhub_worker.predict_sub import PredictSubscription

    async def broken(request: PredictRequest) -> RpcReply:
        raise KeyError("bug")

    replies = []

    class Msg:
        reply, headers = "inbox", None
        data = (
            PredictRequest(deployment="d", inputs={"text": ["a"]}, output_types={"n": "number"})
            .model_dump_json()
            .encode()
        )

        async def respond(self, data):
            replies.append(RpcReply.model_validate_json(data))

    await PredictSubscription(broken)._handle(cast(NatsMsg, Msg()))
    assert [r.status for r in replies] == [500]
