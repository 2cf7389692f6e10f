"""The gateway refuses request bodies over its cap with 413, before a route reads them."""

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from starlette.responses import JSONResponse

from modelhub_gateway.api.limits import UPLOAD_OVERHEAD_BYTES, BodySizeLimit, ConcurrencyLimit
from modelhub_gateway.app import build_app
from modelhub_gateway.settings import GatewaySettings

CAP = 100


def echo_app() -> tuple[FastAPI, list[int]]:
    app, seen = FastAPI(), []

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        seen.append(len(await request.body()))
        return {"bytes": seen[-1]}

    app.add_middleware(BodySizeLimit, max_bytes=CAP)
    return app, seen


def test_a_declared_length_over_the_cap_is_refused_unread():
    app, seen = echo_app()
    response = TestClient(app).post("/echo", content=b"x" * (CAP + 1))
    assert response.status_code == 413
    assert str(CAP) in response.json()["detail"]
    assert seen == []


def test_a_body_at_the_cap_goes_through():
    app, seen = echo_app()
    response = TestClient(app).post("/echo", content=b"x" * CAP)
    assert response.status_code == 200 and seen == [CAP]


def test_a_chunked_body_is_counted_as_it_streams():
    app, seen = echo_app()
    chunks = (b"x" * 40 for _ in range(5))  # no Content-Length: 200 bytes in 5 chunks
    response = TestClient(app).post("/echo", content=chunks)
    assert response.status_code == 413
    assert seen == []


def test_a_body_without_a_token_is_a_401_whatever_its_size(tmp_path):
    # the token comes first (gate.TokenGate); the caps for a known caller: test_gateway_body_auth.py
    app = build_app(GatewaySettings(data_dir=tmp_path, admin_token="x", max_upload_bytes=1000))
    client = TestClient(app)  # no lifespan: the refusal must not need MongoDB or NATS
    too_big = client.post(
        "/api/v1/models/m/versions",
        content=b"x" * (1000 + UPLOAD_OVERHEAD_BYTES + 1),
        headers={"Content-Type": "application/zip"},
    )
    assert too_big.status_code == 401
    anonymous = client.post("/api/v1/models", content=b"{}", headers={"Content-Type": "application/json"})
    assert anonymous.status_code == 401


def test_online_predict_has_its_own_smaller_cap_that_says_what_to_do(tmp_path, monkeypatch):
    app = build_app(GatewaySettings(data_dir=tmp_path, admin_token="x", predict_max_body_bytes=500))

    async def admin(digest: str) -> dict:  # the token lookup, without MongoDB
        return {"_id": "admin", "username": "admin", "is_admin": True, "token_hash": digest}

    monkeypatch.setattr(app.state.store, "user_by_token_hash", admin)
    client = TestClient(app, headers={"Authorization": "Bearer any"})
    refused = client.post(
        "/api/v1/deployments/d/predict", content=b"x" * 501, headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 413
    assert refused.json()["detail"] == "request body is over the 500-byte limit; send fewer samples per request"
    other_route = client.post("/api/v1/datasets", content=b"x" * 501, headers={"Content-Type": "application/json"})
    assert other_route.status_code == 422  # only predict has the small cap (this is the bad JSON)
    small = client.post("/api/v1/deployments/d/predict", content=b"{}", headers={"Content-Type": "application/json"})
    assert small.status_code == 422  # a small body reaches the route


async def test_predict_requests_over_the_gateway_limit_are_refused_at_once_and_others_pass():
    import asyncio
    import re

    import httpx

    release, entered = asyncio.Event(), []

    async def slow(scope, receive, send):
        entered.append(scope["path"])
        await release.wait()
        await JSONResponse({"ok": True})(scope, receive, send)

    limited = ConcurrencyLimit(slow, max_requests=2, paths=re.compile(r"^/predict$"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=limited), base_url="http://t") as client:
        held = [asyncio.create_task(client.post("/predict")) for _ in range(2)]
        while len(entered) < 2:
            await asyncio.sleep(0)
        refused = await client.post("/predict")
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
        assert "2 predict requests in progress" in refused.json()["detail"]
        other = asyncio.create_task(client.get("/elsewhere"))  # not counted, not refused
        while len(entered) < 3:
            await asyncio.sleep(0)
        release.set()
        assert [r.status_code for r in await asyncio.gather(*held, other)] == [200, 200, 200]
    assert limited.in_progress == 0
    assert (
        await httpx.AsyncClient(transport=httpx.ASGITransport(app=limited), base_url="http://t").post("/predict")
    ).status_code == 200  # freed once answered
