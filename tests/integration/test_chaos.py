"""Crashes mid-job: whatever process dies (`kill -9`), the supervisor restarts it and the job
still ends `completed` with every sample annotated exactly once in its counts. A model's own
process that dies is another matter: that is the model's verdict on the samples it died on, which
fail with the reason, while the rest of the job and the deployment go on.

These tests kill servers, so they run on a stack of their own (module scope, its own data dir):
the session stack the other integration tests share is never touched.
"""

import os
import signal

import pytest
from conftest import (
    SCHEMA_TEXT_TO_CLASS,
    add_text_samples,
    all_samples,
    create_model,
    deploy,
    get_json,
    make_zip,
    part_pid,
    slow_model,
    start_stack,
    stop_stack,
    unique,
    wait_for,
)
from pymongo import AsyncMongoClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

TOTAL = 300
OUTPUT = "label"
TEXT_SCHEMA = SCHEMA_TEXT_TO_CLASS

# Slow enough that a 300-sample job (75 batches of 4) is still running when the kill lands: one
# batch at a time per replica (a lock around the sleep), so the job takes ~75 x 0.05 s however
# many calls are in flight. Without the lock the replica slept in as many threads as calls came
# (the worker reaches it directly, past Serve's max_ongoing_requests), and a job could finish
# between two polls of wait_mid_run ("the job ended before the kill").
SLOW_MODEL = slow_model(0.05, one_batch_at_a_time=True)

# Its process dies (`os._exit(1)`) whenever a mini-batch holds a "crash" sample. The model runs in
# a jailed process of its own, apart from its Serve replica: a death fails the calls in flight with
# the reason, a verdict on their mini-batches (the worker halves them until the culprit is alone),
# and the replica starts the model again for the next call.
CRASHING_MODEL = """
import os
import time

class Model:
    def __init__(self, model_dir):
        pass

    def predict(self, batch):
        if any(text.startswith("crash") for text in batch["text"]):
            os._exit(1)
        time.sleep(0.05)
        return {"label": [{"label": t, "confidence": 0.5} for t in batch["text"]]}
"""


@pytest.fixture(scope="module")
def chaos_stack(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("chaos-stack")
    try:
        yield start_stack(data_dir)
    finally:
        stop_stack(data_dir)


@pytest.fixture(scope="module")
def slow_deployment(chaos_stack, tmp_path_factory) -> str:
    client, model, name = chaos_stack.client, unique("slow"), unique("slow-dep")
    package = make_zip(tmp_path_factory.mktemp("slow") / "slow.zip", {"model.py": SLOW_MODEL})
    create_model(client, model, package, TEXT_SCHEMA)
    assert deploy(client, model, name, mini_batch=4)["status"] == "running"
    return name


def start_job(stack, deployment: str, texts: list[str]) -> tuple[str, str]:
    client, dataset = stack.client, unique("ds")
    add_text_samples(client, dataset, texts)
    response = client.post(f"/datasets/{dataset}/jobs", json={"deployment": deployment, "outputs": {"label": OUTPUT}})
    assert response.status_code == 202, response.text
    return dataset, response.json()["id"]


def wait_mid_run(stack, job_id: str) -> dict:
    """Wait until some samples are done but not all: a kill now lands in the middle of the job."""

    def mid_run():
        job = get_json(stack.client, f"/jobs/{job_id}")
        return job if job and job["succeeded"] >= 8 else None

    job = wait_for(mid_run, 180, f"job {job_id} to get going", interval=0.1)
    assert job["succeeded"] < job["total"], f"the job ended before the kill: {job}"
    return job


def kill_and_wait_restart(stack, part: str) -> None:
    pid = part_pid(stack.data_dir, part)
    assert pid, f"no running pid for {part}"
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: (new := part_pid(stack.data_dir, part)) and new != pid,
        60,
        f"the supervisor to restart {part}",
        interval=0.5,
    )


def assert_completed_exactly_once(stack, dataset: str, job_id: str, total: int) -> None:
    def ended():
        job = get_json(stack.client, f"/jobs/{job_id}")
        return job if job and job["status"] in ("completed", "failed", "cancelled") else None

    job = wait_for(ended, 300, f"job {job_id} to end", interval=0.5)
    failures = stack.client.get(f"/jobs/{job_id}/failures").json()["items"]
    assert job["status"] == "completed", (job, failures, stack.logs())
    assert (job["total"], job["succeeded"], job["failed"]) == (total, total, 0), (job, failures)
    samples = all_samples(stack.client, dataset)
    missing = [s["id"] for s in samples if OUTPUT not in s["fields"]]
    assert len(samples) == total and not missing, f"{len(missing)} samples lack {OUTPUT!r}"
    assert all(s["fields"][OUTPUT]["label"] == s["fields"]["text"] for s in samples)


@pytest.mark.parametrize("part", ["inference-worker", "scheduler", "gateway", "deployer", "nats", "mongo", "ray"])
def test_a_job_survives_kill_9_of(part, chaos_stack, slow_deployment):
    texts = [f"sample-{i}" for i in range(TOTAL)]
    dataset, job_id = start_job(chaos_stack, slow_deployment, texts)
    wait_mid_run(chaos_stack, job_id)
    kill_and_wait_restart(chaos_stack, part)
    assert_completed_exactly_once(chaos_stack, dataset, job_id, TOTAL)


# Fast enough that the scheduler sizes this deployment's tasks above 512 samples once a first job
# came back (its pace: services/scheduler/modelhub_scheduler/pace.py), slow enough that a
# 20,000-sample job is still running when the kill lands.
PACED_MODEL = slow_model(0.002)
PACED_TOTAL = 20_000


@pytest.fixture(scope="module")
def paced_deployment(chaos_stack, tmp_path_factory) -> str:
    client, model, name = chaos_stack.client, unique("paced"), unique("paced-dep")
    package = make_zip(tmp_path_factory.mktemp("paced") / "paced.zip", {"model.py": PACED_MODEL})
    create_model(client, model, package, TEXT_SCHEMA)
    assert deploy(client, model, name, mini_batch=64)["status"] == "running"
    dataset, job_id = start_job(chaos_stack, name, [f"warm-{i}" for i in range(3_000)])  # measures its pace
    assert_completed_exactly_once(chaos_stack, dataset, job_id, 3_000)
    return name


async def test_a_job_of_paced_tasks_survives_kill_9_of_the_worker_and_the_gateway(chaos_stack, paced_deployment):
    """kill -9 of the worker mid-job (a task of thousands of samples is redone) and then of the
    gateway (the fold of outcome events, several per task): counts stay exact, every field lands once."""
    client, dataset = chaos_stack.client, unique("ds")
    assert client.post("/datasets", json={"name": dataset}).status_code == 201
    for start in range(0, PACED_TOTAL, 10_000):  # 10,000 samples a call at most
        rows = [{"filepath": f"/data/{i}.txt", "fields": {"text": f"sample-{i}"}} for i in range(start, start + 10_000)]
        assert client.post(f"/datasets/{dataset}/samples", json={"samples": rows}).status_code == 201
    response = client.post(
        f"/datasets/{dataset}/jobs", json={"deployment": paced_deployment, "outputs": {"label": OUTPUT}}
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    mongo = AsyncMongoClient(chaos_stack.mongo_url, tz_aware=True)
    try:
        db = mongo["modelhub"]
        wait_mid_run(chaos_stack, job_id)
        plan = await db["job_plans"].find_one({"_id": f"{job_id}.1.p0"})
        assert plan is not None and plan["task_samples"] > 512, plan  # this job runs paced tasks
        kill_and_wait_restart(chaos_stack, "inference-worker")
        kill_and_wait_restart(chaos_stack, "gateway")
        job = wait_for(
            lambda: (j := get_json(client, f"/jobs/{job_id}")) and j["status"] in ("completed", "failed") and j,
            300,
            f"job {job_id} to end",
            interval=0.5,
        )
        assert (job["status"], job["total"], job["succeeded"], job["failed"]) == (
            "completed",
            PACED_TOTAL,
            PACED_TOTAL,
            0,
        ), job
        written = await db["samples"].count_documents(
            {
                "dataset": dataset,
                f"lineage.{OUTPUT}.job_id": job_id,
                "$expr": {"$eq": [f"$fields.{OUTPUT}.label", "$fields.text"]},
            }
        )
        assert written == PACED_TOTAL  # each sample's own output, written by this job
    finally:
        await mongo.close()


def test_a_model_process_that_dies_fails_only_its_sample_and_is_started_again(chaos_stack, tmp_path):
    client, model, name = chaos_stack.client, unique("crash"), unique("crash-dep")
    create_model(client, model, make_zip(tmp_path / "crash.zip", {"model.py": CRASHING_MODEL}), TEXT_SCHEMA)
    deployment = deploy(client, model, name, mini_batch=4)
    assert deployment["status"] == "running", (deployment, chaos_stack.logs())
    texts = [f"sample-{i}" for i in range(120)]
    texts[60] = "crash-60"
    try:
        dataset, job_id = start_job(chaos_stack, name, texts)

        def ended():
            job = get_json(client, f"/jobs/{job_id}")
            return job if job and job["status"] in ("completed", "failed", "cancelled") else None

        job = wait_for(ended, 300, f"job {job_id} to end", interval=0.5)
        failures = client.get(f"/jobs/{job_id}/failures").json()["items"]
        assert job["status"] == "completed", (job, failures, chaos_stack.logs())
        # the death is the model's verdict on the sample that caused it, and on it alone
        assert (job["total"], job["succeeded"], job["failed"]) == (120, 119, 1), (job, failures)
        samples = {s["fields"]["text"]: s for s in all_samples(client, dataset)}
        assert [f["sample_id"] for f in failures] == [samples["crash-60"]["id"]], failures
        reason = failures[0]["error"]
        assert "the model process died" in reason and "exited with code 1" in reason, reason
        assert OUTPUT not in samples["crash-60"]["fields"]
        rest = [s for text, s in samples.items() if text != "crash-60"]
        assert len(rest) == 119 and all(s["fields"][OUTPUT]["label"] == s["fields"]["text"] for s in rest)

        # the deployment keeps serving, without a redeploy: the model was started again
        after = client.post(f"/deployments/{name}/predict", json={"inputs": {"text": ["after-1", "after-2"]}})
        assert after.status_code == 200, after.text
        assert [o["label"] for o in after.json()["outputs"][OUTPUT]] == ["after-1", "after-2"]
        assert client.get(f"/deployments/{name}").json()["status"] == "running"
    finally:
        client.delete(f"/deployments/{name}")
