"""No request body is read before its sender is known: without a valid token the gateway answers
401 before reading a byte (as the routes would, but before FastAPI parses the body), and with one
it answers 413 before reading past the route's own cap. Driven through the whole app that
`build_app` wires (no lifespan: neither MongoDB nor NATS is needed), the token lookup faked."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from modelhub_contracts.documents import Dataset, User
from modelhub_gateway.api.deps import current_user
from modelhub_gateway.api.limits import UPLOAD_OVERHEAD_BYTES, body_length
from modelhub_gateway.app import PUBLIC_PATH, build_app
from modelhub_gateway.auth import hash_token
from modelhub_gateway.settings import GatewaySettings

GOOD = "good-token"
ANN = User(_id="ann", username="ann", is_admin=False, token_hash=hash_token(GOOD), created_at=datetime.now(UTC))
HUGE = 300 * 1000 * 1000  # the body of the report: 300 MB of JSON
# One route of each body cap, and the cap its 413 names
ROUTES = {
    "json": ("/api/v1/models", b"application/json", 1000),
    "upload": ("/api/v1/models/m/versions", b"multipart/form-data; boundary=x", 2000 + UPLOAD_OVERHEAD_BYTES),
    "predict": ("/api/v1/deployments/d/predict", b"application/json", 500),
    "samples": ("/api/v1/datasets/d/samples", b"application/json", 3000),
    "samples-delete": ("/api/v1/datasets/d/samples/delete", b"application/json", 3000),
}


@pytest.fixture
def app(tmp_path, monkeypatch):
    """The gateway's app, its store's token lookup (which the routes and the gate share) and
    dataset lookup in memory; `app.state.lookups` counts the token lookups."""
    settings = GatewaySettings(
        data_dir=tmp_path,
        admin_token="x",
        read_cache_seconds=0,
        json_max_body_bytes=1000,
        max_upload_bytes=2000,
        predict_max_body_bytes=500,
        samples_max_body_bytes=3000,
    )
    app = build_app(settings)
    app.state.lookups = 0

    async def user_by_token_hash(digest: str) -> User | None:
        app.state.lookups += 1
        return ANN if digest == ANN["token_hash"] else None

    async def dataset(name: str) -> Dataset:
        return Dataset(_id=name, name=name, description="", owner="ann", num_samples=0, created_at=ANN["created_at"])

    monkeypatch.setattr(app.state.store, "user_by_token_hash", user_by_token_hash)
    monkeypatch.setattr(app.state.store, "dataset", dataset)
    return app


class Sent:
    """What one request through the raw ASGI app got: the answer, and how often it read the body."""

    def __init__(self) -> None:
        self.status, self.headers, self.body, self.reads = 0, {}, b"", 0

    def json(self) -> Any:
        return json.loads(self.body)


async def call(app, path: str, headers: dict[str, str], method: str = "POST", chunks: int = 1) -> Sent:
    """`method path` with these headers straight into the ASGI app; its body (if read) is `chunks`
    chunks of 64 KiB."""
    sent = Sent()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }

    async def receive() -> dict:
        sent.reads += 1
        return {"type": "http.request", "body": b" " * 65536, "more_body": sent.reads < chunks}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            sent.status = message["status"]
            sent.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        else:
            sent.body += message.get("body", b"")

    await app(scope, receive, send)
    return sent


def declared(content_type: bytes, length: int, token: str | None = None, scheme: str = "Bearer") -> dict[str, str]:
    headers = {"Content-Type": content_type.decode(), "Content-Length": str(length)}
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    return headers


@pytest.mark.parametrize("route", ROUTES)
async def test_no_token_and_a_300_mb_body_is_a_401_before_a_byte_is_read(app, route):
    path, content_type, _ = ROUTES[route]
    answer = await call(app, path, declared(content_type, HUGE))
    assert (answer.status, answer.json()) == (401, {"detail": "missing bearer token"})
    assert answer.headers["www-authenticate"] == "Bearer" and answer.headers["connection"] == "close"
    assert answer.reads == 0


@pytest.mark.parametrize(
    ("token", "scheme", "detail"),
    [
        ("wrong", "Bearer", "invalid token"),
        (GOOD, "Basic", "missing bearer token"),  # a good token in another scheme, as HTTPBearer reads it
        ("", "Bearer", "missing bearer token"),
    ],
)
async def test_a_bad_token_is_a_401_before_a_byte_is_read(app, token, scheme, detail):
    answer = await call(app, "/api/v1/models", declared(b"application/json", HUGE, token, scheme))
    assert (answer.status, answer.json(), answer.reads) == (401, {"detail": detail}, 0)
    assert answer.headers["www-authenticate"] == "Bearer"


async def test_a_chunked_body_without_a_token_is_a_401_before_a_byte_is_read(app):
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked", "Authorization": "Bearer wrong"}
    answer = await call(app, "/api/v1/datasets", headers, chunks=HUGE // 65536)
    assert (answer.status, answer.json(), answer.reads) == (401, {"detail": "invalid token"}, 0)


async def test_the_401_before_the_body_is_the_one_the_routes_give(app):
    gate = await call(app, "/api/v1/users/me/token", declared(b"application/json", 10, "wrong"))
    route = await call(app, "/api/v1/users/me", {"Authorization": "Bearer wrong"}, method="GET")  # no body: the route's
    assert (gate.status, gate.json()) == (route.status, route.json()) == (401, {"detail": "invalid token"})
    assert gate.headers["www-authenticate"] == route.headers["www-authenticate"] == "Bearer"
    assert gate.headers["content-type"] == route.headers["content-type"]


@pytest.mark.parametrize("route", ROUTES)
async def test_a_known_caller_over_the_routes_cap_is_a_413_before_a_byte_is_read(app, route):
    path, content_type, cap = ROUTES[route]
    answer = await call(app, path, declared(content_type, cap + 1, GOOD))
    assert answer.status == 413 and answer.reads == 0, answer.body
    assert answer.json()["detail"].startswith(f"request body is over the {cap}-byte limit")
    assert answer.headers["connection"] == "close"


async def test_a_chunked_body_over_the_cap_is_refused_once_it_passes_it(app):
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked", "Authorization": f"Bearer {GOOD}"}
    answer = await call(app, "/api/v1/models", headers, chunks=HUGE // 65536)
    assert answer.status == 413 and answer.reads == 1  # one 64 KiB chunk passes the 1000-byte cap


@pytest.mark.parametrize("route", ["json", "predict", "samples", "samples-delete"])
def test_a_known_caller_under_the_cap_reaches_the_route(app, route):
    path, _, cap = ROUTES[route]
    body = b'{"unexpected": true}'.ljust(cap)  # as large as the cap allows; the route refuses its values
    client = TestClient(app, headers={"Authorization": f"Bearer {GOOD}", "Content-Type": "application/json"})
    answer = client.post(path, content=body)
    assert answer.status_code == 422 and answer.json()["errors"], answer.text  # read and validated by the route


def test_an_upload_under_its_cap_reaches_the_route(app):
    client = TestClient(app, headers={"Authorization": f"Bearer {GOOD}"})
    files = {"file": ("m.zip", b"x" * 1500, "application/zip")}
    answer = client.post("/api/v1/models/m/versions", files=files, data={"schema": "x"})
    assert answer.status_code == 422, answer.text  # over the JSON routes' cap; the route finds its schema too short
    assert [e["loc"] for e in answer.json()["errors"]] == [["body", "schema"]]


def test_only_a_route_with_a_cap_of_its_own_takes_more_than_the_json_cap(app):
    client = TestClient(app, headers={"Authorization": f"Bearer {GOOD}", "Content-Type": "application/json"})
    assert client.post("/api/v1/datasets", content=b"{}".ljust(1001)).status_code == 413
    assert client.post("/api/v1/datasets/d/samples", content=b"{}".ljust(1001)).status_code == 422


def test_requests_without_a_body_are_left_to_the_routes(app):
    client = TestClient(app)
    answer = client.get("/api/v1/models")
    assert (answer.status_code, answer.json()) == (401, {"detail": "missing bearer token"})
    assert answer.headers.get("connection") != "close"
    assert app.state.lookups == 0  # no token: nothing to look up, by the gate or the route


def test_a_known_caller_is_looked_up_by_the_gate_and_again_by_the_route(app):
    client = TestClient(app, headers={"Authorization": f"Bearer {GOOD}", "Content-Type": "application/json"})
    assert client.post("/api/v1/models", content=b"{}").status_code == 422
    assert app.state.lookups == 2  # the read cache is off here; on, the second is served from it


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/asyncapi.json", 200),
        ("GET", "/api/v1/asyncapi", 200),
        ("GET", "/api/v1/openapi.json", 200),
        ("GET", "/api/v1/docs", 200),
        ("GET", "/metrics", 200),
        ("GET", "/", 307),
        ("POST", "/api/v1/health", 405),  # public, but not for a POST: the router says so, unread
        ("POST", "/metrics", 405),
    ],
)
async def test_public_routes_stay_public_even_with_a_body(app, method, path, status):
    answer = await call(app, path, declared(b"application/json", 10), method=method)
    assert (answer.status, answer.reads) == (status, 0), answer.body


def _dependencies(dependant) -> set:
    return {dependant.call}.union(*(_dependencies(d) for d in dependant.dependencies))


def _routes(routes) -> list[APIRoute]:
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):  # FastAPI keeps included routers nested
            found += _routes(route.original_router.routes)
    return found


def test_the_gates_public_paths_are_the_routes_without_a_user(app):
    """A route made public (or one made private) must be so for the gate too."""
    routes = _routes(app.routes)
    assert len(routes) > 20
    for route in routes:
        public = current_user not in _dependencies(route.dependant)
        path = app.url_path_for(route.name, **dict.fromkeys(route.param_convertors, "x"))  # with its prefix
        assert bool(PUBLIC_PATH.match(path)) == public, f"{route.methods} {path}"
    for path in ("/api/v1/docs", "/api/v1/openapi.json", "/ui/index.html", "/metrics", "/"):
        assert PUBLIC_PATH.match(path), path
    for path in ("/api/v1/unknown", "/api/v1/health/x", "/api/v1/docsx"):
        assert not PUBLIC_PATH.match(path), path


@pytest.mark.parametrize(
    ("headers", "length"),
    [
        ([], 0),
        ([(b"content-length", b"0")], 0),
        ([(b"content-length", b"12")], 12),
        ([(b"transfer-encoding", b"chunked")], None),
        ([(b"content-length", b"12"), (b"transfer-encoding", b"chunked")], None),
        ([(b"content-length", b"twelve")], None),
    ],
)
def test_the_body_length_a_request_declares(headers, length):
    assert body_length({"type": "http", "headers": headers}) == length
