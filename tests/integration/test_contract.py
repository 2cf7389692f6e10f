"""The HTTP contract as generated clients see it: Schemathesis fuzzes every operation of the served
openapi.json (fixed seed, bounded examples, stateful phase on; as the admin and as an ordinary
user) and finds no failure; and a Python client generated from that document at test time drives
the seed's whole path: create, upload, deploy, dataset, samples, job, progress, failures.

Settings for Schemathesis are in tests/integration/schemathesis.toml. The token-rotation route is
left out of fuzzing (it would rotate the fuzzer's own token); test_authorization checks it."""

import importlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SCHEMA_TEXT_TO_CLASS, make_zip, unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
FAILING_MODEL = """
class Model:
    def __init__(self, model_dir):
        pass

    def predict(self, batch):
        if "boom" in batch["text"]:
            raise ValueError("boom is not a word")
        return {"label": [{"label": t.upper(), "confidence": 1.0} for t in batch["text"]]}
"""


def fuzz(stack, token: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MODELHUB_BASE_URL": f"http://127.0.0.1:{stack.port}", "MODELHUB_API_TOKEN": token}
    return subprocess.run(
        [
            str(BIN / "st"),
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "run",
            f"http://127.0.0.1:{stack.port}/api/v1/openapi.json",
            "--exclude-path",
            "/api/v1/users/me/token",
            "--report-dir",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=800,
    )


def test_schemathesis_finds_no_failure_as_the_admin(stack, tmp_path):
    run = fuzz(stack, stack.token, tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "generated" in run.stdout  # it really ran cases


def test_schemathesis_finds_no_failure_as_an_ordinary_user(stack, tmp_path):
    token = stack.client.post("/users", json={"username": unique("fuzzer")}).json()["token"]
    run = fuzz(stack, token, tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


@pytest.fixture(scope="module")
def generated(stack, tmp_path_factory):
    """A client package generated from the served openapi.json, imported as `modelhub_client`."""
    out = tmp_path_factory.mktemp("client")
    spec = out / "openapi.json"
    spec.write_text(json.dumps(stack.client.get("/openapi.json").json()))
    config = out / "config.yaml"
    # binary and line-oriented answers are read as bytes / text by the generated client
    config.write_text(
        "post_hooks: []\nproject_name_override: modelhub-client\npackage_name_override: modelhub_client\n"
        "content_type_overrides:\n  application/zip: application/octet-stream\n"
        "  image/jpeg: application/octet-stream\n  text/csv: text/plain\n"
        "  application/x-ndjson: text/plain\n"
    )
    done = subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            str(spec),
            "--output-path",
            str(out / "pkg" / "modelhub_client"),
            "--meta",
            "none",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout  # every operation made it into the client
    sys.path.insert(0, str(out / "pkg"))
    try:
        yield importlib.import_module("modelhub_client")
    finally:
        sys.path.remove(str(out / "pkg"))


def settled(get, done):
    """A poll for conftest.wait_for: the value once `done` holds for it, else None."""
    return lambda: value if done(value := get()) else None


def test_a_generated_client_drives_the_seed_path(generated, stack, tmp_path):
    models = importlib.import_module("modelhub_client.models")
    types = importlib.import_module("modelhub_client.types")
    for group in ("models", "deployments", "datasets", "jobs"):
        importlib.import_module(f"modelhub_client.api.{group}")
    client = generated.AuthenticatedClient(base_url=f"http://127.0.0.1:{stack.port}", token=stack.token)
    op = lambda group, name: importlib.import_module(f"modelhub_client.api.{group}.{name}")  # noqa: E731
    model, deployment, dataset = unique("gen-model"), unique("gen-dep"), unique("gen-ds")

    created = op("models", "models_create").sync(client=client, body=models.ModelCreate.from_dict({"name": model}))
    assert isinstance(created, models.ModelPublic) and created.name == model

    package = make_zip(tmp_path / "m.zip", {"model.py": FAILING_MODEL}).read_bytes()
    body = models.BodyModelsUploadVersion(
        file=types.File(payload=io.BytesIO(package), file_name="m.zip", mime_type="application/zip"),
        schema=json.dumps(SCHEMA_TEXT_TO_CLASS),
    )
    version = op("models", "models_upload_version").sync(model, client=client, body=body)
    assert isinstance(version, models.VersionPublic) and version.version == 1

    requested = op("deployments", "deployments_create").sync(
        model, client=client, body=models.DeploymentCreate.from_dict({"name": deployment, "mini_batch": 2})
    )
    assert isinstance(requested, models.DeploymentPublic), requested
    running = wait_for(
        settled(
            lambda: op("deployments", "deployments_get").sync(deployment, client=client),
            lambda d: d.status in ("running", "failed"),
        ),
        240,
        "the deployment to settle",
    )
    assert running.status == "running", running

    assert isinstance(
        op("datasets", "datasets_create").sync(client=client, body=models.DatasetCreate.from_dict({"name": dataset})),
        models.DatasetPublic,
    )
    texts = ["cat", "dog", "boom", "eel"]
    added = op("datasets", "datasets_add_samples").sync(
        dataset,
        client=client,
        body=models.SamplesIn.from_dict(
            {"samples": [{"filepath": f"/data/{t}.txt", "fields": {"text": t}} for t in texts]}
        ),
    )
    assert added.added == 4

    job = op("jobs", "jobs_submit").sync(
        dataset,
        client=client,
        body=models.JobCreate.from_dict({"deployment": deployment, "outputs": {"label": "label"}}),
    )
    assert isinstance(job, models.JobPublic), job
    ended = wait_for(
        settled(
            lambda: op("jobs", "jobs_get").sync(job.id, client=client),
            lambda j: j.status in ("completed", "failed", "cancelled"),
        ),
        240,
        "the job to end",
    )
    failures = op("jobs", "jobs_failures").sync(job.id, client=client)
    assert (ended.total, ended.succeeded, ended.failed) == (4, 3, 1), [f.error for f in failures.items]
    assert ended.progress == 1.0
    assert [f.error for f in failures.items] and "boom is not a word" in failures.items[0].error
    page = op("datasets", "datasets_list_samples").sync(dataset, client=client, limit=10)
    labels = {s.filepath: s.fields.additional_properties.get("label") for s in page.items}
    assert labels["/data/cat.txt"] == {"label": "CAT", "confidence": 1.0}

    missing = op("models", "models_get").sync_detailed(unique("nope"), client=client)
    assert missing.status_code == 404 and isinstance(missing.parsed, models.ErrorOut)
    filters = models.DatasetsListSamplesFilters(field="a.b", label="x")  # the query's `field=a.b&label=x`
    bad = op("datasets", "datasets_list_samples").sync_detailed(dataset, client=client, filters=filters)
    assert bad.status_code == 422 and isinstance(bad.parsed, models.ValidationErrorOut)
    # the group's properties went out as the parameters they are: the 422 is the field's pattern
    assert bad.parsed.detail.startswith("query.field:") and "filters" not in bad.parsed.detail, bad.parsed.detail
