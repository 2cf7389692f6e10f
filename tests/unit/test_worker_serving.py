"""The worker's Serve client over real HTTP (a local aiohttp server plays Serve's proxy and a
replica): JSON in and out, the secret, what counts as the model's verdict and what as no answer,
keep-alive, the per-deployment bound, cancellation reaching the server, the traceparent header."""

import asyncio
import json

import pytest
from aiohttp import web
from waiting import until

from modelhub_worker.serving import SECRET_HEADER, DeploymentUnavailable, ModelFailed, ServeClient, ServingLost


class Proxy:
    """Routes /<deployment>; deployment 'd' doubles x, 'boom' reports a model error, 'down' is a 503."""

    def __init__(self) -> None:
        self.secret = "s1"
        self.seen: list[dict] = []
        self.peers: set = set()
        self.running = 0
        self.most = 0
        self.gate: asyncio.Event | None = None
        self.disconnected = asyncio.Event()
        self.url = ""  # set once it listens

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.peers.add(request.transport.get_extra_info("peername"))
        self.seen.append(dict(request.headers))
        if name == "down":
            return web.Response(status=503, text="no replica")
        if name not in ("d", "boom", "slow"):
            return web.Response(status=404, text="Path not found")
        if request.headers.get(SECRET_HEADER) != self.secret:
            return web.json_response({"detail": "wrong secret"}, status=403)
        samples = (await request.json())["samples"]
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            if self.gate is not None:
                try:
                    await self.gate.wait()
                except asyncio.CancelledError:
                    self.disconnected.set()
                    raise
            if name == "boom":
                return web.json_response({"error": "ValueError: cannot read 'x'"})
            return web.json_response({"outputs": [{"y": s["x"] * 2} for s in samples]})
        finally:
            self.running -= 1


@pytest.fixture
async def proxy():
    p = Proxy()
    app = web.Application()
    app.router.add_post("/{name}", p.handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    p.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield p
    await runner.cleanup()


def client(proxy: Proxy, **kw) -> ServeClient:
    async def secret(name: str) -> str:
        return proxy.secret

    return ServeClient(proxy.url, secret, **kw)


async def test_outputs_come_back_as_json_in_order_over_one_kept_alive_connection(proxy):
    c = client(proxy)
    for _ in range(5):
        assert await c.predict_chunk("d", [{"x": 1}, {"x": 2}]) == [{"y": 2}, {"y": 4}]
    assert len(proxy.peers) == 1, "every call opened a new connection"
    assert all(json.loads(json.dumps(h)) for h in proxy.seen)
    await c.close()


async def test_the_models_failure_is_a_verdict_and_missing_answers_are_not(proxy):
    c = client(proxy)
    with pytest.raises(ModelFailed, match="cannot read"):
        await c.predict_chunk("boom", [{"x": 1}])
    with pytest.raises(ServingLost, match="503") as lost:
        await c.predict_batch("down", [{"x": 1}])
    assert not isinstance(lost.value, DeploymentUnavailable)
    with pytest.raises(DeploymentUnavailable):
        await c.predict_batch("gone", [{"x": 1}])
    await c.close()
    nobody = ServeClient("http://127.0.0.1:9", lambda name: asyncio.sleep(0, "s1"), lost_wait_s=0)
    with pytest.raises(ServingLost):
        await nobody.predict_chunk("d", [{"x": 1}])
    await nobody.close()


async def test_a_new_secret_is_read_again_once(proxy):
    reads = []

    async def secret(name: str) -> str:
        reads.append(name)
        return proxy.secret

    c = ServeClient(proxy.url, secret)
    assert await c.predict_chunk("d", [{"x": 1}]) == [{"y": 2}]
    proxy.secret = "s2"  # redeployed
    assert await c.predict_chunk("d", [{"x": 1}]) == [{"y": 2}]
    assert reads == ["d", "d"]
    assert proxy.seen[-1][SECRET_HEADER] == "s2"
    await c.close()


async def test_an_unknown_deployment_has_no_secret():
    async def none(name: str) -> None:
        return None

    with pytest.raises(DeploymentUnavailable):
        await ServeClient("http://127.0.0.1:9", none).predict_chunk("d", [{"x": 1}])


async def test_job_calls_are_bounded_per_deployment_and_traceparent_is_forwarded(proxy):
    proxy.gate = asyncio.Event()
    c = client(proxy, max_in_flight=3)
    calls = [
        asyncio.create_task(c.predict_chunk("d", [{"x": i}], traceparent=f"00-{i:032x}-{i:016x}-01")) for i in range(8)
    ]
    await until(lambda: proxy.running == 3)  # `proxy.most == 3` below: never a fourth at once
    proxy.gate.set()
    assert [r[0] for r in await asyncio.gather(*calls)] == [{"y": i * 2} for i in range(8)]
    assert proxy.most == 3
    assert {h["traceparent"] for h in proxy.seen} == {f"00-{i:032x}-{i:016x}-01" for i in range(8)}
    await c.close()


async def test_a_cancelled_caller_drops_the_request_at_the_server(proxy):
    proxy.gate = asyncio.Event()
    c = client(proxy)
    call = asyncio.create_task(c.predict_batch("d", [{"x": 1}]))
    await until(lambda: proxy.running == 1)  # the request reached the server
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.wait_for(proxy.disconnected.wait(), 5)
    await c.close()


async def test_a_job_call_waits_out_a_restarting_serve_while_the_deployment_is_wanted(proxy):
    answers = iter([503, 503, 404])
    original = proxy.handle

    async def flaky(request):
        status = next(answers, None)
        return web.Response(status=status, text="restarting") if status else await original(request)

    proxy.handle = flaky
    app = web.Application()  # re-route through the flaky handler
    app.router.add_post("/{name}", lambda r: proxy.handle(r))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    wanted = {"d": "s1"}

    async def secret(name: str) -> str | None:
        return wanted.get(name)

    c = ServeClient(url, secret, lost_wait_s=30)
    assert await c.predict_chunk("d", [{"x": 2}]) == [{"y": 4}]  # after two 503s and a 404

    async def down(request):
        return web.Response(status=503)

    proxy.handle = down
    with pytest.raises(ServingLost):  # online calls do not wait: the caller has its own deadline
        await c.predict_batch("d", [{"x": 2}])
    wanted.clear()  # stopped meanwhile: no more waiting
    with pytest.raises(DeploymentUnavailable):
        await c.predict_chunk("d", [{"x": 2}])
    await c.close()
    await runner.cleanup()
