"""Cancel guarantee: once a cancel answers `cancelled`, no sample of the job gets its output field,
and every field that was written is counted in `succeeded`."""

import time

import pytest
from conftest import (
    SCHEMA_TEXT_TO_CLASS,
    add_text_samples,
    all_samples,
    create_model,
    deploy,
    make_zip,
    slow_model,
    unique,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

TEXT_SCHEMA = SCHEMA_TEXT_TO_CLASS

SLOW_MODEL = slow_model(0.2)

# How long after the cancel the samples are watched for late writes.
WATCH_SECONDS = 5.0


def annotated(client, dataset: str) -> int:
    return sum("label" in s["fields"] for s in all_samples(client, dataset))


def test_no_field_is_written_after_a_job_reports_cancelled(stack, tmp_path):
    client, model, deployment, dataset = stack.client, unique("slow"), unique("dep"), unique("ds")
    create_model(client, model, make_zip(tmp_path / "slow.zip", {"model.py": SLOW_MODEL}), TEXT_SCHEMA)
    assert deploy(client, model, deployment, mini_batch=4)["status"] == "running"
    add_text_samples(client, dataset, [f"sample-{i}" for i in range(200)])
    job_id = client.post(
        f"/datasets/{dataset}/jobs", json={"deployment": deployment, "outputs": {"label": "label"}}
    ).json()["id"]
    wait_for(lambda: client.get(f"/jobs/{job_id}").json()["succeeded"] >= 8, 180, "the job to get going", interval=0.1)

    cancelled = client.post(f"/jobs/{job_id}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled", cancelled.text
    at_cancel = annotated(client, dataset)
    assert at_cancel < 200, "the job finished before the cancel: the test proved nothing"

    # Tasks already fetched by the worker keep running; none of them may write from now on.
    deadline = time.monotonic() + WATCH_SECONDS
    while time.monotonic() < deadline:
        assert annotated(client, dataset) == at_cancel, "a field was written after the job reported cancelled"
        time.sleep(0.25)

    # Every written field was published under the lease, so the counts catch up to exactly it.
    job = wait_for(
        lambda: (j := client.get(f"/jobs/{job_id}").json())["succeeded"] >= at_cancel and j,
        60,
        "the counts to include every written field",
    )
    assert job["status"] == "cancelled"
    assert job["succeeded"] == at_cancel, job
    assert job["succeeded"] + job["failed"] < job["total"] == 200
    client.delete(f"/deployments/{deployment}")
