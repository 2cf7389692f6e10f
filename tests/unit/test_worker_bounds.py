"""The worker bounds what it reads from a replica (a user's model, so hostile input), over real
sockets: an aiohttp server plays Serve's proxy, an asyncio server speaks the direct path's wire
format. An answer over `max_answer_bytes` (here 200 MB, streamed from a generator) is not read:
its call fails quickly with why, its samples fail whole (not retried, not split, not sent again
through the proxy), and the worker's memory does not grow with it. An output over
`max_sample_bytes` fails its own sample."""

import asyncio
import contextlib
import os
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from aiohttp import web
from pydantic import ValidationError
from waiting import until

from modelhub_contracts import direct as wire
from modelhub_contracts.events import TaskScheduled
from modelhub_worker import serving
from modelhub_worker.annotate import Outcome, annotate, predict_many
from modelhub_worker.online import OnlineBatcher, Shape
from modelhub_worker.serving import SECRET_HEADER, AnswerTooLarge, ServeClient, short_error
from modelhub_worker.settings import WorkerSettings

SECRET = "s3cret-of-d"
HUGE = 200_000_000  # bytes of the hostile answer: never built in memory, streamed
CHUNK = 1 << 20
SMALL_BOUND = 8 << 20
FLAT = 30_000_000  # the most the worker's memory may grow by while an answer is refused


def stream(size: int) -> Iterator[bytes]:
    """`size` bytes of a JSON answer whose only output is one huge string, a chunk at a time."""
    head, tail = b'{"outputs": [{"y": "', b'"}]}'
    yield head
    left = size - len(head) - len(tail)
    while left > 0:
        yield b"a" * min(CHUNK, left)
        left -= CHUNK
    yield tail


def doubled(samples: list[dict]) -> list[dict]:
    return [{"y": s["x"] * 2} for s in samples]


class Proxy:
    """Serve's proxy. /d answers 200 MB (chunked, or with its Content-Length when `declare`),
    /ok doubles x; `offer` names a direct address in the first answer of /d instead."""

    def __init__(self, declare: bool = False) -> None:
        self.declare = declare
        self.offer: str | None = None
        self.calls = 0  # calls to /d
        self.sent = 0  # bytes of huge answers written before the worker hung up
        self.cut = asyncio.Event()
        self.url = ""
        self.outputs: list | None = None  # /d answers these outputs instead, when set

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get(SECRET_HEADER) != SECRET:
            return web.json_response({"detail": "wrong secret"}, status=403)
        samples = (await request.json())["samples"]
        if request.match_info["name"] == "ok":
            return web.json_response({"outputs": doubled(samples)})
        self.calls += 1
        if self.offer is not None and self.calls == 1:
            return web.json_response({"outputs": doubled(samples), "direct": self.offer})
        if self.outputs is not None:
            return web.json_response({"outputs": self.outputs})
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if self.declare:
            response.content_length = HUGE
        await response.prepare(request)
        try:
            for chunk in stream(HUGE):
                await response.write(chunk)
                self.sent += len(chunk)
        except (ConnectionError, OSError):
            self.cut.set()  # the worker hung up
        return response


@contextlib.asynccontextmanager
async def proxy_server(declare: bool = False) -> AsyncIterator[Proxy]:
    p = Proxy(declare)
    app = web.Application()
    app.router.add_post("/{name}", p.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    p.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield p
    finally:
        await runner.cleanup()


class HugeReplica:
    """A replica's direct port (modelhub_worker.direct's wire format: proofs, then length-prefixed
    frames) that answers every call with a frame declaring HUGE bytes, streamed until the caller
    hangs up."""

    def __init__(self) -> None:
        self.address = ""
        self.connections = 0
        self.calls = 0
        self.sent = 0
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self.address

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            hello = await reader.readexactly(len(wire.MAGIC) + wire.NONCE)
            nonce = os.urandom(wire.NONCE)
            writer.write(nonce + wire.proof(SECRET.encode(), b"replica", hello[4:], nonce, self.address))
            await reader.readexactly(wire.PROOF)
            while True:
                size = int.from_bytes(await reader.readexactly(4), "big")
                await reader.readexactly(size)
                self.calls += 1
                writer.write(HUGE.to_bytes(4, "big"))
                for chunk in stream(HUGE):
                    writer.write(chunk)
                    await writer.drain()
                    self.sent += len(chunk)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass  # the worker hung up
        finally:
            writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def client(url: str, **kw) -> ServeClient:
    async def secret(name: str) -> str:
        return SECRET

    return ServeClient(url, secret, lost_wait_s=0, **kw)


@contextlib.asynccontextmanager
async def taught(**kw) -> AsyncIterator[tuple[Proxy, HugeReplica, ServeClient]]:
    """A client that learned the hostile replica's direct address from the proxy's first answer
    (and made its first connection there), past its learning phase: calls go there."""
    r = HugeReplica()
    async with proxy_server() as p:
        p.offer = await r.start()
        c = client(p.url, **kw)
        assert c.direct is not None
        c.direct.settled_after = 0
        assert await c.predict_chunk("d", [{"x": 1}]) == [{"y": 2}]
        await until(lambda: c.direct is not None and c.direct.known("d") == [r.address])
        try:
            yield p, r, c
        finally:
            await c.close()
            await r.close()


async def refused(call: Callable[[], Awaitable[object]]) -> tuple[AnswerTooLarge, float, int]:
    """The call's AnswerTooLarge, the seconds it took and the most memory (bytes) it added while it ran."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        started = time.perf_counter()
        with pytest.raises(AnswerTooLarge) as caught:
            await call()
        took = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return caught.value, took, peak - before


def rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("declare", [False, True], ids=["chunked", "content-length"])
async def test_an_answer_over_the_bound_through_the_proxy_is_not_read_and_fails_quickly_with_why(declare):
    async with proxy_server(declare) as p:
        c = client(p.url, direct=False, max_answer_bytes=SMALL_BOUND)
        assert await c.predict_chunk("ok", [{"x": 1}]) == [{"y": 2}]  # the pool and its imports warm
        resident = rss()
        error, took, grew = await refused(lambda: c.predict_chunk("d", [{"x": 1}]))
        assert f"over the {SMALL_BOUND}-byte bound" in short_error(error)
        assert took < 10 and grew < FLAT, (took, grew)
        assert rss() - resident < FLAT
        await asyncio.wait_for(p.cut.wait(), 10)
        assert p.sent < SMALL_BOUND + 16 * CHUNK, "the worker read on past its bound"
        assert p.calls == 1  # not tried again
        assert await c.predict_chunk("ok", [{"x": 2}]) == [{"y": 4}]  # the cut connection was not pooled
        await c.close()


async def test_the_default_bound_holds_the_worker_to_64_mib_of_a_200_mb_answer():
    assert serving.MAX_ANSWER_BYTES == 64 << 20
    async with proxy_server() as p:
        c = client(p.url, direct=False)
        assert await c.predict_chunk("ok", [{"x": 1}]) == [{"y": 2}]
        error, took, grew = await refused(lambda: c.predict_chunk("d", [{"x": 1}]))
        assert f"over the {64 << 20}-byte bound" in str(error)
        # what it read stays within the bound (and the bytearray's slack): not near the answer's 200 MB
        assert took < 20 and grew < (64 << 20) * 1.25 + FLAT // 3, (took, grew)
        await c.close()


async def test_a_direct_answer_over_the_bound_is_not_read_not_sent_again_through_the_proxy():
    async with taught() as (p, r, c):
        assert c.direct is not None
        endpoint = c.direct.pick("d")
        assert endpoint is not None
        resident = rss()
        error, took, grew = await refused(lambda: c.predict_chunk("d", [{"x": 2}]))
        assert f"over the {serving.MAX_ANSWER_BYTES}-byte bound" in str(error)
        assert took < 5 and grew < FLAT and rss() - resident < FLAT, (took, grew)
        assert r.calls == 1 and p.calls == 1, "the call was sent again"
        assert c.direct.dropped == 0 and c.direct.known("d") == [r.address]  # the replica is no dead one
        assert endpoint.idle == [] and endpoint.in_flight == 0  # its connection was closed, not pooled
        assert r.connections == 1  # none opened to try again


def task(ids: list[str], mini_batch: int) -> TaskScheduled:
    return TaskScheduled(
        task_id="j.1.0",
        job_id="j",
        attempt=1,
        dataset="ds",
        deployment="d",
        sample_ids=ids,
        inputs={"x": "x"},
        outputs={"y": "y"},
        output_types={"y": "text"},
        mini_batch=mini_batch,
    )


async def test_a_tasks_mini_batches_answered_over_the_bound_fail_whole_with_why_and_are_not_split():
    ids = [f"s{i}" for i in range(8)]
    docs = {i: {"_id": i, "fields": {"x": n}} for n, i in enumerate(ids)}
    async with taught() as (p, r, c):
        # one replica known: the task's two mini-batches go in one call, then each alone
        outcomes = await annotate(task(ids, mini_batch=4), docs, c.predict_chunk, short_error, c)
        assert {o.error for o in outcomes.values()} == {str(AnswerTooLarge(serving.MAX_ANSWER_BYTES))}
        assert set(outcomes) == set(ids)
        assert r.calls == 3 and p.calls == 1  # 1 call of both, then 1 per mini-batch: none split or retried


async def test_through_the_proxy_too_a_mini_batch_over_the_bound_fails_with_one_call():
    async with proxy_server(declare=True) as p:
        c = client(p.url, direct=False)
        results = await predict_many(c.predict_chunk, "d", {i: {"x": i} for i in range(8)}, short_error, 4)
        assert all(isinstance(o, Outcome) and "byte bound" in (o.error or "") for o in results.values())
        assert p.calls == 2
        await c.close()


async def test_online_samples_answered_over_the_bound_fail_with_why():
    async with proxy_server(declare=True) as p:
        c = client(p.url, direct=False)
        batcher = OnlineBatcher(c.predict_batch, short_error)
        results = await batcher.run("d", [{"x": 1}, {"x": 2}], Shape(mini_batch=4, max_calls=2, wait_s=0))
        assert [o.error for o in results] == [str(AnswerTooLarge(serving.MAX_ANSWER_BYTES))] * 2
        await c.close()


async def test_an_output_over_the_sample_bound_fails_its_sample_alone():
    async with proxy_server() as p:
        c = client(p.url, direct=False, max_sample_bytes=1000)
        p.outputs = [{"y": "small"}, {"y": "b" * 2000}, {"y": "é" * 496}, {"y": "é" * 497}]
        ids = ["s0", "s1", "s2", "s3"]
        docs = {i: {"_id": i, "fields": {"x": 1}} for i in ids}
        outcomes = await annotate(task(ids, mini_batch=4), docs, c.predict_chunk, short_error, c)
        assert outcomes["s0"].fields == {"y": "small"} and outcomes["s2"].fields == {"y": "é" * 496}
        assert (
            outcomes["s1"].error
            == "the model's output for this sample takes 2008 bytes, over the 1000-byte bound on one sample"
        )
        assert "takes 1002 bytes" in (outcomes["s3"].error or "")  # UTF-8 bytes, not characters
        assert p.calls == 1  # its batch-mates were not called again
        await c.close()


async def test_an_answer_within_the_sample_bound_is_not_measured_sample_by_sample(monkeypatch):
    def measured(output, limit):
        raise AssertionError("an answer under the per-sample bound was encoded again")

    monkeypatch.setattr(serving, "_sample_bounded", measured)
    async with proxy_server() as p:
        c = client(p.url, direct=False)
        p.outputs = [{"y": "a" * 1000}] * 4
        assert await c.predict_chunk("d", [{"x": 1}] * 4) == p.outputs
        await c.close()


def test_the_bounds_are_settings(monkeypatch):
    monkeypatch.setenv("MODELHUB_MAX_ANSWER_BYTES", str(32 << 20))
    monkeypatch.setenv("MODELHUB_MAX_SAMPLE_BYTES", "1000")
    settings = WorkerSettings()
    assert (settings.max_answer_bytes, settings.max_sample_bytes) == (32 << 20, 1000)
    monkeypatch.setenv("MODELHUB_MAX_ANSWER_BYTES", str(wire.MAX_FRAME + 1))
    with pytest.raises(ValidationError):
        WorkerSettings()  # the direct path's frames carry no more
