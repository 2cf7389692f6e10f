"""The job ledger against a real MongoDB: redelivered, reordered and retried outcomes never count
a sample twice, a success is never undone by a late failure, and a retry re-counts only its samples."""

import asyncio

import pytest
from conftest import insert_job
from pymongo import AsyncMongoClient

from modelhub_contracts.events import SampleAnnotated, SampleOutcome
from modelhub_gateway import jobs
from modelhub_gateway.progress import fold, ledger
from modelhub_gateway.store import GatewayStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def outcome(job: str, sample: str, ok: bool, attempt: int = 1) -> SampleAnnotated:
    """A task of one sample (a task's chunk always covers the same samples; its id holds its attempt)."""
    return SampleAnnotated(
        job_id=job,
        attempt=attempt,
        task_id=f"{job}.{attempt}.{sample}",
        samples=[SampleOutcome(sample_id=sample, ok=ok, error=None if ok else f"boom {sample}")],
    )


async def counts(store: GatewayStore, job: str) -> tuple:
    doc = await store.jobs.find_one({"_id": job})
    return doc["status"], doc["succeeded"], doc["failed"]


async def test_redelivery_reordering_and_retry_keep_counts_exact(stack):
    client = AsyncMongoClient(stack.mongo_url, tz_aware=True)
    store = GatewayStore(client["modelhub"])
    job = await insert_job(store.jobs, total=3)
    try:
        await fold.record_annotations(
            store,
            [outcome(job, "a", True), outcome(job, "b", False), outcome(job, "a", True), outcome(job, "b", False)],
        )
        assert await counts(store, job) == ("running", 1, 1)
        # b succeeds on a redelivered task; then b's stale failure arrives again: the success stays
        await fold.record_annotations(store, [outcome(job, "b", True)])
        await fold.record_annotations(store, [outcome(job, "b", False)])
        assert await counts(store, job) == ("running", 2, 0)
        await fold.record_annotations(store, [outcome(job, "c", False)])
        assert await counts(store, job) == ("completed", 2, 1)
        assert await store.failures(job) == [{"sample_id": "c", "error": "boom c"}]

        # retry c: its old failure stops counting, the job reopens, the new attempt's result counts once
        doc = await store.jobs.find_one({"_id": job})
        assert doc is not None
        assert await jobs.failed_samples(store, doc) == ["c"]
        # the retry's outcome that comes before its reopen waits for it (its batch is NAKed)
        with pytest.raises(ledger.BeforeReopen):
            await fold.record_annotations(store, [outcome(job, "c", False, attempt=2), outcome(job, "a", True)])
        assert await counts(store, job) == ("completed", 2, 1)
        await jobs.reopen(store, doc, attempt=2)
        assert await counts(store, job) == ("queued", 2, 0)
        await fold.record_annotations(store, [outcome(job, "c", False, attempt=1)])  # a late, old copy
        assert await counts(store, job) == ("queued", 2, 0)
        await fold.record_annotations(store, [outcome(job, "c", False, attempt=2)] * 2)
        assert await counts(store, job) == ("completed", 2, 1)
        assert await store.failures(job) == [{"sample_id": "c", "error": "boom c"}]  # attempt 2's, listed once
        # a second retry; its success counts once, and the older attempts' late copies change nothing
        doc = await store.jobs.find_one({"_id": job})
        assert doc is not None
        await jobs.reopen(store, doc, attempt=3)
        assert await counts(store, job) == ("queued", 2, 0)
        await fold.record_annotations(store, [outcome(job, "c", True, attempt=3)] * 2)
        await fold.record_annotations(store, [outcome(job, "c", True, attempt=1), outcome(job, "c", True, attempt=2)])
        assert await counts(store, job) == ("completed", 3, 0)
        assert await store.failures(job) == []
    finally:
        await store.jobs.delete_one({"_id": job})
        await store.ledger.delete_many({"job_id": job})
        await client.close()


async def test_an_older_hubs_sample_rows_become_records_with_their_counts_and_failures(stack):
    """A hub upgraded in place: its ended jobs' per-sample rows (`job_samples`) are adopted at the
    gateway's start, by two gateways at once here, and the jobs keep counts, failures and retry."""
    client = AsyncMongoClient(stack.mongo_url, tz_aware=True)
    store = GatewayStore(client["modelhub"])
    job = await insert_job(
        store.jobs, status="completed", attempt=2, total=1_300, succeeded=1_297, failed=2, progress=1.0
    )

    def row(i: int) -> dict:
        sample = f"s{i:05d}"
        ok, attempt = {7: (False, 2), 1_200: (False, 1), 9: (None, 2)}.get(i, (True, 1))
        return {
            "_id": f"{job}:{sample}",
            "job_id": job,
            "sample_id": sample,
            "attempt": attempt,
            "ok": ok,
            "error": None if ok else f"boom {sample}",
        }

    await store.sample_rows.insert_many([row(i) for i in range(1_300)])
    try:
        adopted = await asyncio.gather(ledger.adopt_sample_rows(store), ledger.adopt_sample_rows(store))
        assert 1 <= sum(adopted) <= 2  # one gateway adopts it, or both do, the same records
        assert await store.sample_rows.count_documents({"job_id": job}) == 0
        assert await store.ledger.count_documents({"job_id": job}) == 3  # 512 samples a record
        assert await ledger.counted(store, job) == (1_297, 2)  # s00009 was being retried: neither
        assert await store.failures(job) == [
            {"sample_id": "s00007", "error": "boom s00007"},
            {"sample_id": "s01200", "error": "boom s01200"},
        ]
        doc = await store.jobs.find_one({"_id": job})
        assert doc is not None
        assert await jobs.failed_samples(store, doc) == ["s00007", "s01200"]
        await jobs.reopen(store, doc, attempt=3)
        assert await counts(store, job) == ("queued", 1_297, 0)
        assert await ledger.adopt_sample_rows(store) == 0  # nothing left to adopt
    finally:
        await store.jobs.delete_one({"_id": job})
        await store.ledger.delete_many({"job_id": job})
        await store.sample_rows.delete_many({"job_id": job})
        await client.close()
