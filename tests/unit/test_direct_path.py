"""The direct path to replicas (modelhub_worker.direct with the replica's own modelhub_replica.DirectServer,
over real sockets; an aiohttp server plays Serve's proxy): calls go to the address a proxy answer
named, each connection starts with proofs of the secret on both sides, a process at a dead
replica's port or a relay to a live one gets no secret and no samples, a cancelled call is cancelled
in the replica, and a replica that is gone costs a call nothing (it goes through the proxy)."""

import asyncio
import contextlib
import hashlib
import json
import socket
import time
import zipfile
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from waiting import until

import modelhub_replica as replica
from modelhub_contracts import direct as wire
from modelhub_replica.jail import JailSpec, ModelProcess
from modelhub_worker import direct, serving
from modelhub_worker.serving import SECRET_HEADER, ModelFailed, ServeClient, ServingLost

SECRET = "s3cret-of-d"


class Replica:
    """The replica's listener with a doubling model; records what its model was asked and the
    connections it accepted (their writers)."""

    def __init__(self, secret: str = SECRET) -> None:
        self.asked: list[list[dict]] = []
        self.accepted: list[asyncio.StreamWriter] = []
        self.gate: asyncio.Event | None = None
        self.cancelled = asyncio.Event()
        self.server = replica.DirectServer(secret.encode(), self.answer, host="127.0.0.1")
        handle = self.server._connection

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted.append(writer)
            await handle(reader, writer)

        self.server._connection = accepted  # before it listens: the server takes the handler then

    async def answer(self, payload, traceparent):
        samples = payload.get("batches", payload.get("samples"))
        self.asked.append(samples)
        if self.gate is not None:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        if not isinstance(samples, list):
            return 400, json.dumps({"detail": "bad request: 'samples' must be a list of objects"}).encode()
        if "batches" in payload:
            return 200, json.dumps({"results": [{"outputs": doubled(b)} for b in samples]}).encode()
        return 200, json.dumps({"outputs": doubled(samples)}).encode()


def doubled(samples: list[dict]) -> list[dict]:
    return [{"y": s["x"] * 2} for s in samples]


class Proxy:
    """Serve's proxy for deployment 'd': answers like a replica and names the replica's address."""

    def __init__(self, offer) -> None:
        self.offer = offer  # () -> the "direct" value to name
        self.calls = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get(SECRET_HEADER) != SECRET:
            return web.json_response({"detail": "wrong secret"}, status=403)
        self.calls += 1
        request_body = await request.json()
        if "batches" in request_body:
            results = [{"outputs": doubled(b)} for b in request_body["batches"]]
            return web.json_response({"results": results, "direct": self.offer()})
        return web.json_response({"outputs": doubled(request_body["samples"]), "direct": self.offer()})


@contextlib.asynccontextmanager
async def proxy_naming(offer):
    p = Proxy(offer)
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


def client_of(proxy: Proxy, secret: str = SECRET) -> ServeClient:
    async def known(name: str) -> str:
        return secret

    return ServeClient(proxy.url, known, lost_wait_s=0)


async def started(r: Replica) -> str:
    endpoint = await r.server.start()
    assert endpoint is not None
    return endpoint


@contextlib.asynccontextmanager
async def taught(r: Replica, first: int = 1) -> AsyncIterator[tuple[Proxy, ServeClient, str]]:
    """A client whose first call ({"x": first}, through the proxy) taught it `r`'s address, once
    its first direct connection is made (beside the calls): (the proxy, the client, the address)."""
    endpoint = await started(r)
    async with proxy_naming(lambda: endpoint) as proxy:
        c = client_of(proxy)
        assert c.direct is not None
        assert await c.predict_chunk("d", [{"x": first}]) == [{"y": 2 * first}]
        await until(lambda: c.direct.known("d") == [endpoint])
        yield proxy, c, endpoint


async def routes_to(address: str, secret: str) -> tuple[direct.DirectRoutes, direct.Endpoint | None]:
    """Routes that learned `address` with `secret`, once its first connection is made or failed."""
    routes = direct.DirectRoutes()
    routes.learn("d", address, secret)
    await until(lambda: routes.known("d") or routes.dropped)
    return routes, routes.pick("d")


async def test_after_one_proxy_answer_calls_go_to_the_replica_itself_over_one_connection():
    r = Replica()
    async with taught(r, first=0) as (proxy, c, _):
        for i in range(48):
            assert await c.predict_chunk("d", [{"x": i}, {"x": i + 1}]) == [{"y": 2 * i}, {"y": 2 * i + 2}]
        # the first call taught the address; then every 2nd call asks the proxy until three of its
        # answers named no other replica (calls 2, 4, 6), then every 16th (16, 32, 48)
        assert proxy.calls == 1 + 3 + 3 and len(r.asked) == 42 and c.direct.calls == 42
        assert len(r.accepted) == 1, "the direct connection was not kept"
        await c.close()
    await r.server.close()


async def test_a_worker_asks_the_proxy_more_often_until_it_has_met_every_replica():
    r1, r2 = Replica(), Replica()
    a, b = await started(r1), await started(r2)
    names = iter([a, a, a, b] + [a, b] * 40)  # Serve's proxy names a first, b only at its 4th answer
    async with proxy_naming(lambda: next(names)) as proxy:
        c = client_of(proxy)
        assert c.direct is not None and await c.predict_chunk("d", [{"x": 0}]) == [{"y": 0}]
        await until(lambda: c.direct.known("d") == [a])
        for i in range(1, 7):  # learning: every 2nd call through the proxy
            await c.predict_chunk("d", [{"x": i}])
        assert proxy.calls == 4 and c.spread("d") in (1, 2)  # b named at the 4th answer: learning again
        await until(lambda: c.direct.known("d") == sorted([a, b]))
        for i in range(7, 13):  # three answers naming no new replica end it
            await c.predict_chunk("d", [{"x": i}])
        assert proxy.calls == 7 and c.spread("d") == 2
        for i in range(13, 45):  # then every 16th
            await c.predict_chunk("d", [{"x": i}])
        assert proxy.calls == 7 + 2 and len(r1.asked) + len(r2.asked) == 44 - 8
        await c.close()
    await r1.server.close()
    await r2.server.close()


async def test_a_caller_without_the_secret_gets_no_answer_and_the_model_is_not_asked():
    r = Replica()
    endpoint = await started(r)
    routes, ep = await routes_to(endpoint, "a guess")
    assert ep is None and routes.dropped == 1 and routes.known("d") == []
    # the replica answered the hello, and its proof did not match this secret
    with pytest.raises(direct.DirectFailed, match="not this deployment's replica"):
        await routes._open(direct.Endpoint(endpoint, *direct.parse_endpoint(endpoint)), b"a guess")  # type: ignore[misc]
    # a raw client that skips the proof: the replica closes without reading a frame
    reader, writer = await asyncio.open_connection("127.0.0.1", int(endpoint.rsplit(":", 1)[1]))
    writer.write(wire.MAGIC + b"n" * wire.NONCE)
    await reader.readexactly(wire.NONCE + wire.PROOF)
    writer.write(b"x" * wire.PROOF)
    frame = b'{"samples": [{"x": 1}]}'
    writer.write(len(frame).to_bytes(4, "big") + frame)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert r.asked == []
    writer.close()
    await r.server.close()


async def test_a_process_at_a_dead_replicas_port_learns_neither_the_secret_nor_a_sample():
    received = bytearray()
    hung_up = asyncio.Event()

    async def squat(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # it answers the hello with made-up bytes, then keeps reading whatever comes until the end
        received.extend(await reader.readexactly(len(wire.MAGIC) + wire.NONCE))
        writer.write(b"\0" * (wire.NONCE + wire.PROOF))
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(1 << 16):
                received.extend(chunk)
        hung_up.set()

    squatter = await asyncio.start_server(squat, "127.0.0.1", 0)
    address = f"127.0.0.1:{squatter.sockets[0].getsockname()[1]}"
    async with proxy_naming(lambda: address) as proxy:
        c = client_of(proxy)
        assert c.direct is not None
        assert await c.predict_chunk("d", [{"x": 1}]) == [{"y": 2}]  # through the proxy; learns it
        await until(lambda: c.direct.dropped == 1)  # its first connection failed the proof
        assert await c.predict_chunk("d", [{"x": 3, "note": "private"}]) == [{"y": 6}]  # proxy again
        assert c.direct.known("d") == [] and c.direct.calls == 0 and proxy.calls == 2  # not taken again
        await c.close()
    await asyncio.wait_for(hung_up.wait(), 5)  # the worker closed that connection
    assert len(received) == len(wire.MAGIC) + wire.NONCE  # the hello, nothing after it
    squatter.close()


async def test_a_relay_to_a_live_replica_fails_the_proof_bound_to_the_address():
    r = Replica()
    endpoint = await started(r)
    host, port = endpoint.rsplit(":", 1)

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))

        async def pipe(src, dst):
            with contextlib.suppress(ConnectionError):
                while chunk := await src.read(1 << 16):
                    dst.write(chunk)
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    relay_server = await asyncio.start_server(relay, "127.0.0.1", 0)
    relayed = f"127.0.0.1:{relay_server.sockets[0].getsockname()[1]}"
    routes, ep = await routes_to(relayed, SECRET)
    assert ep is None and routes.dropped == 1
    # it failed on the proof (the replica's hello came through the relay), not on the connection;
    # the same secret at the replica's own address passes
    with pytest.raises(direct.DirectFailed, match="not this deployment's replica"):
        await routes._open(direct.Endpoint(relayed, "127.0.0.1", int(relayed.rsplit(":", 1)[1])), SECRET.encode())
    reader, writer = await routes._open(direct.Endpoint(endpoint, host, int(port)), SECRET.encode())
    writer.close()
    assert r.asked == []
    relay_server.close()
    await r.server.close()


async def test_cancelling_a_direct_call_cancels_it_in_the_replica():
    r = Replica()
    r.gate = asyncio.Event()
    endpoint = await started(r)
    routes, ep = await routes_to(endpoint, SECRET)
    assert ep is not None
    call = asyncio.create_task(routes.call(ep, SECRET, b'{"samples": [{"x": 1}]}'))
    await until(lambda: r.asked)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.wait_for(r.cancelled.wait(), 5)
    assert ep.idle == [] and ep.in_flight == 0  # the connection in doubt is not reused
    await r.server.close()


async def test_a_replica_that_went_away_costs_the_call_nothing_and_its_address_is_dropped():
    r = Replica()
    async with taught(r) as (proxy, c, _):
        assert c.direct is not None
        c.direct.settled_after = 0  # past its learning phase: only every 16th call asks the proxy
        assert await c.predict_chunk("d", [{"x": 2}]) == [{"y": 4}] and r.asked == [[{"x": 2}]]
        await r.server.close()  # as when the replica's process dies: no listener, its connections cut
        for writer in r.accepted:
            writer.transport.abort()
        assert await c.predict_chunk("d", [{"x": 3}]) == [{"y": 6}]  # answered by the proxy
        assert c.direct is not None and c.direct.dropped == 1 and proxy.calls == 2
        await c.close()


async def test_bad_input_to_the_replica_is_no_answer_as_over_http():
    r = Replica()
    async with taught(r) as (_, c, _):
        with pytest.raises(ServingLost, match="HTTP 400"):
            await c._call("d", {"samples": "not a list"}, 1, None)
        await c.close()
    await r.server.close()


@pytest.mark.parametrize("offer", [None, 7, "no-port", "h:0", "h:99999", "x" * 400 + ":1"])
async def test_only_a_host_and_port_is_learned(offer):
    routes = direct.DirectRoutes()
    routes.learn("d", offer, SECRET)
    assert routes._endpoints["d"] == {} and routes.pick("d") is None


async def test_an_address_that_never_answers_costs_the_calls_nothing():
    hellos = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hellos.append(await reader.read(100))
        await reader.read()  # never answers; holds the connection until the worker gives up

    mute = await asyncio.start_server(silent, "127.0.0.1", 0)
    address = f"127.0.0.1:{mute.sockets[0].getsockname()[1]}"
    async with proxy_naming(lambda: address) as proxy:
        c = client_of(proxy)
        assert c.direct is not None
        c.direct.connect_timeout = 1.0
        for i in range(5):  # while its first connection waits for an answer, calls go through the proxy
            async with asyncio.timeout(0.5):
                assert await c.predict_chunk("d", [{"x": i}]) == [{"y": 2 * i}]
        assert proxy.calls == 5 and len(hellos) == 1
        await until(lambda: c.direct.dropped == 1, timeout=3)
        await c.close()
    mute.close()


MODEL = """
class Model:
    def __init__(self, root):
        pass

    def predict(self, batch):
        return {"y": [object() if x == "odd" else x for x in batch["x"]]}
"""


def model_replica_with(tmp_path):
    """A ModelReplica (without Serve) around a real model process: jailed where bubblewrap can."""
    path = tmp_path / "m.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.py", MODEL)
    work = tmp_path / "work"
    work.mkdir()
    process = ModelProcess(
        str(path),
        hashlib.sha256(path.read_bytes()).hexdigest(),
        "model:Model",
        str(work),
        JailSpec([], [], False),
        allow_unsealed=True,
    )
    model_replica = replica.ModelReplica.func_or_class.__new__(replica.ModelReplica.func_or_class)
    model_replica._model, model_replica._mini_batch = process, 4
    return model_replica


async def test_the_replicas_answer_is_json_or_the_models_error_either_way_it_came(tmp_path):
    model_replica = model_replica_with(tmp_path)
    status, body = await model_replica._answer([{"x": 1}, {"x": 2}], None, {"direct": "h:1"})
    assert status == 200 and json.loads(body) == {"outputs": [{"y": 1}, {"y": 2}], "direct": "h:1"}
    status, body = await model_replica._answer([{"x": "odd"}], "00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    assert status == 200 and "not JSON serializable" in json.loads(body)["error"]  # never pickled, never a 500
    status, body = await model_replica._answer([{"x": 1}] * 5, None)
    assert status == 200 and "1 to 4 samples" in json.loads(body)["error"]
    status, body = await model_replica._answer("nope", None)
    assert status == 400 and "detail" in json.loads(body)


async def test_a_tasks_mini_batches_go_to_a_replica_in_one_call_each_with_its_own_result():
    r = Replica()
    async with taught(r) as (proxy, c, _):
        assert c.spread("d") == 1  # one replica known: a task's mini-batches in one call
        batches = [[{"x": 1}, {"x": 2}], [{"x": 3}]]
        assert await c.predict_chunks("d", batches) == [[{"y": 2}, {"y": 4}], [{"y": 6}]]
        assert r.asked == [batches] and proxy.calls == 1  # one direct call (the proxy's was the first)
        # the replica runs a call's mini-batches in turn: its bound is the per-call one for each
        assert serving._timeout(300, {"batches": batches}) == 600 and serving._timeout(300, {"samples": []}) == 300
        await c.close()
    await r.server.close()


async def test_a_replica_that_takes_one_mini_batch_per_call_gets_one_per_call():
    r = Replica()
    async with taught(r) as (_, c, _):
        old = r.answer

        async def samples_only(payload, traceparent):  # a replica of an older hub
            if "batches" in payload:
                return 400, json.dumps({"detail": "bad request: 'samples'"}).encode()
            return await old(payload, traceparent)

        r.server._answer_fn = samples_only
        with pytest.raises(ModelFailed, match="one mini-batch per call"):
            await c.predict_chunks("d", [[{"x": 1}], [{"x": 2}]])
        assert c.spread("d") == 0 and c.direct is not None and c.direct.known("d")  # the address stays
        assert await c.predict_chunk("d", [{"x": 5}]) == [{"y": 10}]
        await c.close()
    await r.server.close()


async def test_the_replica_answers_each_mini_batch_of_a_call_on_its_own(tmp_path):
    model_replica = model_replica_with(tmp_path)
    traceparent = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    batches = [[{"x": 1}, {"x": 2}], [{"x": "odd"}], [{"x": 3}] * 5, [{"x": 4}]]
    status, body = await model_replica._answer_request({"batches": batches}, traceparent, {"direct": "h:1"})
    answer = json.loads(body)
    assert status == 200 and answer["direct"] == "h:1" and answer["span"]["batch_size"] == 9
    first, odd, too_big, last = answer["results"]
    assert first == {"outputs": [{"y": 1}, {"y": 2}]} and last == {"outputs": [{"y": 4}]}
    assert "not JSON serializable" in odd["error"] and "1 to 4 samples" in too_big["error"]  # each fails alone
    for bad in ("nope", [], [["x"]], [[{"x": 1}]] * (replica.MAX_BATCHES_PER_CALL + 1)):
        status, body = await model_replica._answer_request({"batches": bad}, None)
        assert status == 400 and "detail" in json.loads(body)


async def test_with_the_direct_path_off_every_call_goes_through_the_proxy():
    r = Replica()
    endpoint = await started(r)
    async with proxy_naming(lambda: endpoint) as proxy:

        async def known(name: str) -> str:
            return SECRET

        c = ServeClient(proxy.url, known, direct=False)  # MODELHUB_SERVE_DIRECT=false
        for i in range(20):
            assert await c.predict_chunk("d", [{"x": i}]) == [{"y": 2 * i}]
        assert proxy.calls == 20 and r.asked == [] and c.direct is None
        await c.close()
    await r.server.close()


async def test_an_address_that_refuses_is_dropped_not_left_half_known():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"  # nothing listens there once the socket is closed
    routes, ep = await routes_to(closed, SECRET)
    assert ep is None and routes.dropped == 1 and routes._endpoints["d"] == {}


async def test_one_deployment_naming_anothers_replica_does_not_switch_that_ones_path_off():
    r = Replica()
    endpoint = await started(r)
    routes = direct.DirectRoutes()
    routes.learn("x", endpoint, "x's secret")  # a replica of x names d's replica as its own
    await until(lambda: routes.dropped == 1)
    routes.learn("d", endpoint, SECRET)  # d's own answer names it
    await until(lambda: routes.known("d") == [endpoint])
    assert routes.known("x") == []
    await r.server.close()


async def proven_peer(answer: bytes) -> tuple[asyncio.AbstractServer, str]:
    """A listener that passes the handshake with SECRET, then answers `answer` to a frame and hangs up."""
    address: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = await reader.readexactly(len(wire.MAGIC) + wire.NONCE)
        nonce = b"r" * wire.NONCE
        writer.write(nonce + wire.proof(SECRET.encode(), b"replica", hello[4:], nonce, address[0]))
        await reader.readexactly(wire.PROOF)
        size = int.from_bytes(await reader.readexactly(4), "big")
        await reader.readexactly(size)
        writer.write(answer)
        await writer.drain()
        writer.close()  # a cut answer ends here

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    address.append(f"127.0.0.1:{server.sockets[0].getsockname()[1]}")
    return server, address[0]


@pytest.mark.parametrize(
    "answer, why",
    [
        ((wire.MAX_FRAME + 1).to_bytes(4, "big"), "byte answer"),
        (b"\0\0\0\x05{not", "IncompleteReadError"),
        (b"\0\0\0\x05[[[[[", "JSONDecodeError"),
    ],
)
async def test_an_answer_that_is_too_large_cut_or_not_json_is_no_answer(answer, why):
    server, address = await proven_peer(answer)
    routes, ep = await routes_to(address, SECRET)
    assert ep is not None
    routes.max_answer = wire.MAX_FRAME + 1  # the frame limit itself (the bound on answers: test_worker_bounds)
    with pytest.raises(direct.DirectFailed, match=why):
        await routes.call(ep, SECRET, b'{"samples": []}')
    assert ep.idle == []  # the connection in doubt is closed, not pooled
    server.close()


async def test_a_request_too_large_for_a_frame_goes_through_the_proxy(monkeypatch):
    r = Replica()
    async with taught(r) as (proxy, c, _):
        monkeypatch.setattr("modelhub_worker.serving.MAX_FRAME", 40)
        assert await c.predict_chunk("d", [{"x": 2, "pad": "p" * 40}]) == [{"y": 4}]
        assert proxy.calls == 2 and r.asked == [] and c.direct.dropped == 0
        await c.close()
    await r.server.close()


def ready_routes(*loads: tuple[int, int], settled_after: int = 0) -> tuple[direct.DirectRoutes, list[direct.Endpoint]]:
    """Routes of deployment 'd' with one ready replica per (mini-batches, calls) in flight; by
    default past their learning phase (and nothing through the proxy while the count is not known)."""
    routes = direct.DirectRoutes(settled_after=settled_after, proxy_every=10_000)
    endpoints = []
    for i, (load, calls) in enumerate(loads):
        address = f"10.0.0.{i + 1}:7000"
        endpoint = direct.Endpoint(address, f"10.0.0.{i + 1}", 7000, in_flight=calls, load=load, ready=True)
        routes._endpoints.setdefault("d", {})[address] = endpoint
        endpoints.append(endpoint)
    return routes, endpoints


def test_a_call_goes_to_the_replica_with_the_fewest_mini_batches_to_run_not_calls():
    # one call of 3 mini-batches against two of 1: the second replica is done sooner
    routes, (three, two) = ready_routes((3, 1), (2, 2))
    assert routes.pick("d") is two
    two.load = 4
    assert routes.pick("d") is three


def test_with_its_replica_count_known_a_worker_learns_until_it_has_met_every_replica():
    routes, (a, b) = ready_routes((0, 0), (0, 0), settled_after=direct.SETTLED_AFTER)
    routes.expect("d", 3)  # one replica not met yet
    assert routes.spread("d") == 3  # a task's mini-batches in as many calls as there are replicas
    picks = [routes.pick("d") for _ in range(4)]
    assert picks[1] is None and picks[3] is None  # every 2nd call through the proxy, as it learns
    assert picks[0] in (a, b) and picks[2] in (a, b)
    a.load = b.load = 1  # both known replicas busy: the proxy, which reaches the third, takes the call
    assert [routes.pick("d") for _ in range(4)] == [None] * 4
    b.load = 0
    assert routes.pick("d") is b
    # met them all: the proxy takes a call only every MET_PROXY_EVERY-th (it picks blind, so each
    # of its calls may give a replica more than its share)
    routes._endpoints["d"]["10.0.0.3:7000"] = direct.Endpoint("10.0.0.3:7000", "10.0.0.3", 7000, ready=True)
    routes._turns["d"] = 0
    picks = [routes.pick("d") for _ in range(2 * direct.MET_PROXY_EVERY)]
    assert picks.count(None) == 2 and routes.spread("d") == 3
    routes.forget("d")  # a new secret: the count is read again with it
    assert routes.spread("d") == 0 and routes._expected == {}


async def test_the_replica_count_comes_with_the_secret_and_only_for_the_direct_path():
    asked: list[str] = []

    async def secret(name: str) -> str:
        asked.append(f"secret {name}")
        return SECRET

    async def route(name: str) -> tuple[str, int]:
        asked.append(f"route {name}")
        return SECRET, 4

    c = ServeClient("http://127.0.0.1:9", secret, route=route)
    assert await c._secret("d") == SECRET and asked == ["route d"] and c.direct is not None
    assert c.direct._expected == {"d": 4}
    assert await c._secret("d") == SECRET and asked == ["route d"]  # kept with the secret
    off = ServeClient("http://127.0.0.1:9", secret, route=route, direct=False)
    assert await off._secret("d") == SECRET and asked == ["route d", "secret d"]
    await c.close()
    await off.close()


async def test_a_slow_models_mini_batches_go_one_per_call_a_fast_ones_together():
    r = Replica()
    async with taught(r) as (_, c, _):
        assert c.direct is not None and c.spread("d") == 1
        plain = r.answer

        gpu = asyncio.Lock()

        async def slow(payload, traceparent):  # 60 ms per mini-batch, one call at a time, like a GPU
            async with gpu:
                await asyncio.sleep(0.06 * len(payload.get("batches") or [0]))
            return await plain(payload, traceparent)

        r.server._answer_fn = slow
        # two calls of two mini-batches at once: the second waits for the first's two as well,
        # and its time is divided by all four, so queueing does not make a model look slow
        await asyncio.gather(*(c.predict_chunks("d", [[{"x": 1}], [{"x": 2}]]) for _ in range(2)))
        assert c.direct.batch_seconds("d") >= serving.SLOW_BATCH_S > 0
        assert c.spread("d") == 0  # one mini-batch per call from now on
        assert await c.predict_chunk("d", [{"x": 3}]) == [{"y": 6}]
        r.server._answer_fn = plain
        for i in range(20):  # a fast model again (a redeploy would also forget the estimate)
            await c.predict_chunk("d", [{"x": i}])
        assert c.direct.batch_seconds("d") < serving.SLOW_BATCH_S and c.spread("d") == 1
        await c.close()
    await r.server.close()


def test_a_replica_this_worker_cannot_reach_counts_as_met_while_its_address_is_shunned():
    routes, (a, b) = ready_routes((0, 0), (0, 0), settled_after=direct.SETTLED_AFTER)
    routes.expect("d", 3)
    a.load = b.load = 1
    assert routes.pick("d") is None and routes.spread("d") == 3  # meeting the third
    # the proxy named the third, and its handshake failed: shunned, it counts as met
    routes._shunned[("d", "10.0.0.3:7000")] = time.monotonic() + 30
    picks = [routes.pick("d") for _ in range(16)]
    assert None not in picks and routes.spread("d") == 2  # direct, over the two it reaches
    routes._shunned[("d", "10.0.0.3:7000")] = time.monotonic() - 1  # its shun is over: met again
    assert routes.spread("d") == 3


def test_when_fewer_replicas_run_than_the_count_says_the_rule_without_a_count_holds():
    routes, (a, b) = ready_routes((1, 1), (1, 1), settled_after=direct.SETTLED_AFTER)
    routes.expect("d", 3)  # the document says 3; one was lost and is not back
    assert routes.spread("d") == 3 and routes.pick("d") is None
    # the proxy's answers name known replicas only, three for each replica of the count in a row
    for _ in range(3 * 3):
        routes.learn("d", "10.0.0.1:7000", SECRET)
    picks = [routes.pick("d") for _ in range(16)]
    assert None not in picks and routes.spread("d") == 2  # no longer waiting to meet the third


async def test_a_call_that_fails_gives_its_mini_batches_back():
    routes = direct.DirectRoutes()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = direct.Endpoint(f"127.0.0.1:{port}", "127.0.0.1", port, ready=True)
    with pytest.raises(direct.DirectFailed):
        await routes.call(endpoint, SECRET, b"{}", batches=3)
    assert (endpoint.load, endpoint.in_flight) == (0, 0)
