"""`modelhub up --workers 2`: two inference-worker processes share the job tasks, and a job's
counts stay exact, even when one of them is killed mid-job. A stack of its own (module scope)."""

import asyncio
import os
import signal

import nats
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

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
TOTAL = 300


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("workers-stack")
    try:
        yield start_stack(data_dir, "--workers", "2")
    finally:
        stop_stack(data_dir)


async def pulls_waiting(url: str) -> int:
    """Pull requests waiting on the task consumer: each worker process keeps one open when idle."""
    nc = await nats.connect(url)
    try:
        return (await nc.jetstream().consumer_info("MODELHUB", "worker-tasks")).num_waiting or 0
    finally:
        await nc.close()


def test_two_workers_share_the_tasks_and_counts_stay_exact(two_workers, tmp_path):
    stack = two_workers
    first, second = part_pid(stack.data_dir, "inference-worker"), part_pid(stack.data_dir, "inference-worker-2")
    assert first and second and first != second
    assert wait_for(lambda: asyncio.run(pulls_waiting(stack.nats_url)) >= 2, 60, "both workers to pull tasks")
    client, model, name = stack.client, unique("slow"), unique("slow-dep")
    create_model(client, model, make_zip(tmp_path / "slow.zip", {"model.py": slow_model(0.05)}), SCHEMA_TEXT_TO_CLASS)
    assert deploy(client, model, name, mini_batch=4, num_replicas=2)["status"] == "running"
    dataset = unique("ds")
    add_text_samples(client, dataset, [f"s{i}" for i in range(TOTAL)])
    job_id = client.post(f"/datasets/{dataset}/jobs", json={"deployment": name, "outputs": {"label": "label"}}).json()[
        "id"
    ]
    wait_for(
        lambda: (job := get_json(client, f"/jobs/{job_id}")) and job["succeeded"] >= 8, 180, "the job to get going"
    )
    os.kill(second, signal.SIGKILL)  # its tasks in flight are redelivered to the other worker
    job = wait_for(
        lambda: (j := get_json(client, f"/jobs/{job_id}")) and j["status"] in ("completed", "failed") and j,
        300,
        "the job to end",
        interval=0.5,
    )
    assert (job["status"], job["total"], job["succeeded"], job["failed"]) == ("completed", TOTAL, TOTAL, 0), job
    samples = all_samples(client, dataset)
    assert len(samples) == TOTAL and all(s["fields"]["label"]["label"] == s["fields"]["text"] for s in samples)
