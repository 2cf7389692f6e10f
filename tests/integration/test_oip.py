"""The Open Inference Protocol v2 on the real stack, driven by the real client: tritonclient's
HTTP clients (binary tensors, as they send by default, and JSON tensors) against a deployment of
the hub, and plain httpx for the refusals; nothing mocked. The answers are the model's, the same
as `POST /deployments/{name}/predict` gives for the same samples."""

import asyncio
import json
from collections.abc import Iterator, Sequence

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
import tritonclient.http.aio as triton_aio
from conftest import create_model, deploy, make_zip, unique
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.timeout(600)

MODEL = """
class Model:
    def __init__(self, model_dir):
        pass

    def predict(self, batch):
        texts, numbers = batch["text"], batch["n"]
        return {
            "label": [{"label": t.upper(), "confidence": 0.5} for t in texts],
            "size": [len(t) + n for t, n in zip(texts, numbers)],
            "echo": [t[::-1] for t in texts],
            "extra": [{"n": n, "words": t.split()} for t, n in zip(texts, numbers)],
        }
"""
SCHEMA = {
    "inputs": {"type": "object", "properties": {"text": {"type": "text"}, "n": {"type": "number"}}},
    "outputs": {
        "type": "object",
        "properties": {
            "label": {"type": "classification"},
            "size": {"type": "number"},
            "echo": {"type": "text"},
            "extra": {"type": "json"},
        },
    },
}
BROKEN = """
class Model:
    def __init__(self, model_dir):
        raise RuntimeError("this model cannot be built")

    def predict(self, batch):
        return {}
"""


@pytest.fixture(scope="module")
def served(stack, tmp_path_factory) -> Iterator[str]:
    """A running deployment of a text-and-number model (mini_batch 4), named after itself."""
    model, name = unique("oip-model"), unique("oip")
    package = make_zip(tmp_path_factory.mktemp("oip") / "oip.zip", {"model.py": MODEL})
    create_model(stack.client, model, package, SCHEMA)
    assert deploy(stack.client, model, name, mini_batch=4)["status"] == "running"
    yield name
    stack.client.delete(f"/deployments/{name}")


@pytest.fixture
def client(stack):
    with triton.InferenceServerClient(f"127.0.0.1:{stack.port}") as oip:
        yield oip


def auth(stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.token}"}


def inputs(texts: list[str], numbers: Sequence[float], binary: bool, number_type: str = "FP64") -> list:
    text = triton.InferInput("text", [len(texts)], "BYTES")
    text.set_data_from_numpy(np.array(texts, dtype=object), binary_data=binary)
    n = triton.InferInput("n", [len(numbers)], number_type)
    n.set_data_from_numpy(np.array(numbers, dtype=triton_dtype(number_type)), binary_data=binary)
    return [text, n]


def triton_dtype(datatype: str):
    return {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64}[datatype]


def strings(array) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else v for v in array.tolist()]


def test_server_health_and_metadata_need_no_token(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "modelhub" and "binary_tensor_data" in meta["extensions"]


def test_a_deployment_is_a_model_with_its_tensors(stack, client, served):
    assert client.is_model_ready(served, headers=auth(stack))
    assert client.is_model_ready(served, "1", headers=auth(stack))
    assert not client.is_model_ready(served, "2", headers=auth(stack))
    assert not client.is_model_ready(served)  # no token
    meta = client.get_model_metadata(served, headers=auth(stack))
    assert (meta["name"], meta["versions"], meta["platform"]) == (served, ["1"], "modelhub")
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
        ("text", "BYTES", [-1]),
        ("n", "FP64", [-1]),
    ]
    assert {t["name"]: t["datatype"] for t in meta["outputs"]} == {
        "label": "BYTES",
        "size": "FP64",
        "echo": "BYTES",
        "extra": "BYTES",
    }


def test_binary_tensors_as_tritonclient_sends_them_by_default(stack, client, served):
    texts = [f"sample {i} é" for i in range(10)]  # more samples than one mini-batch
    result = client.infer(served, inputs(texts, list(range(10)), binary=True), headers=auth(stack))
    assert result.as_numpy("size").tolist() == [float(len(t) + i) for i, t in enumerate(texts)]
    assert strings(result.as_numpy("echo")) == [t[::-1] for t in texts]
    assert [json.loads(v) for v in result.as_numpy("label").tolist()] == [
        {"label": t.upper(), "confidence": 0.5} for t in texts
    ]
    assert json.loads(result.as_numpy("extra")[0]) == {"n": 0, "words": ["sample", "0", "é"]}
    assert result.get_response()["model_version"] == "1"


def test_json_tensors_requested_outputs_and_the_version_path(stack, client, served):
    wanted = [triton.InferRequestedOutput("echo", binary_data=False), triton.InferRequestedOutput("size")]
    result = client.infer(
        served,
        inputs(["ab", "c"], [1.5, 2.5], binary=False, number_type="FP32"),
        model_version="1",
        outputs=wanted,
        request_id="req-1",
        headers=auth(stack),
    )
    response = result.get_response()
    assert [o["name"] for o in response["outputs"]] == ["echo", "size"]  # only those, in that order
    assert response["outputs"][0]["data"] == ["ba", "c"]  # as JSON, as asked
    assert response["id"] == "req-1"
    assert result.as_numpy("size").tolist() == [3.5, 3.5]
    assert result.as_numpy("label") is None
    with pytest.raises(InferenceServerException) as other_version:
        client.infer(served, inputs(["x"], [1], binary=True), model_version="2", headers=auth(stack))
    assert other_version.value.status() == "404"
    assert "serves version 1" in other_version.value.message()


def test_the_answers_are_online_predicts(stack, client, served):
    texts, numbers = ["one", "two two", "three"], [1, 2, 3]
    predicted = stack.client.post(f"/deployments/{served}/predict", json={"inputs": {"text": texts, "n": numbers}})
    assert predicted.status_code == 200, predicted.text
    result = client.infer(served, inputs(texts, numbers, binary=True, number_type="INT64"), headers=auth(stack))
    outputs = predicted.json()["outputs"]
    assert result.as_numpy("size").tolist() == [float(v) for v in outputs["size"]]
    assert strings(result.as_numpy("echo")) == outputs["echo"]
    assert [json.loads(v) for v in result.as_numpy("label").tolist()] == outputs["label"]
    assert [json.loads(v) for v in result.as_numpy("extra").tolist()] == outputs["extra"]


def test_the_asyncio_client_with_many_requests_at_once(stack, served):
    async def run() -> list:
        async with triton_aio.InferenceServerClient(f"127.0.0.1:{stack.port}") as oip:
            calls = [
                oip.infer(served, inputs([f"r{k}"] * 3, [k, k, k], binary=True), headers=auth(stack)) for k in range(20)
            ]
            return await asyncio.gather(*calls)

    for k, result in enumerate(asyncio.run(run())):  # each request got its own outputs
        assert strings(result.as_numpy("echo")) == [f"r{k}"[::-1]] * 3
        assert result.as_numpy("size").tolist() == [float(len(f"r{k}") + k)] * 3


def test_refusals_in_oips_shape(stack, served):
    url = f"http://127.0.0.1:{stack.port}/v2/models/{served}/infer"
    good = {
        "inputs": [
            {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]},
            {"name": "n", "shape": [1], "datatype": "FP64", "data": [1]},
        ]
    }
    bob = stack.client.post("/users", json={"username": unique("bob")}).json()["token"]
    with httpx.Client(timeout=60) as http:
        assert http.post(url, json=good, headers=auth(stack)).status_code == 200
        no_token = http.post(url, json=good)
        assert (no_token.status_code, no_token.json()) == (401, {"error": "missing bearer token"})
        others = http.post(url, json=good, headers={"Authorization": f"Bearer {bob}"})
        assert (others.status_code, others.json()) == (404, {"error": f"deployment '{served}' not found"})
        assert http.get(url.removesuffix("/infer"), headers={"Authorization": f"Bearer {bob}"}).status_code == 404
        bad = {"inputs": [good["inputs"][0], {**good["inputs"][1], "data": [1, 2]}]}
        shape = http.post(url, json=bad, headers=auth(stack))
        assert (shape.status_code, shape.json()) == (400, {"error": "input 'n' has shape [1] but 2 values"})
        unknown = http.post(
            url, json={"inputs": [*good["inputs"], {**good["inputs"][0], "name": "x"}]}, headers=auth(stack)
        )
        assert unknown.status_code == 400 and "unknown input 'x'" in unknown.json()["error"]
        huge = json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x" * 1_000_001]}]})
        too_large = http.post(url, content=huge, headers={**auth(stack), "Content-Type": "application/json"})
        assert too_large.status_code == 413
        assert too_large.json()["error"].endswith("send fewer samples per request")


def test_a_deployment_that_is_not_running_is_not_ready(stack, client, tmp_path):
    model, name = unique("oip-broken"), unique("oip-broken")
    create_model(stack.client, model, make_zip(tmp_path / "broken.zip", {"model.py": BROKEN}), SCHEMA)
    assert deploy(stack.client, model, name)["status"] == "failed"
    try:
        assert not client.is_model_ready(name, headers=auth(stack))
        with pytest.raises(InferenceServerException) as refused:
            client.infer(name, inputs(["a"], [1], binary=True), headers=auth(stack))
        assert refused.value.status() == "503"
        assert f"deployment '{name}' is failed, not running" in refused.value.message()
        assert client.get_model_metadata(name, headers=auth(stack))["versions"] == ["1"]
    finally:
        stack.client.delete(f"/deployments/{name}")
