"""The gateway's short-lived read cache (recent.py): what it keeps, for how long, and what
clears it."""

import asyncio
import contextlib
import re

from modelhub_gateway.recent import ForgetOnWrite, Recent


class Loads:
    def __init__(self):
        self.calls = 0

    async def __call__(self):
        self.calls += 1
        return {"n": self.calls}


def test_a_kept_read_is_served_without_loading_again_until_it_expires(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("modelhub_gateway.recent.time.monotonic", lambda: now[0])
    recent, load = Recent(ttl_s=1.0), Loads()
    assert asyncio.run(recent.get(("k",), load)) == {"n": 1}
    now[0] += 0.9
    assert asyncio.run(recent.get(("k",), load)) == {"n": 1}
    now[0] += 0.2
    assert asyncio.run(recent.get(("k",), load)) == {"n": 2}
    assert load.calls == 2


def test_a_missing_document_is_kept_as_missing_and_a_zero_ttl_keeps_nothing():
    async def none():
        return None

    recent = Recent(ttl_s=5)
    assert asyncio.run(recent.get(("gone",), none)) is None
    load = Loads()
    assert asyncio.run(recent.get(("gone",), load)) is None and load.calls == 0
    off, load = Recent(ttl_s=0), Loads()
    for _ in range(3):
        asyncio.run(off.get(("k",), load))
    assert load.calls == 3


def test_the_cache_is_bounded_dropping_the_oldest_entry():
    recent = Recent(ttl_s=60, max_entries=2)
    for key in ("a", "b", "c"):
        asyncio.run(recent.get((key,), Loads()))
    load = Loads()
    asyncio.run(recent.get(("a",), load))
    assert load.calls == 1  # "a" was dropped to keep two entries
    asyncio.run(recent.get(("c",), load))
    assert load.calls == 1


async def _call(middleware, method, path):
    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        pass

    await middleware({"type": "http", "method": method, "path": path}, receive, send)


def test_a_write_request_clears_the_cache_and_reads_and_predicts_do_not():
    recent = Recent(ttl_s=60)
    seen = []

    async def app(scope, receive, send):
        seen.append(len(recent._entries))  # what the route saw: cleared before a write runs

    middleware = ForgetOnWrite(app, recent, reads_also=re.compile(r"^/api/v1/deployments/[^/]+/predict$"))
    for method, path, kept in (
        ("GET", "/api/v1/models", 1),
        ("POST", "/api/v1/deployments/d/predict", 1),
        ("PUT", "/api/v1/models/m/sharing", 0),
        ("DELETE", "/api/v1/deployments/d", 0),
        ("POST", "/api/v1/users/me/token", 0),
    ):
        asyncio.run(recent.get(("k",), Loads()))
        asyncio.run(_call(middleware, method, path))
        assert len(recent._entries) == kept, (method, path)
    assert seen == [1, 1, 0, 0, 0]


def test_concurrent_misses_of_one_key_share_one_load_and_a_failed_load_is_not_kept():
    recent = Recent(ttl_s=60)
    calls = []

    async def slow():
        calls.append(1)
        await asyncio.sleep(0.01)
        return {"v": len(calls)}

    async def many():
        return await asyncio.gather(*(recent.get(("k",), slow) for _ in range(64)))

    assert asyncio.run(many()) == [{"v": 1}] * 64 and len(calls) == 1

    async def broken():
        raise ConnectionError("mongod away")

    async def fails_then_loads():
        with contextlib.suppress(ConnectionError):
            await recent.get(("b",), broken)
        return await recent.get(("b",), slow)

    assert asyncio.run(fails_then_loads()) == {"v": 2}
