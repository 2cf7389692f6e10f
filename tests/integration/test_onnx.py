"""ONNX packages without code (API.md §3, "ONNX models") on the real stack: the registry refuses a
bad manifest, a graph that does not fit it and a schema that does not, naming the field, and
stores nothing; a good package deploys and runs as a job, each sample classified as onnxruntime,
run here directly on the same files, classifies it. The model is exported with skl2onnx at test
time; nothing is mocked."""

import json
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from conftest import add_files, all_samples, deploy, run_job, unique, wait_for
from onnx import ModelProto
from PIL import Image
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

LABELS = [f"digit {d}" for d in range(10)]
MANIFEST = {
    "format": "onnx",
    "onnx": {
        "input": "image",
        "output": "probabilities",
        "output_kind": "probabilities",
        "image": {"size": [8, 8], "color": "L", "resample": "box"},
        "labels": LABELS,
    },
}
SCHEMA = {
    "inputs": {"type": "object", "properties": {"image": {"type": "local"}}},
    "outputs": {"type": "object", "properties": {"probabilities": {"type": "classification"}}},
}


@pytest.fixture(scope="module")
def onnx_bytes() -> bytes:
    """A digits classifier on 64 pixels in [0, 1], exported with skl2onnx: input `image` [N, 64],
    outputs `label` and `probabilities` [N, 10] (a tensor, not skl2onnx's default ZipMap)."""
    data, labels = (np.asarray(a) for a in load_digits(return_X_y=True))
    clf = LogisticRegression(max_iter=300).fit(data / 16.0, labels)
    model = convert_sklearn(
        clf,
        initial_types=[("image", FloatTensorType([None, 64]))],
        final_types=[("label", Int64TensorType([None])), ("probabilities", FloatTensorType([None, 10]))],
        options={id(clf): {"zipmap": False}},
    )
    assert isinstance(model, ModelProto)
    return model.SerializeToString()


def package(path: Path, model: bytes, manifest: dict) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.onnx", model)
        zf.writestr("manifest.json", json.dumps(manifest))
    return path


def upload(client, name: str, path: Path, schema: dict):
    with path.open("rb") as fh:
        return client.post(
            f"/models/{name}/versions",
            files={"file": (path.name, fh, "application/zip")},
            data={"schema": json.dumps(schema)},
        )


def with_onnx(**fields) -> dict:
    return {"format": "onnx", "onnx": {**MANIFEST["onnx"], **fields}}


def test_a_package_that_does_not_fit_is_refused_naming_the_field(stack, tmp_path, onnx_bytes):
    client = stack.client
    name = unique("onnx-bad")
    assert client.post("/models", json={"name": name}).status_code == 201
    cases = [
        (with_onnx(image={"size": [8], "color": "L"}), SCHEMA, "manifest.json field onnx.image.size"),
        (with_onnx(output_kind="softmax"), SCHEMA, "manifest.json field onnx.output_kind"),
        (
            with_onnx(input="pixels"),  # manifest and schema agree, the graph's input is another
            {**SCHEMA, "inputs": {"type": "object", "properties": {"pixels": {"type": "local"}}}},
            "manifest.json field onnx.input: the graph has no input 'pixels' (its inputs: ['image'])",
        ),
        (with_onnx(image={"size": [8, 8], "color": "RGB"}), SCHEMA, "onnx.input: 'image' has shape [?, 64]"),
        (with_onnx(labels=["a", "b"]), SCHEMA, "onnx.labels: 2 labels, but 'probabilities' scores 10 classes"),
        (
            MANIFEST,
            {**SCHEMA, "inputs": {"type": "object", "properties": {"image_paths": {"type": "local"}}}},
            "onnx.input ('image')",
        ),
    ]
    for i, (manifest, schema, named) in enumerate(cases):
        response = upload(client, name, package(tmp_path / f"bad-{i}.zip", onnx_bytes, manifest), schema)
        assert response.status_code == 400, (named, response.text)
        assert named in response.json()["detail"], (named, response.json())
    not_onnx = package(tmp_path / "garbage.zip", b"\x0f\xff not a protobuf", MANIFEST)
    garbage = upload(client, name, not_onnx, SCHEMA)
    assert garbage.status_code == 400 and "'model.onnx' is not an ONNX model" in garbage.json()["detail"]
    assert client.get(f"/models/{name}").json()["versions"] == []  # nothing stored


def reference(paths: list[Path], model: bytes) -> list[tuple[str, float]]:
    """onnxruntime run here, with the manifest's preparation written out again: grayscale, 8x8 by
    area averaging, pixel / 255, one flat row per file."""
    rows = []
    for path in paths:
        with Image.open(path) as img:
            rows.append(np.asarray(img.convert("L").resize((8, 8), Image.Resampling.BOX), dtype=np.float32) / 255)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    probs = np.asarray(session.run(["probabilities"], {"image": np.stack(rows).reshape(len(rows), 64)})[0])
    return [(LABELS[int(p.argmax())], float(p.max())) for p in probs]


def test_an_onnx_classifier_runs_as_a_job_as_onnxruntime_classifies(stack, digits, tmp_path, onnx_bytes):
    client = stack.client
    model, deployment, dataset = unique("onnx"), unique("onnx-dep"), unique("onnx-ds")
    assert client.post("/models", json={"name": model}).status_code == 201
    response = upload(client, model, package(tmp_path / "digits.zip", onnx_bytes, MANIFEST), SCHEMA)
    assert response.status_code == 201, response.text
    assert response.json()["format"] == "onnx"
    assert client.get(f"/models/{model}/versions/1").json()["format"] == "onnx"

    dep = deploy(client, model, deployment, mini_batch=8)
    assert dep["status"] == "running", dep
    files = sorted((digits / "dataset").glob("*.png"))[:40]
    add_files(client, dataset, files)
    job = run_job(client, dataset, deployment, {"probabilities": "digit"})
    assert job["status"] == "completed" and (job["succeeded"], job["failed"]) == (40, 0), job

    expected = dict(zip(map(str, files), reference(files, onnx_bytes), strict=True))
    truth = json.loads((digits / "dataset/labels.json").read_text())
    correct = 0
    for sample in all_samples(client, dataset):
        got = sample["fields"]["digit"]
        label, confidence = expected[sample["filepath"]]
        assert got["label"] == label and 0 <= got["confidence"] <= 1
        assert got["confidence"] == pytest.approx(confidence, abs=1e-5)
        correct += got["label"] == f"digit {truth[Path(sample['filepath']).name]}"
    assert correct >= 32, f"only {correct}/40 right: the preparation does not match the training"

    online = client.post(f"/deployments/{deployment}/predict", json={"inputs": {"image": [str(files[0])]}})
    assert online.status_code == 200, online.text
    assert online.json()["outputs"]["probabilities"][0]["label"] == expected[str(files[0])][0]

    assert client.delete(f"/deployments/{deployment}").status_code == 202
    wait_for(lambda: client.get(f"/deployments/{deployment}").json()["status"] == "stopped", 120, "the stop")
