"""Flow control on the real stack: a job on an idle deployment is not held up by a big job on
another, and two jobs on one deployment share it (round-robin) instead of running one after
the other. Asserted on progress snapshots (the order things happen in), never on durations.

The model is GPU-like (one batch at a time per replica: a lock around a sleep), so a big job
has a physical floor on its duration that no scheduling can beat, and the other job's progress
at its milestones shows how the deployment was shared.
"""

import pytest
from conftest import (
    SCHEMA_TEXT_TO_CLASS,
    add_text_samples,
    create_model,
    deploy,
    make_zip,
    slow_model,
    unique,
    wait_for,
)

from modelhub_contracts.queue import window

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

GPU_LIKE_MODEL = slow_model(0.05, one_batch_at_a_time=True)  # one batch at a time, like a GPU
MINI_BATCH = 4


@pytest.fixture(scope="module")
def gpu_like_model(stack, tmp_path_factory) -> str:
    model = unique("gpu-like")
    create_model(
        stack.client,
        model,
        make_zip(tmp_path_factory.mktemp("gpu") / "m.zip", {"model.py": GPU_LIKE_MODEL}),
        SCHEMA_TEXT_TO_CLASS,
    )
    return model


def deployed(stack, model: str) -> str:
    name = unique("dep")
    assert deploy(stack.client, model, name, mini_batch=MINI_BATCH)["status"] == "running"
    return name


def submit(stack, deployment: str, n: int) -> str:
    dataset = unique("ds")
    add_text_samples(stack.client, dataset, [f"t{i}" for i in range(n)])
    response = stack.client.post(
        f"/datasets/{dataset}/jobs", json={"deployment": deployment, "outputs": {"label": "label"}}
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


def job(stack, job_id: str) -> dict:
    return stack.client.get(f"/jobs/{job_id}").json()


def started(stack, job_id: str) -> dict:
    return wait_for(lambda: (doc := job(stack, job_id))["succeeded"] > 0 and doc, 180, f"job {job_id} to start")


def completed(stack, job_id: str) -> dict:
    doc = wait_for(
        lambda: (doc := job(stack, job_id))["status"] in ("completed", "failed", "cancelled") and doc,
        300,
        f"job {job_id} to end",
        interval=0.1,
    )
    assert doc["status"] == "completed" and doc["succeeded"] == doc["total"], doc
    return doc


def test_a_small_job_on_an_idle_deployment_does_not_wait_for_a_big_one_elsewhere(stack, gpu_like_model):
    busy, idle = deployed(stack, gpu_like_model), deployed(stack, gpu_like_model)
    big = submit(stack, busy, 800)  # 200 batches of 0.05 s on one replica: at least 10 s
    started(stack, big)
    small = submit(stack, idle, 40)
    completed(stack, small)
    at_small_done = job(stack, big)
    # before flow control the small job's tasks queued behind nearly all of the big job's
    assert at_small_done["status"] == "running" and at_small_done["progress"] < 0.5, at_small_done
    completed(stack, big)


def test_two_jobs_on_one_deployment_share_it(stack, gpu_like_model):
    shared = deployed(stack, gpu_like_model)
    first = submit(stack, shared, 800)
    started(stack, first)
    second = submit(stack, shared, 800)
    queue = wait_for(
        lambda: (d := stack.client.get(f"/deployments/{shared}").json()["queue"])["waiting"] and d,
        60,
        "the deployment's queue to show waiting tasks",
    )
    assert 0 < queue["in_flight"] <= window(1), queue  # the window of a one-replica deployment
    completed(stack, first)
    at_first_done = job(stack, second)
    # before flow control the second job was 0-3 % done here: it ran only after the first
    assert at_first_done["progress"] >= 0.5, at_first_done
    assert completed(stack, second)["queue"] == {"waiting": 0, "in_flight": 0}
    # every place is given back: nothing stays counted in flight on the deployment
    wait_for(
        lambda: stack.client.get(f"/deployments/{shared}").json()["queue"] == {"waiting": 0, "in_flight": 0},
        60,
        "the deployment's queue to empty",
    )
