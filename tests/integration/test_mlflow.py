"""MLflow models as saved, on the real stack (API.md section 3, "MLflow models"): the example's
scikit-learn model, saved by the real `mlflow` package, is uploaded without a schema, deployed on
the hub's own environment (no custom env), called online and run over a dataset; a model whose
flavor the hub cannot serve is refused at deploy with what to do."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, deploy, make_zip, run_job, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SPECIES = {"setosa", "versicolor", "virginica"}
ROWS = {  # two rows of iris, one plainly setosa and one plainly virginica
    "sepal_length": [5.1, 6.7],
    "sepal_width": [3.5, 3.0],
    "petal_length": [1.4, 5.2],
    "petal_width": [0.2, 2.3],
}
TICK = "tick custom env to build the model's own environment from its requirements.txt"


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    """The example's package and samples, built as its README says (real mlflow, real sklearn)."""
    out = tmp_path_factory.mktemp("mlflow-example")
    subprocess.run(
        [sys.executable, str(ROOT / "examples/mlflow-sklearn/build.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def upload(client, model: str, package: Path, **form: str):
    with package.open("rb") as fh:
        return client.post(
            f"/models/{model}/versions", files={"file": (package.name, fh, "application/zip")}, data=form
        )


def test_an_mlflow_model_goes_without_schema_or_model_py_from_upload_to_a_dataset_job(stack, example):
    client = stack.client
    model, name, dataset = unique("iris"), unique("iris-dep"), unique("iris-rows")
    package = example / "iris-mlflow.zip"
    assert client.post("/models", json={"name": model}).status_code == 201

    wrong = {
        "inputs": {"type": "object", "properties": {"sepal_length": {"type": "number"}, "petals": {"type": "number"}}},
        "outputs": {"type": "object", "properties": {"species": {"type": "text"}}},
    }
    refused = upload(client, model, package, schema=json.dumps(wrong))
    assert refused.status_code == 400, refused.text
    detail = refused.json()["detail"]
    assert detail.startswith("the schema does not match the MLflow model's signature")
    assert "'petal_length', 'petal_width', 'sepal_width' of the signature are missing" in detail
    assert "'petals' are not in the signature" in detail and "'species' are not in the signature" in detail
    assert client.get(f"/models/{model}").json()["versions"] == []  # nothing stored

    version = upload(client, model, package, output_types="predictions=text")
    assert version.status_code == 201, version.text
    assert version.json()["format"] == "mlflow"
    assert version.json()["schema"] == {
        "inputs": {"type": "object", "properties": {column: {"type": "number"} for column in ROWS}},
        "outputs": {"type": "object", "properties": {"predictions": {"type": "text"}}},
    }

    running = deploy(client, model, name, mini_batch=8)  # no custom env: the hub's mlflow-skinny and sklearn
    assert running["status"] == "running", running
    answer = client.post(f"/deployments/{name}/predict", json={"inputs": ROWS})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"outputs": {"predictions": ["setosa", "virginica"]}}

    samples = json.loads((example / "samples.json").read_text())["samples"]
    assert client.post("/datasets", json={"name": dataset}).status_code == 201
    assert client.post(f"/datasets/{dataset}/samples", json={"samples": samples}).status_code == 201
    job = run_job(client, dataset, name, {"predictions": "predicted_species"})
    assert (job["status"], job["succeeded"], job["failed"]) == ("completed", len(samples), 0), job
    rows = client.get(f"/datasets/{dataset}/samples", params={"limit": 100}).json()["items"]
    predicted = [row["fields"]["predicted_species"] for row in rows]
    assert set(predicted) <= SPECIES
    right = sum(row["fields"]["predicted_species"] == row["fields"]["species"] for row in rows)
    assert right >= 0.8 * len(rows), f"{right} of {len(rows)} right"
    assert client.delete(f"/deployments/{name}").status_code == 202


MLMODEL_PYTORCH = """\
flavors:
  python_function:
    data: data
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.pytorch
    pickle_module_name: mlflow.pytorch.pickle_module
    python_version: 3.11.7
  pytorch:
    code: null
    model_data: data
    pytorch_version: 2.9.0
mlflow_version: 3.18.0
signature:
  inputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3]}}]'
"""


def test_an_mlflow_flavor_the_hub_cannot_serve_is_refused_at_deploy_saying_to_tick_custom_env(stack, tmp_path):
    client = stack.client
    model, name = unique("torch"), unique("torch-dep")
    # The MLmodel as mlflow.pytorch.save_model writes it: the deployer reads only this file, so
    # the weights need not be real (nothing of the package runs before the refusal).
    package = make_zip(
        tmp_path / "torch.zip",
        {
            "torch_model/MLmodel": MLMODEL_PYTORCH,
            "torch_model/data/model.pth": b"\x80\x04not a real pickle",
            "torch_model/requirements.txt": "mlflow==3.18.0\ntorch==2.9.0\n",
        },
    )
    schema = {
        "inputs": {"type": "object", "properties": {"features": {"type": "json"}}},
        "outputs": {"type": "object", "properties": {"predictions": {"type": "json"}}},
    }
    assert client.post("/models", json={"name": model}).status_code == 201
    no_schema = upload(client, model, package)
    assert no_schema.status_code == 400 and "inputs have no column names" in no_schema.json()["detail"]
    assert upload(client, model, package, schema=json.dumps(schema)).status_code == 201

    failed = deploy(client, model, name, timeout=120)
    assert failed["status"] == "failed", failed
    assert failed["error"] == f"this MLflow model's flavor pytorch needs packages the hub does not provide; {TICK}"
