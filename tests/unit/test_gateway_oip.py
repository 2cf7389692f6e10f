"""OIP v2 on the gateway, through the whole app `build_app` wires (middlewares, lean path, routes,
error handlers): who may ask what, the answers' shapes and statuses, the bounds online predict
has, and the OpenAPI document. The store's reads and the worker's reply (`online.call`) are faked;
the checks, the codec and the predict use case under them are the real ones.

The lean infer path and the FastAPI route answer alike (as tests/unit/test_gateway_predict_parity.py
checks for predict): the same requests through the whole app and through the app without
`LeanPredict`."""

import json
from datetime import UTC, datetime
from typing import cast

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from memory_gateway import memory_gateway
from tritonclient.http import InferenceServerClient, InferInput, InferRequestedOutput

from modelhub_contracts.documents import Deployment, Model, User, Version
from modelhub_gateway import online
from modelhub_gateway.api import predict_asgi
from modelhub_gateway.app import build_app
from modelhub_gateway.auth import hash_token
from modelhub_gateway.settings import GatewaySettings

ANN_TOKEN, BOB_TOKEN = "ann-token", "bob-token"
NOW = datetime.now(UTC)
USERS = {
    hash_token(ANN_TOKEN): User(
        _id="ann", username="ann", is_admin=False, token_hash=hash_token(ANN_TOKEN), created_at=NOW
    ),
    hash_token(BOB_TOKEN): User(
        _id="bob", username="bob", is_admin=False, token_hash=hash_token(BOB_TOKEN), created_at=NOW
    ),
}
SCHEMA = {
    "inputs": {"type": "object", "properties": {"text": {"type": "text"}, "n": {"type": "number"}}},
    "outputs": {"type": "object", "properties": {"label": {"type": "classification"}, "size": {"type": "number"}}},
}
MODEL = cast(Model, {"_id": "m", "name": "m", "owner": "ann"})  # shared with nobody
VERSION = cast(Version, {"model_id": "m", "version": 3, "schema": SCHEMA})


def deployment(name: str, status: str) -> Deployment:
    fields = {"model": "m", "version": 3, "package_object": f"{name}.zip", "mini_batch": 8, "num_replicas": 1}
    return cast(Deployment, {"_id": name, "status": status, **fields})


DEPLOYMENTS = {"dep": deployment("dep", "running"), "idle": deployment("idle", "deploying")}


def gateway(tmp_path, monkeypatch: pytest.MonkeyPatch, lean: bool = True, **settings) -> FastAPI:
    """The gateway's app, its store's reads in memory; without the lean layer when not `lean`."""
    return memory_gateway(
        tmp_path, monkeypatch, users=USERS, deployments=DEPLOYMENTS, model=MODEL, version=VERSION, lean=lean, **settings
    )


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> list:
    """The worker's reply to a predict request (each text upper-cased, its length plus n); the
    commands it was sent."""
    sent: list = []

    async def call(broker, subject, command, **kwargs) -> object:
        sent.append(command)
        texts, numbers = command.inputs["text"], command.inputs["n"]
        return {
            "outputs": {
                "label": [{"label": t.upper(), "confidence": 1.0} for t in texts],
                "size": [len(t) + n for t, n in zip(texts, numbers, strict=True)],
            }
        }

    monkeypatch.setattr(online, "call", call)
    return sent


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


def triton_body(binary: bool, outputs: list[InferRequestedOutput] | None = None) -> tuple[bytes, dict[str, str]]:
    """A request for two samples as tritonclient writes it, and its headers."""
    text = InferInput("text", [2], "BYTES")
    text.set_data_from_numpy(np.array(["ab", "c"], dtype=object), binary_data=binary)
    n = InferInput("n", [2], "INT32")
    n.set_data_from_numpy(np.array([10, 20], dtype=np.int32), binary_data=binary)
    body, json_size = InferenceServerClient.generate_request_body([text, n], outputs=outputs, request_id="q")
    return body, {} if json_size is None else {"Inference-Header-Content-Length": str(json_size)}


JSON_BODY = json.dumps(
    {
        "inputs": [
            {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["hi"]},
            {"name": "n", "shape": [1], "datatype": "FP64", "data": [0.5]},
        ]
    }
).encode()
BAD_TENSOR = JSON_BODY.replace(b'"shape": [1], "datatype": "FP64"', b'"shape": [1, 1], "datatype": "FP64"')
BINARY_BODY, BINARY_HEADERS = triton_body(True)

# (path, body, extra headers, token): each answered alike by both paths
REQUESTS = {
    "json tensors": ("/v2/models/dep/infer", JSON_BODY, {}, ANN_TOKEN),
    "binary tensors": ("/v2/models/dep/infer", BINARY_BODY, BINARY_HEADERS, ANN_TOKEN),
    "the deployment's version": ("/v2/models/dep/versions/3/infer", JSON_BODY, {}, ANN_TOKEN),
    "another version": ("/v2/models/dep/versions/2/infer", JSON_BODY, {}, ANN_TOKEN),
    "a tensor of the wrong shape": ("/v2/models/dep/infer", BAD_TENSOR, {}, ANN_TOKEN),
    "not an inference request": ("/v2/models/dep/infer", b"\x00\x01", {}, ANN_TOKEN),
    "compressed": ("/v2/models/dep/infer", JSON_BODY, {"Content-Encoding": "gzip"}, ANN_TOKEN),
    "unknown deployment": ("/v2/models/nope/infer", JSON_BODY, {}, ANN_TOKEN),
    "another user's deployment": ("/v2/models/dep/infer", JSON_BODY, {}, BOB_TOKEN),
    "deployment not running": ("/v2/models/idle/infer", JSON_BODY, {}, ANN_TOKEN),
    "name that is no name": ("/v2/models/b@d/infer", JSON_BODY, {}, ANN_TOKEN),
    "no token": ("/v2/models/dep/infer", JSON_BODY, {}, None),
    "unknown token": ("/v2/models/dep/infer", JSON_BODY, {}, "wrong"),
}
STATUSES = {
    "json tensors": 200,
    "binary tensors": 200,
    "the deployment's version": 200,
    "another version": 404,
    "a tensor of the wrong shape": 400,
    "not an inference request": 400,
    "compressed": 400,
    "unknown deployment": 404,
    "another user's deployment": 404,
    "deployment not running": 503,
    "name that is no name": 400,
    "no token": 401,
    "unknown token": 401,
}
# the requests the route answers (the lean path hands them on)
ROUTE_ANSWERS = {"name that is no name", "no token", "unknown token"}


def post(app: FastAPI, path: str, body: bytes, headers: dict[str, str], token: str | None):
    if token is not None:
        headers = {**headers, "Authorization": f"Bearer {token}"}
    return TestClient(app).post(path, content=body, headers=headers)


def seen(response) -> tuple:
    header_length = response.headers.get("inference-header-content-length")
    return response.status_code, response.content, response.headers["content-type"], header_length


@pytest.mark.parametrize("case", REQUESTS)
def test_the_lean_path_and_the_route_answer_alike(tmp_path, monkeypatch, worker, lean_answered, case):
    path, body, headers, token = REQUESTS[case]
    through_route = seen(post(gateway(tmp_path / "route", monkeypatch, lean=False), path, body, headers, token))
    assert lean_answered == []
    through_lean = seen(post(gateway(tmp_path / "lean", monkeypatch), path, body, headers, token))
    assert through_lean == through_route
    assert through_lean[0] == STATUSES[case], through_lean
    assert bool(lean_answered) == (case not in ROUTE_ANSWERS)
    if through_lean[0] != 200:
        assert set(json.loads(through_lean[1])) == {"error"}  # OIP's shape, whichever path answered


def test_binary_tensors_come_back_as_tritonclient_reads_them(tmp_path, monkeypatch, worker):
    body, headers = triton_body(True, [InferRequestedOutput("size"), InferRequestedOutput("label", binary_data=False)])
    response = post(gateway(tmp_path, monkeypatch), "/v2/models/dep/infer", body, headers, ANN_TOKEN)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    result = InferenceServerClient.parse_response_body(
        response.content, header_length=int(response.headers["inference-header-content-length"])
    )
    assert result.as_numpy("size").tolist() == [12.0, 21.0]
    assert [json.loads(t) for t in result.get_output("label")["data"]] == [
        {"label": "AB", "confidence": 1.0},
        {"label": "C", "confidence": 1.0},
    ]
    header = result.get_response()
    assert (header["model_name"], header["model_version"], header["id"]) == ("dep", "3", "q")
    assert [o["name"] for o in header["outputs"]] == ["size", "label"]
    assert worker[0].inputs == {"text": ["ab", "c"], "n": [10, 20]}  # the samples online predict ran


def test_json_tensors_come_back_as_json(tmp_path, monkeypatch, worker):
    response = post(gateway(tmp_path, monkeypatch), "/v2/models/dep/infer", JSON_BODY, {}, ANN_TOKEN)
    assert response.headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in response.headers
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["size"] == {"name": "size", "datatype": "FP64", "shape": [1], "data": [2.5]}
    assert json.loads(outputs["label"]["data"][0]) == {"label": "HI", "confidence": 1.0}


def test_infer_has_online_predicts_bounds(tmp_path, monkeypatch, worker):
    app = gateway(tmp_path, monkeypatch, predict_max_body_bytes=len(JSON_BODY) - 1)
    too_big = post(app, "/v2/models/dep/infer", JSON_BODY, {}, ANN_TOKEN)
    assert too_big.status_code == 413 and "send fewer samples per request" in too_big.json()["error"]
    app = gateway(tmp_path, monkeypatch)
    app.state.online.in_flight.counts["dep"] = 256  # the deployment's max_in_flight, held
    busy = post(app, "/v2/models/dep/infer", JSON_BODY, {}, ANN_TOKEN)
    assert busy.status_code == 429 and busy.headers["retry-after"] == "1" and "max_in_flight" in busy.json()["error"]
    app = gateway(tmp_path, monkeypatch, predict_max_requests=0)
    full = post(app, "/v2/models/dep/infer", JSON_BODY, {}, ANN_TOKEN)
    assert full.status_code == 429 and "predict requests in progress" in full.json()["error"]
    assert worker == []


def test_many_samples_in_one_request_are_bounded_as_predict(tmp_path, monkeypatch, worker):
    texts = ["x"] * 10_001
    body = json.dumps(
        {
            "inputs": [
                {"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts},
                {"name": "n", "shape": [len(texts)], "datatype": "FP64", "data": [1] * len(texts)},
            ]
        }
    ).encode()
    response = post(gateway(tmp_path, monkeypatch), "/v2/models/dep/infer", body, {}, ANN_TOKEN)
    assert response.status_code == 400 and "1 to 10000 values" in response.json()["error"]


def test_infer_leaves_the_read_cache_alone(tmp_path, monkeypatch, worker):
    app = gateway(tmp_path, monkeypatch)
    cleared = []
    monkeypatch.setattr(app.state.store.recent, "forget_all", lambda: cleared.append(1))
    assert post(app, "/v2/models/dep/infer", JSON_BODY, {}, ANN_TOKEN).status_code == 200
    assert cleared == []  # it changes nothing, as predict
    TestClient(app).post("/api/v1/models", json={}, headers={"Authorization": f"Bearer {ANN_TOKEN}"})
    assert cleared  # while a write does clear it


def test_a_body_without_a_token_is_refused_unread_in_oips_shape(tmp_path, monkeypatch):
    app = gateway(tmp_path, monkeypatch)
    response = TestClient(app).post("/v2/models/dep/infer", content=b"x" * 5000)
    assert (response.status_code, response.json()) == (401, {"error": "missing bearer token"})
    assert response.headers["www-authenticate"] == "Bearer"


def test_model_metadata(tmp_path, monkeypatch):
    client = TestClient(gateway(tmp_path, monkeypatch), headers={"Authorization": f"Bearer {ANN_TOKEN}"})
    expected = {
        "name": "dep",
        "versions": ["3"],
        "platform": "modelhub",
        "inputs": [
            {"name": "text", "datatype": "BYTES", "shape": [-1]},
            {"name": "n", "datatype": "FP64", "shape": [-1]},
        ],
        "outputs": [
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "size", "datatype": "FP64", "shape": [-1]},
        ],
    }
    assert client.get("/v2/models/dep").json() == expected
    assert client.get("/v2/models/dep/versions/3").json() == expected
    assert client.get("/v2/models/idle").status_code == 200  # metadata does not need it running
    other = client.get("/v2/models/dep/versions/2")
    assert other.status_code == 404
    assert other.json() == {"error": "deployment 'dep' serves version 3 of model 'm', not version '2'"}
    assert client.get("/v2/models/nope").json() == {"error": "deployment 'nope' not found"}


@pytest.mark.parametrize(
    ("path", "token", "status", "body"),
    [
        ("/v2/models/dep/ready", ANN_TOKEN, 200, {"name": "dep", "ready": True}),
        ("/v2/models/dep/versions/3/ready", ANN_TOKEN, 200, {"name": "dep", "ready": True}),
        ("/v2/models/dep/versions/4/ready", ANN_TOKEN, 404, None),
        ("/v2/models/idle/ready", ANN_TOKEN, 503, {"error": "deployment 'idle' is deploying, not running"}),
        ("/v2/models/dep/ready", BOB_TOKEN, 404, {"error": "deployment 'dep' not found"}),
        ("/v2/models/dep/ready", None, 401, {"error": "missing bearer token"}),
        ("/v2/models/dep", "wrong", 401, {"error": "invalid token"}),
        ("/v2/models/..x/ready", ANN_TOKEN, 200, None),
        ("/v2/models/b@d/ready", ANN_TOKEN, 400, None),
    ],
)
def test_model_readiness_and_who_may_ask(tmp_path, monkeypatch, path, token, status, body):
    DEPLOYMENTS["..x"] = deployment("..x", "running")
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = TestClient(gateway(tmp_path, monkeypatch)).get(path, headers=headers)
    finally:
        del DEPLOYMENTS["..x"]
    assert response.status_code == status, response.text
    if body is not None:
        assert response.json() == body
    if status >= 400:
        assert set(response.json()) == {"error"}


def test_the_servers_routes_need_no_token(tmp_path, monkeypatch):
    app = gateway(tmp_path, monkeypatch)
    client = TestClient(app)
    assert client.get("/v2").json() == {
        "name": "modelhub",
        "version": app.version,
        "extensions": ["binary_tensor_data"],
    }
    assert (client.get("/v2/health/live").status_code, client.get("/v2/health/live").json()) == (200, {"live": True})
    # no NATS, no MongoDB here: not ready, naming what did not answer
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503 and ready.json()["error"].startswith("not ready: ")
    assert "inference-worker" in ready.json()["error"] and "nats" in ready.json()["error"]


def test_unknown_paths_and_methods_answer_in_oips_shape(tmp_path, monkeypatch):
    client = TestClient(gateway(tmp_path, monkeypatch), headers={"Authorization": f"Bearer {ANN_TOKEN}"})
    assert (client.get("/v2/nothing").status_code, client.get("/v2/nothing").json()) == (404, {"error": "Not Found"})
    wrong = client.get("/v2/models/dep/infer")
    assert (wrong.status_code, wrong.json(), wrong.headers["allow"]) == (405, {"error": "Method Not Allowed"}, "POST")
    # the rest of the API keeps its own shape
    assert client.get("/api/v1/nothing").json() == {"detail": "Not Found"}


# ------------------------------------------------------------------------------ OpenAPI


@pytest.fixture(scope="module")
def document(tmp_path_factory) -> dict:
    return build_app(GatewaySettings(data_dir=tmp_path_factory.mktemp("data"), admin_token="x")).openapi()


def test_every_oip_route_is_in_the_openapi_document(document):
    operations = {
        (method, path): op["operationId"] for path, ops in document["paths"].items() for method, op in ops.items()
    }
    assert {k: v for k, v in operations.items() if k[1].startswith("/v2")} == {
        ("get", "/v2"): "oip-server-metadata",
        ("get", "/v2/health/live"): "oip-server-live",
        ("get", "/v2/health/ready"): "oip-server-ready",
        ("get", "/v2/models/{name}"): "oip-model-metadata",
        ("get", "/v2/models/{name}/versions/{version}"): "oip-model-version-metadata",
        ("get", "/v2/models/{name}/ready"): "oip-model-ready",
        ("get", "/v2/models/{name}/versions/{version}/ready"): "oip-model-version-ready",
        ("post", "/v2/models/{name}/infer"): "oip-infer",
        ("post", "/v2/models/{name}/versions/{version}/infer"): "oip-infer-version",
    }


def test_infer_declares_its_json_and_binary_bodies_and_answers(document):
    for path in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"):
        infer = document["paths"][path]["post"]
        body = infer["requestBody"]["content"]
        assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/InferenceRequest"}
        assert body["application/octet-stream"]["schema"]["format"] == "binary"
        [header] = [p for p in infer["parameters"] if p["in"] == "header"]
        assert header["name"] == "Inference-Header-Content-Length" and not header["required"]
        answer = infer["responses"]["200"]
        assert set(answer["content"]) == {"application/json", "application/octet-stream"}
        assert "Inference-Header-Content-Length" in answer["headers"]
        assert set(infer["responses"]) == {"200", "400", "401", "404", "413", "429", "502", "503", "504"}
    assert document["components"]["schemas"]["InferenceRequest"]["required"] == ["inputs"]


def test_oip_errors_are_declared_in_their_shape_and_never_422(document):
    for path, ops in document["paths"].items():
        for op in ops.values():
            if path.startswith("/v2"):
                assert "422" not in op["responses"], path
                for code, answer in op["responses"].items():
                    if code.startswith(("4", "5")):
                        assert answer["content"]["application/json"]["schema"] == {
                            "$ref": "#/components/schemas/OipErrorOut"
                        }, (path, code)
    text = json.dumps(document)
    for ref in set(part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]):
        assert ref in document["components"]["schemas"], ref  # every reference resolves
    assert "HTTPValidationError" not in document["components"]["schemas"]  # FastAPI's, unused
