"""Tasks sized by their deployment's measured pace, on the real stack: a fast model's second job is
planned in tasks larger than the smallest, and still annotates every sample exactly once; a plan
keeps its size when it is planned again (after a crash mid-plan)."""

import uuid

import pytest
from conftest import (
    SCHEMA_TEXT_TO_CLASS,
    add_text_samples,
    all_samples,
    create_model,
    deploy,
    make_zip,
    run_job,
    slow_model,
    unique,
)
from pymongo import AsyncMongoClient

from modelhub_contracts.events import JobSubmitted
from modelhub_scheduler.schedule import plan_id, task_for, task_size
from modelhub_scheduler.store import UNBOUNDED, SchedulerStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

MINI_BATCH = 16
SAMPLES = 3_000


@pytest.fixture
async def db(stack):
    client = AsyncMongoClient(stack.mongo_url, tz_aware=True)
    yield client["modelhub"]
    await client.close()


def submitted(job_id: str) -> JobSubmitted:
    return JobSubmitted(
        job_id=job_id,
        dataset="ds",
        deployment="dep",
        inputs={"text": "text"},
        outputs={"label": "label"},
        output_types={"label": "classification"},
        mini_batch=64,
        submitted_by="admin",
    )


async def test_a_plan_keeps_the_task_size_it_was_first_given(db):
    store, job = SchedulerStore(db), submitted(uuid.uuid4().hex)
    plan = plan_id(job)
    try:
        assert await store.task_samples(job, plan, 1_536, 512) == 1_536
        assert not await store.is_planned(plan)  # a size alone is no plan: planning is not done
        assert await store.task_samples(job, plan, 512, 512) == 1_536  # planned again: cut the same way
        await store.planned(plan, job.job_id, 2, 3_000)
        assert await store.is_planned(plan)
    finally:
        await db["job_plans"].delete_one({"_id": plan})


async def test_a_plan_begun_before_tasks_were_paced_goes_on_at_the_smallest_size(db):
    store, job = SchedulerStore(db), submitted(uuid.uuid4().hex)
    plan = plan_id(job)
    try:
        # an older scheduler stored the first tasks (of 512), kept no size, and crashed mid-plan
        await store.add_tasks([(0, task_for(job, 0, [f"s{i}" for i in range(512)]))], job.part)
        assert await store.task_samples(job, plan, 2_048, 512) == 512
    finally:
        await db["job_plans"].delete_one({"_id": plan})
        await db["job_tasks"].delete_many({"job_id": job.job_id})


async def test_a_fast_models_next_job_runs_larger_tasks_and_annotates_each_sample_once(stack, tmp_path, db):
    model, deployment, dataset = unique("fast"), unique("fast-dep"), unique("paced")
    create_model(stack.client, model, make_zip(tmp_path / "m.zip", {"model.py": slow_model(0)}), SCHEMA_TEXT_TO_CLASS)
    assert deploy(stack.client, model, deployment, mini_batch=MINI_BATCH)["status"] == "running"
    add_text_samples(stack.client, dataset, [f"t{i}" for i in range(SAMPLES)])

    jobs = [run_job(stack.client, dataset, deployment, {"label": field}) for field in ("first", "second")]
    plans = {job["id"]: await db["job_plans"].find_one({"job_id": job["id"]}) for job in jobs}
    smallest = task_size(MINI_BATCH)
    first, second = (plans[job["id"]] for job in jobs)
    assert first["task_samples"] == smallest  # nothing measured yet on a new deployment
    # the first job's tasks came back: the second is cut by the pace they showed, in whole mini-batches
    assert second["task_samples"] > smallest and second["task_samples"] % MINI_BATCH == 0, second
    assert second["num_tasks"] == -(-SAMPLES // second["task_samples"])
    for job in jobs:
        assert (job["status"], job["succeeded"], job["failed"], job["total"]) == ("completed", SAMPLES, 0, SAMPLES)
    samples = all_samples(stack.client, dataset)
    assert len(samples) == SAMPLES
    for sample in samples:
        assert sample["fields"]["second"] == {"label": sample["fields"]["text"], "confidence": 0.5}
        assert sample["lineage"]["second"]["job_id"] == jobs[1]["id"]


async def test_no_window_is_kept_for_a_deployment_that_does_not_exist(db):
    store, name = SchedulerStore(db), f"nowhere-{uuid.uuid4().hex}"
    assert await store.window(name) == UNBOUNDED  # its tasks (if any) go, as a gone deployment's do
    await db["deployments"].insert_one({"_id": name, "num_replicas": 1, "status": "running"})
    try:
        assert await store.window(name) < UNBOUNDED  # made under that name right after: its own window
    finally:
        await db["deployments"].delete_one({"_id": name})
