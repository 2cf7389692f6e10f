"""The seed's whole story through the public HTTP API on the real embedded stack:
create → upload → deploy → run on a dataset → every sample annotated → undeploy."""

import json
import re
from pathlib import Path

import httpx
import pytest
from conftest import (
    SCHEMA_LOCAL_TO_CLASS,
    SCHEMA_TEXT_TO_CLASS,
    add_files,
    all_samples,
    create_model,
    deploy,
    make_zip,
    run_job,
    unique,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def test_digits_classifier_annotates_every_sample(stack, digits):
    client = stack.client
    model, deployment, dataset = unique("digits"), unique("dep"), unique("ds")
    version = create_model(client, model, digits / "digits-classifier.zip", SCHEMA_LOCAL_TO_CLASS)
    assert version["version"] == 1 and len(version["sha256"]) == 64

    dep = deploy(client, model, deployment, mini_batch=8, num_replicas=2)
    assert dep["status"] == "running", dep
    assert dep["ready_replicas"] == 2

    labels = json.loads((digits / "dataset/labels.json").read_text())
    files = sorted((digits / "dataset").glob("*.png"))[:60]
    add_files(client, dataset, files)

    job = run_job(client, dataset, deployment, {"predictions": "prediction"})
    assert job["status"] == "completed", job
    assert (job["total"], job["succeeded"], job["failed"], job["progress"]) == (60, 60, 0, 1.0)

    samples = all_samples(client, dataset)
    assert len(samples) == 60
    correct = 0
    for sample in samples:
        prediction = sample["fields"]["prediction"]
        assert set(prediction) == {"label", "confidence"} and 0 <= prediction["confidence"] <= 1
        correct += prediction["label"] == labels[Path(sample["filepath"]).name]
    assert correct / 60 >= 0.8, f"only {correct}/60 correct"

    listed = client.get(f"/datasets/{dataset}/jobs").json()["items"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert client.get(f"/jobs/{job['id']}/failures").json() == {"items": []}

    # the finished job's event stream ends with the final state
    with client.stream("GET", f"/jobs/{job['id']}/events") as events:
        data = [json.loads(line[5:]) for line in events.iter_lines() if line.startswith("data:")]
    assert data[-1]["status"] == "completed" and data[-1]["progress"] == 1.0

    # online predict on the same deployment
    one = str(files[0])
    predicted = client.post(f"/deployments/{deployment}/predict", json={"inputs": {"image_paths": [one]}})
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["outputs"]["predictions"][0]["label"] == labels[files[0].name]
    wrong = client.post(f"/deployments/{deployment}/predict", json={"inputs": {"images": [one]}})
    assert wrong.status_code == 422 and "image_paths" in wrong.json()["detail"]

    # undeploy
    assert client.delete(f"/deployments/{deployment}").status_code == 202
    stopped = wait_for(
        lambda: client.get(f"/deployments/{deployment}").json()["status"] == "stopped", 120, "the deployment to stop"
    )
    assert stopped
    refused = client.post(f"/deployments/{deployment}/predict", json={"inputs": {"image_paths": [one]}})
    assert refused.status_code == 409
    late = client.post(
        f"/datasets/{dataset}/jobs", json={"deployment": deployment, "outputs": {"predictions": "again"}}
    )
    assert late.status_code == 422 and "not running" in late.json()["detail"]


# The model runs jailed (read-only filesystem): it keeps the sizes of the batches it was poisoned
# in, in its own process, and says them in its error, which the test reads from the job's failures.
POISON_MODEL = """
POISONED_SIZES = []


class Model:
    def __init__(self, model_dir):
        self.model_dir = model_dir

    def predict(self, batch):
        texts = batch["text"]
        if any(t.startswith("poison:") for t in texts):
            POISONED_SIZES.append(len(texts))
            raise ValueError(f"poisoned input in a batch; sizes so far: {POISONED_SIZES}")
        out = []
        for t in texts:
            # a wrongly typed output for one sample: confidence outside [0, 1]
            out.append({"label": t.upper(), "confidence": 7.0 if "badtype" in t else 0.5})
        return {"label": out}
"""

TEXT_SCHEMA = SCHEMA_TEXT_TO_CLASS


def test_poisoned_and_badly_typed_samples_fail_alone(stack, tmp_path):
    client = stack.client
    model, deployment, dataset = unique("poison"), unique("dep"), unique("ds")
    create_model(client, model, make_zip(tmp_path / "poison.zip", {"model.py": POISON_MODEL}), TEXT_SCHEMA)
    # one replica: one model process holds the whole history of poisoned batch sizes
    deployed = deploy(client, model, deployment, mini_batch=64, num_replicas=1)
    assert deployed["status"] == "running", deployed["error"]

    texts = [f"sample-{i}" for i in range(100)]
    poison = texts[7] = "poison:sample-7"
    texts[23] = "badtype-23"
    assert client.post("/datasets", json={"name": dataset}).status_code == 201
    response = client.post(
        f"/datasets/{dataset}/samples",
        json={"samples": [{"filepath": f"/data/{t}.txt", "fields": {"text": t}} for t in texts]},
    )
    assert response.status_code == 201

    job = run_job(client, dataset, deployment, {"label": "label"})
    assert job["status"] == "completed"
    assert (job["total"], job["succeeded"], job["failed"]) == (100, 98, 2)

    by_text = {s["fields"]["text"]: s for s in all_samples(client, dataset)}
    failures = {f["sample_id"]: f["error"] for f in client.get(f"/jobs/{job['id']}/failures").json()["items"]}
    assert set(failures) == {by_text[poison]["id"], by_text["badtype-23"]["id"]}
    reason = failures[by_text[poison]["id"]]
    assert "poisoned input" in reason
    # the reason is the model's error on the lone poisoned sample: every batch it was poisoned in
    said = re.search(r"sizes so far: \[([0-9, ]*)\]", reason)
    assert said, f"the model's error did not reach the failure's reason: {reason!r}"
    sizes = [int(n) for n in said.group(1).split(",")]
    assert sizes[0] == 64, f"the poison's first batch was not the task's 64 samples: {sizes}"
    assert sizes[-1] == 1  # halved down until it was alone, and still failed
    assert "confidence" in failures[by_text["badtype-23"]["id"]]
    for text, sample in by_text.items():
        if text in (poison, "badtype-23"):
            assert "label" not in sample["fields"]
        else:
            assert sample["fields"]["label"] == {"label": text.upper(), "confidence": 0.5}

    # retry re-runs only the two failed samples; they fail again, the rest stay untouched
    retried = client.post(f"/jobs/{job['id']}/retry")
    assert retried.status_code == 202
    again = wait_for(
        lambda: (d := client.get(f"/jobs/{job['id']}").json())["status"] == "completed" and d,
        120,
        "the retry to finish",
    )
    assert (again["succeeded"], again["failed"], again["attempt"]) == (98, 2, 2)
    client.delete(f"/deployments/{deployment}")


def test_job_requests_are_checked_before_anything_runs(stack, tmp_path):
    client = stack.client
    model, deployment, dataset = unique("check"), unique("dep"), unique("ds")
    create_model(client, model, make_zip(tmp_path / "m.zip", {"model.py": POISON_MODEL}), TEXT_SCHEMA)
    assert client.post("/datasets", json={"name": dataset}).status_code == 201
    assert deploy(client, model, deployment)["status"] == "running"

    unknown = client.post(f"/datasets/{dataset}/jobs", json={"deployment": deployment, "outputs": {"nope": "x"}})
    assert unknown.status_code == 422 and "nope" in unknown.json()["detail"]
    bad_field = client.post(f"/datasets/{dataset}/jobs", json={"deployment": deployment, "outputs": {"label": "a.b"}})
    assert bad_field.status_code == 422 and "a.b" in bad_field.json()["detail"]
    missing = client.post(f"/datasets/{dataset}/jobs", json={"deployment": unique("none"), "outputs": {"label": "x"}})
    assert missing.status_code == 404
    assert client.get(f"/datasets/{dataset}/jobs").json()["items"] == []
    client.delete(f"/deployments/{deployment}")


def test_deployment_failures_are_reported_not_hung(stack, tmp_path):
    client = stack.client
    broken = unique("broken")
    create_model(
        client,
        broken,
        make_zip(
            tmp_path / "b.zip",
            {
                "model.py": "class Model:\n    def __init__(self, d):\n        raise RuntimeError('weights missing: w.bin')\n"
                "    def predict(self, b):\n        return {}\n"
            },
        ),
        TEXT_SCHEMA,
    )
    failed = deploy(client, broken, unique("dep"))
    assert failed["status"] == "failed" and "weights missing: w.bin" in failed["error"]

    gpu = deploy(client, broken, unique("gpu"), num_gpus=1, timeout=30)
    assert gpu["status"] == "failed" and "GPU" in gpu["error"]

    four = unique("four")
    create_model(client, four, make_zip(tmp_path / "f.zip", {"model.py": POISON_MODEL}), TEXT_SCHEMA)
    quad = deploy(client, four, unique("dep"), num_replicas=4)
    assert quad["status"] == "running" and quad["ready_replicas"] == 4, quad
    client.delete(f"/deployments/{quad['name']}")
    assert (
        client.post(f"/models/{four}/deployments", json={"name": unique("x"), "model_type": "training"}).status_code
        == 422
    )


def test_anonymous_requests_are_refused(stack):
    anonymous = httpx.Client(base_url=stack.url)
    assert anonymous.get("/health").status_code == 200
    for method, path in [
        ("GET", "/models"),
        ("POST", "/models"),
        ("GET", "/deployments"),
        ("GET", "/datasets"),
        ("GET", "/users/me"),
    ]:
        assert anonymous.request(method, path).status_code == 401, path
    assert stack.user_client("not-a-token").get("/models").status_code == 401
