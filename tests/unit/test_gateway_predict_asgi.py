"""The gateway's lean online-predict path: what it answers itself, in the app's error shapes, and
what it hands on, body intact, to the FastAPI route (which then answers 401/422 as before)."""

import json
from typing import cast

import pytest
from faststream.nats import NatsBroker

from modelhub_contracts.errors import Busy, Invalid, NotFound, from_status
from modelhub_gateway import online as online_module
from modelhub_gateway.api import predict_asgi
from modelhub_gateway.api.predict_asgi import LeanPredict
from modelhub_gateway.online import OnlinePredict
from modelhub_gateway.schemas import PredictOut
from modelhub_gateway.store import GatewayStore

PATH = "/api/v1/deployments/dep/predict"
BODY = json.dumps({"inputs": {"text": ["a", "bb"]}}).encode()


class Inner:
    """The FastAPI app behind the layer: records what reached it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message["body"], message.get("more_body", False)
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 599, "headers": []})
        await send({"type": "http.response.body", "body": b""})


class Online(OnlinePredict):
    """The real `answer` (the checks both HTTP paths share), a fake `predict` below it."""

    def __init__(self, refusal: Exception | None = None) -> None:
        super().__init__()
        self.refusal, self.requests = refusal, []

    async def predict(self, store, broker, deployment, body):
        self.requests.append((deployment["_id"], body.inputs))
        if self.refusal:
            raise self.refusal
        return PredictOut(outputs={"n": [len(t) for t in body.inputs["text"]]})


@pytest.fixture
def deployments(monkeypatch):
    docs = {"dep": {"_id": "dep", "status": "running"}}

    async def authenticate(store, token):
        return {"_id": "ann"} if token == "good" else None

    async def visible(store, user, name, need="run", recent=False):
        assert recent  # the read cache, as the route uses it
        if name not in docs:
            raise NotFound(f"deployment '{name}' not found")  # as the use case does
        return docs[name]

    monkeypatch.setattr(predict_asgi.auth, "authenticate", authenticate)
    monkeypatch.setattr(online_module, "visible_deployment", visible)
    return docs


async def post(
    layer: LeanPredict,
    body: bytes = BODY,
    token: str | None = "good",
    path: str = PATH,
    content_type: bytes = b"application/json",
) -> tuple[int, dict, bytes]:
    headers = [(b"content-type", content_type)]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    chunks = [body[:5], body[5:]]  # a body in two messages
    sent: list[dict] = []

    async def receive():
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message):
        sent.append(message)

    await layer({"type": "http", "method": "POST", "path": path, "headers": headers}, receive, send)
    return sent[0]["status"], {k.decode(): v.decode() for k, v in sent[0]["headers"]}, sent[1]["body"]


def layer(inner: Inner, online: Online) -> LeanPredict:
    # the store and broker reach only the functions replaced by the fixture and the fake Online
    return LeanPredict(
        inner,
        "/api/v1",
        store=cast(GatewayStore, None),
        broker=cast(NatsBroker, None),
        online=lambda: online,
    )


async def test_a_valid_request_is_answered_without_the_route(deployments):
    inner, online = Inner(), Online()
    status, headers, body = await post(layer(inner, online))
    assert (status, json.loads(body), headers["content-type"]) == (200, {"outputs": {"n": [1, 2]}}, "application/json")
    assert online.requests == [("dep", {"text": ["a", "bb"]})] and inner.bodies == []


@pytest.mark.parametrize(
    "change",
    [
        {"token": None},
        {"token": "wrong"},
        {"body": b'{"inputs": 3}'},
        {"body": b"not json"},
        {"path": "/api/v1/deployments/b@d/predict"},
        {"content_type": b"text/plain"},
    ],
)
async def test_what_it_does_not_answer_goes_to_the_route_with_its_body(deployments, change):
    inner, online = Inner(), Online()
    status, _, _ = await post(layer(inner, online), **change)
    assert status == 599 and inner.bodies == [change.get("body", BODY)] and online.requests == []


async def test_refusals_keep_the_apps_shapes_and_headers(deployments):
    deployments["dep"]["status"] = "deploying"
    status, _, body = await post(layer(Inner(), Online()))
    assert (status, json.loads(body)) == (409, {"detail": "deployment 'dep' is deploying, not running"})
    deployments["dep"]["status"] = "running"

    status, _, body = await post(layer(Inner(), Online()), path="/api/v1/deployments/other/predict")
    assert (status, json.loads(body)) == (404, {"detail": "deployment 'other' not found"})

    busy = Busy("full", retry_after=1)
    status, headers, body = await post(layer(Inner(), Online(busy)))
    assert (status, headers["retry-after"], json.loads(body)) == (429, "1", {"detail": "full"})

    # a worker's refusal comes back from rpc.call as a domain error, Retry-After in whole seconds
    worker_full = from_status(429, "worker full", retry_after=0.2)
    status, headers, body = await post(layer(Inner(), Online(worker_full)))
    assert (status, headers["retry-after"], json.loads(body)) == (429, "1", {"detail": "worker full"})

    status, _, body = await post(layer(Inner(), Online(Invalid("inputs must be exactly the model's"))))
    assert status == 422 and json.loads(body) == {
        "detail": "inputs must be exactly the model's",
        "errors": [{"loc": [], "msg": "inputs must be exactly the model's", "type": "value_error"}],
    }


async def test_other_paths_and_methods_pass_through(deployments):
    inner = Inner()
    layer_ = layer(inner, Online())
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    for method, path in (("GET", PATH), ("POST", "/api/v1/deployments/dep"), ("POST", "/api/v1/models")):
        await layer_({"type": "http", "method": method, "path": path, "headers": []}, receive, send)
    assert len(inner.bodies) == 3
