"""Bounded history: once a job has ended and settled, its ledger keeps only the records that hold
failures and the other records' successes become a count; the counts the API shows never change, late outcomes
of a compacted attempt change nothing, a retry still runs the failures, and outcomes of a deleted
job leave nothing behind. Runs the gateway's compaction on the stack's real MongoDB (the gateway
does the same every minute, for jobs that ended ten minutes ago)."""

import pytest
from conftest import (
    SCHEMA_TEXT_TO_CLASS,
    add_text_samples,
    all_samples,
    create_model,
    deploy,
    make_zip,
    run_job,
    unique,
    wait_for,
)
from pymongo import AsyncMongoClient

from modelhub_contracts.events import SampleAnnotated, SampleOutcome
from modelhub_gateway.progress import fold, history
from modelhub_gateway.store import GatewayStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

BOOM_MODEL = """
class Model:
    def __init__(self, model_dir):
        pass

    def predict(self, batch):
        if any(t.startswith("boom") for t in batch["text"]):
            raise ValueError("boom")
        return {"label": [{"label": t, "confidence": 1.0} for t in batch["text"]]}
"""


@pytest.fixture()
async def store(stack):
    client = AsyncMongoClient(stack.mongo_url)
    try:
        yield GatewayStore(client["modelhub"])
    finally:
        await client.close()


async def records(store: GatewayStore, job_id: str) -> tuple[int, int, int]:
    docs = await store.ledger.find({"job_id": job_id}).to_list()
    return sum(d["samples"] for d in docs), sum(d["succeeded"] for d in docs), sum(d["failed"] for d in docs)


def late(job_id: str, attempt: int, sample_id: str, ok: bool) -> SampleAnnotated:
    return SampleAnnotated(
        event_id=f"late-{unique('e')}",
        job_id=job_id,
        attempt=attempt,
        task_id="late",
        samples=[SampleOutcome(sample_id=sample_id, ok=ok, error=None if ok else "late")],
    )


async def test_an_ended_job_keeps_its_failures_and_its_counts(stack, store, tmp_path):
    client, model, dep, dataset = stack.client, unique("hist"), unique("hist"), unique("hist")
    create_model(client, model, make_zip(tmp_path / "m.zip", {"model.py": BOOM_MODEL}), SCHEMA_TEXT_TO_CLASS)
    assert deploy(client, model, dep, mini_batch=4)["status"] == "running"
    texts = [f"t{i}" for i in range(40)] + ["boom-1", "boom-2"]
    add_text_samples(client, dataset, texts)
    job = run_job(client, dataset, dep, {"label": "label"})
    assert (job["status"], job["succeeded"], job["failed"]) == ("completed", 40, 2)
    assert await records(store, job["id"]) == (42, 40, 2)  # (samples, succeeded, failed) of its records

    assert await history.compact_ended_jobs(store, settle_seconds=0) >= 1
    kept = await store.ledger.find({"job_id": job["id"]}).to_list()
    assert kept and all(r["failed"] for r in kept)  # the records with failures only
    compacted = (await store.jobs.find_one({"_id": job["id"]}))["compacted_succeeded"]
    assert compacted + sum(r["succeeded"] for r in kept) == 40 and sum(r["failed"] for r in kept) == 2
    again = client.get(f"/jobs/{job['id']}").json()
    assert (again["succeeded"], again["failed"], again["progress"]) == (40, 2, 1.0)
    assert len(client.get(f"/jobs/{job['id']}/failures").json()["items"]) == 2
    assert await history.compact_ended_jobs(store, settle_seconds=0) == 0  # nothing left to do

    # late outcomes of the compacted attempt (a redelivery, a dead letter) change nothing
    ids = {s["fields"]["text"]: s["id"] for s in all_samples(client, dataset)}
    await fold.record_annotations(store, [late(job["id"], 1, ids["t0"], True), late(job["id"], 1, ids["t1"], False)])
    again = client.get(f"/jobs/{job['id']}").json()
    assert (again["succeeded"], again["failed"]) == (40, 2)
    assert await store.ledger.find({"job_id": job["id"]}).to_list() == kept

    # a retry runs the two failures again and counts on top of the compacted successes
    assert client.post(f"/jobs/{job['id']}/retry").status_code == 202
    retried = wait_for(
        lambda: (d := client.get(f"/jobs/{job['id']}").json())["status"] != "queued" and d["status"] != "running" and d,
        240,
        "the retry to end",
    )
    assert (retried["attempt"], retried["succeeded"], retried["failed"]) == (2, 40, 2)
    await history.compact_ended_jobs(store, settle_seconds=0)
    final = client.get(f"/jobs/{job['id']}").json()
    assert (final["succeeded"], final["failed"]) == (40, 2)
    # attempt 1's record gave its failures to the retry and was compacted; attempt 2's holds them
    left = await store.ledger.find({"job_id": job["id"]}).to_list()
    assert [(r["attempt"], r["succeeded"], r["failed"]) for r in left] == [(2, 0, 2)]
    assert len(client.get(f"/jobs/{job['id']}/failures").json()["items"]) == 2


async def test_outcomes_of_a_deleted_job_leave_nothing_behind(stack, store):
    client, dataset = stack.client, unique("gone")
    add_text_samples(client, dataset, ["a"])
    jobs_collection = store.jobs
    ghost = "f" * 32
    assert await jobs_collection.find_one({"_id": ghost}) is None
    await fold.record_annotations(store, [late(ghost, 1, "sample", True)])
    assert await store.ledger.count_documents({"job_id": ghost}) == 0
