"""Online predict's two HTTP paths answer alike: the whole app as `build_app` wires it (the lean
ASGI path, api/predict_asgi.py, in front) against the same app without that layer (the FastAPI
route alone), for the same requests. Both run `OnlinePredict.answer`; only the worker's reply
(`online.call`) and the store's reads are faked, so the checks under both are the real ones."""

from datetime import UTC, datetime
from typing import cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from memory_gateway import memory_gateway

from modelhub_contracts.documents import Deployment, Model, User, Version
from modelhub_gateway import online
from modelhub_gateway.api import predict_asgi
from modelhub_gateway.auth import hash_token

GOOD = "good-token"
NOW = datetime.now(UTC)
ANN = User(_id="ann", username="ann", is_admin=False, token_hash=hash_token(GOOD), created_at=NOW)
SCHEMA = {
    "inputs": {"type": "object", "properties": {"text": {"type": "text"}}},
    "outputs": {"type": "object", "properties": {"n": {"type": "number"}}},
}
# only the fields online predict reads
MODEL = cast(Model, {"_id": "m", "name": "m", "owner": "ann"})
VERSION = cast(Version, {"model_id": "m", "version": 1, "schema": SCHEMA})


def deployment(name: str, status: str) -> Deployment:
    fields = {"model": "m", "version": 1, "package_object": f"{name}.zip", "mini_batch": 8, "num_replicas": 1}
    return cast(Deployment, {"_id": name, "status": status, **fields})


DEPLOYMENTS = {"dep": deployment("dep", "running"), "idle": deployment("idle", "deploying")}
GOOD_BODY = {"inputs": {"text": ["a", "bb"]}}

# (path's deployment name, JSON body or raw bytes, token): each answered alike by both paths
REQUESTS = {
    "success": ("dep", GOOD_BODY, GOOD),
    "inputs not the model's": ("dep", {"inputs": {"other": ["a"]}}, GOOD),
    "body not a PredictIn": ("dep", {"inputs": 3}, GOOD),
    "body not JSON": ("dep", b"not json", GOOD),
    "unknown deployment": ("nope", GOOD_BODY, GOOD),
    "deployment not running": ("idle", GOOD_BODY, GOOD),
    "name that is no name": ("b@d", GOOD_BODY, GOOD),
    "no token": ("dep", GOOD_BODY, None),
    "unknown token": ("dep", GOOD_BODY, "wrong"),
}
# the requests the lean path answers itself (the others it hands to the route)
LEAN_ANSWERS = {"success", "inputs not the model's", "unknown deployment", "deployment not running"}


def gateway(tmp_path, monkeypatch: pytest.MonkeyPatch, lean: bool) -> FastAPI:
    """The gateway's app, its store's reads in memory; without the lean layer when not `lean`."""
    return memory_gateway(
        tmp_path,
        monkeypatch,
        users={ANN["token_hash"]: ANN},
        deployments=DEPLOYMENTS,
        model=MODEL,
        version=VERSION,
        lean=lean,
    )


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's reply to a predict request: each text's length."""

    async def call(broker, subject, command, **kwargs) -> object:
        return {"outputs": {"n": [len(text) for text in command.inputs["text"]]}}

    monkeypatch.setattr(online, "call", call)


@pytest.fixture
def lean_answered(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The statuses the lean path sent itself."""
    statuses: list[int] = []
    answer = predict_asgi._answer

    async def counted(send, status, body, headers=None) -> None:
        statuses.append(status)
        await answer(send, status, body, headers)

    monkeypatch.setattr(predict_asgi, "_answer", counted)
    return statuses


def answer(app: FastAPI, name: str, body: dict | bytes, token: str | None) -> tuple[int, object, str]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    content = body if isinstance(body, bytes) else None
    response = TestClient(app).post(
        f"/api/v1/deployments/{name}/predict",
        headers=headers,
        content=content,
        json=None if content is not None else body,
    )
    return response.status_code, response.json(), response.headers["content-type"]


@pytest.mark.parametrize("case", REQUESTS)
def test_the_lean_path_and_the_route_answer_alike(tmp_path, monkeypatch, worker, lean_answered, case):
    name, body, token = REQUESTS[case]
    through_route = answer(gateway(tmp_path / "route", monkeypatch, lean=False), name, body, token)
    assert lean_answered == []  # the route alone answered
    through_lean = answer(gateway(tmp_path / "lean", monkeypatch, lean=True), name, body, token)
    assert through_lean == through_route
    assert bool(lean_answered) == (case in LEAN_ANSWERS)  # and which path answered in the whole app


def test_the_cases_cover_each_kind_of_answer(tmp_path, monkeypatch, worker):
    app = gateway(tmp_path, monkeypatch, lean=True)
    statuses = {case: answer(app, *REQUESTS[case])[0] for case in REQUESTS}
    assert statuses == {
        "success": 200,
        "inputs not the model's": 422,
        "body not a PredictIn": 422,
        "body not JSON": 422,
        "unknown deployment": 404,
        "deployment not running": 409,
        "name that is no name": 422,
        "no token": 401,
        "unknown token": 401,
    }
