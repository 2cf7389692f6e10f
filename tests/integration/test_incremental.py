"""Incremental runs on the real stack (`POST /datasets/{name}/jobs` with `only`): `missing` runs just
the samples lacking the output field (a user's own value counts as there), `stale` those and the
ones another version wrote, each job's `total` is what it runs, and a run with nothing to do is
answered completed with total 0. Nothing is mocked."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from conftest import (
    SCHEMA_TEXT_TO_CLASS,
    add_text_samples,
    all_samples,
    create_model,
    deploy,
    make_zip,
    unique,
    wait_for,
)
from pymongo import MongoClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

# Each version's outputs say which version wrote them.
MODEL = """
class Model:
    def __init__(self, model_dir):
        pass

    def predict(self, batch):
        return {"label": [{"label": "v%d:" + t, "confidence": 0.5} for t in batch["text"]]}
"""
TERMINAL = ("completed", "failed", "cancelled")


@pytest.fixture(scope="module")
def versions(stack, tmp_path_factory) -> Iterator[dict[int, str]]:
    """A model with two versions, each deployed: {version: deployment name}."""
    client, tmp = stack.client, tmp_path_factory.mktemp("incremental")
    name = unique("incr")
    create_model(client, name, make_zip(tmp / "v1.zip", {"model.py": MODEL % 1}), SCHEMA_TEXT_TO_CLASS)
    with make_zip(tmp / "v2.zip", {"model.py": MODEL % 2}).open("rb") as fh:
        answer = client.post(
            f"/models/{name}/versions",
            files={"file": ("v2.zip", fh, "application/zip")},
            data={"schema": json.dumps(SCHEMA_TEXT_TO_CLASS)},
        )
    assert answer.status_code == 201, answer.text
    deployed = {v: deploy(client, name, unique(f"incr-v{v}"), version=v, mini_batch=4) for v in (1, 2)}
    assert all(d["status"] == "running" for d in deployed.values()), deployed
    yield {v: d["name"] for v, d in deployed.items()}
    for d in deployed.values():
        client.delete(f"/deployments/{d['name']}")


def submit(client: httpx.Client, dataset: str, deployment: str, only: str) -> dict:
    answer = client.post(
        f"/datasets/{dataset}/jobs", json={"deployment": deployment, "outputs": {"label": "pred"}, "only": only}
    )
    assert answer.status_code == 202, answer.text
    return answer.json()


def ended(client: httpx.Client, job: dict) -> dict:
    def done():
        doc = client.get(f"/jobs/{job['id']}").json()
        return doc if doc["status"] in TERMINAL else None

    return wait_for(done, 240, f"job {job['id']} to end")


def writers(client: httpx.Client, dataset: str) -> dict[str, tuple]:
    """Each sample's text -> (its pred label, the job that wrote it, that job's model version)."""
    found = {}
    for s in all_samples(client, dataset):
        pred, lineage = s["fields"].get("pred"), s["lineage"].get("pred") or {}
        label = pred["label"] if isinstance(pred, dict) else pred
        found[s["fields"]["text"]] = (label, lineage.get("job_id"), lineage.get("version"))
    return found


def test_missing_runs_only_the_samples_added_since_and_counts_just_them(stack, versions):
    client, dataset = stack.client, unique("incr-missing")
    add_text_samples(client, dataset, [f"old{i}" for i in range(6)])
    first = ended(client, submit(client, dataset, versions[1], "all"))
    assert (first["status"], first["total"], first["succeeded"]) == ("completed", 6, 6)

    answer = client.post(
        f"/datasets/{dataset}/samples",
        json={
            "samples": [
                *({"filepath": f"/data/new{i}.txt", "fields": {"text": f"new{i}"}} for i in range(3)),
                {"filepath": "/data/given.txt", "fields": {"text": "given", "pred": "a user's own"}},
            ]
        },
    )
    assert answer.status_code == 201, answer.text
    job = submit(client, dataset, versions[1], "missing")
    assert (job["only"], job["total"]) == ("missing", 3)  # the user's own value is there: not missing
    job = ended(client, job)
    assert (job["status"], job["total"], job["succeeded"], job["failed"]) == ("completed", 3, 3, 0)

    got = writers(client, dataset)
    assert {t: got[t] for t in got if t.startswith("new")} == {
        f"new{i}": (f"v1:new{i}", job["id"], 1) for i in range(3)
    }
    assert {t: got[t] for t in got if t.startswith("old")} == {
        f"old{i}": (f"v1:old{i}", first["id"], 1) for i in range(6)
    }
    assert got["given"] == ("a user's own", None, None)


def test_stale_reruns_what_another_version_wrote_and_then_finds_nothing_to_do(stack, versions, tmp_path):
    client, dataset = stack.client, unique("incr-stale")
    add_text_samples(client, dataset, [f"a{i}" for i in range(6)])
    ended(client, submit(client, dataset, versions[1], "all"))  # a0..a5 by version 1
    add_text_samples(client, dataset, ["b0", "b1"], create=False)
    by_v2 = ended(client, submit(client, dataset, versions[2], "missing"))  # b0, b1 by version 2
    assert (by_v2["total"], by_v2["succeeded"]) == (2, 2)
    add_text_samples(client, dataset, ["c0"], create=False)

    job = submit(client, dataset, versions[2], "stale")
    assert job["total"] == 7  # a0..a5 (version 1) and c0 (missing); not b0, b1
    job = ended(client, job)
    assert (job["status"], job["succeeded"], job["failed"]) == ("completed", 7, 0)
    got = writers(client, dataset)
    assert {t for t, (_, writer, _) in got.items() if writer == job["id"]} == {*(f"a{i}" for i in range(6)), "c0"}
    assert {t: got[t] for t in ("b0", "b1")} == {t: (f"v2:{t}", by_v2["id"], 2) for t in ("b0", "b1")}
    assert all(label == f"v2:{t}" and version == 2 for t, (label, _, version) in got.items())

    # nothing stale, nothing missing: answered completed at once, with nothing to count
    for deployment, only in ((versions[2], "stale"), (versions[1], "missing")):
        idle = submit(client, dataset, deployment, only)
        assert (idle["status"], idle["total"], idle["succeeded"], idle["progress"]) == ("completed", 0, 0, 1.0)

    env = {**os.environ, "MODELHUB_URL": f"http://127.0.0.1:{stack.port}", "MODELHUB_TOKEN": stack.token}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "modelhub", "run", dataset, "--deployment", versions[2], "--output", "label=pred"]
        + ["--only", "stale", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert (json.loads(run.stdout)["total"], json.loads(run.stdout)["only"]) == (0, "stale")


def test_a_field_a_job_writes_gets_the_index_that_answers_incremental_runs(stack, versions):
    """Once a job has written its field on every sample, the question "which samples miss it" is
    answered on the field's writer index with nothing examined, where the dataset's own index would
    read every sample. (On a dataset of one sample both plans tie and the planner may pick either:
    the test needs enough samples for the choice to mean something.)"""
    client, dataset = stack.client, unique("incr-index")
    field = unique("f").replace("-", "_")
    add_text_samples(client, dataset, [f"x{i}" for i in range(300)])
    answer = client.post(f"/datasets/{dataset}/jobs", json={"deployment": versions[1], "outputs": {"label": field}})
    assert answer.status_code == 202, answer.text
    assert ended(client, answer.json())["succeeded"] == 300
    with MongoClient(stack.mongo_url) as mongo:
        samples = mongo["modelhub"]["samples"]
        index = wait_for(lambda: samples.index_information().get(f"writer:{field}"), 60, f"the writer index of {field}")
        assert [k for k, _ in index["key"]] == ["dataset", f"lineage.{field}.model", f"lineage.{field}.version", "_id"]
        query = {"dataset": dataset, "_id": {"$lte": "f" * 24}, f"lineage.{field}.model": None}
        explained = samples.find(query, {"_id": 1}).explain()
        plan, stats = explained["queryPlanner"]["winningPlan"], explained["executionStats"]
        assert f"writer:{field}" in json.dumps(plan)  # the missing samples are found on it, not by a scan
        assert (stats["nReturned"], stats["totalDocsExamined"]) == (0, 0), stats
