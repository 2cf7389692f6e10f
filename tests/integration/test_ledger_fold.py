"""The ledger fold against a real MongoDB: its cost follows the batch, not the job (no recount of a
job's ledger while it runs), counts stay exact when a fold is cut between the ledger and the
counts (a crash, MongoDB lost), and when two folds of the same outcomes race."""

import asyncio

import pytest
from conftest import insert_job
from pymongo import AsyncMongoClient, monitoring

from modelhub_contracts.events import SampleAnnotated, SampleOutcome
from modelhub_gateway.progress import fold, ledger
from modelhub_gateway.store import GatewayStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class LedgerCommands(monitoring.CommandListener):
    """Counts the commands sent to the ledger collection, by name."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command.get(event.command_name) == "job_chunks":
            self.seen.append(event.command_name)

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


def task(job: str, first: int, n: int, ok: bool = True, attempt: int = 1) -> SampleAnnotated:
    return SampleAnnotated(
        job_id=job,
        attempt=attempt,
        task_id=f"t{first}",
        samples=[
            SampleOutcome(sample_id=f"s{i:06d}", ok=ok, error=None if ok else "boom") for i in range(first, first + n)
        ],
    )


async def new_job(store: GatewayStore, total: int) -> str:
    return await insert_job(store.jobs, total=total, progress=0.0)


async def counts(store: GatewayStore, job: str) -> tuple:
    doc = await store.jobs.find_one({"_id": job})
    return doc["status"], doc["succeeded"], doc["failed"], doc["progress"]


@pytest.fixture
async def mongo(stack):
    listener = LedgerCommands()
    client = AsyncMongoClient(stack.mongo_url, tz_aware=True, event_listeners=[listener])
    yield GatewayStore(client["modelhub"]), listener
    await client.close()


async def test_a_fold_touches_only_its_batch_until_the_job_is_done(mongo):
    store, listener = mongo
    job = await new_job(store, total=5_000)
    try:
        for first in range(0, 4_000, 500):  # 4,000 outcomes already in the ledger
            await fold.record_annotations(store, [task(job, first, 500)])
        listener.seen.clear()
        await fold.record_annotations(store, [task(job, 4_000, 64), task(job, 4_064, 64)])
        # one insert of the batch's new records (no read first): no aggregate over the job's records
        assert sorted(listener.seen) == ["insert"], listener.seen
        assert await counts(store, job) == ("running", 4_128, 0, 0.8256)
        # the same batch again (a redelivery): its inserts meet the records, which are read and merged
        # into no change, and nothing is counted twice
        listener.seen.clear()
        await fold.record_annotations(store, [task(job, 4_000, 64), task(job, 4_064, 64)])
        assert sorted(listener.seen) == ["find", "insert"], listener.seen
        assert await counts(store, job) == ("running", 4_128, 0, 0.8256)
        await fold.record_annotations(store, [task(job, 4_128, 800), task(job, 4_928, 72, ok=False)])
        assert await counts(store, job) == ("completed", 4_928, 72, 1.0)
        assert listener.seen.count("aggregate") == 1  # the job was completed on the ledger's own sum
    finally:
        await store.jobs.delete_one({"_id": job})
        await store.ledger.delete_many({"job_id": job})


async def test_a_fold_cut_between_ledger_and_counts_is_recounted_when_it_comes_back(mongo):
    store, _ = mongo
    job = await new_job(store, total=300)
    try:
        await fold.record_annotations(store, [task(job, 0, 100)])
        batch = [task(job, 100, 100), task(job, 200, 50, ok=False)]
        # what a fold does up to the counts, then "crashes": the records are in, the counts are not
        await ledger.mark(store, [job], ledger.mark_key(None))
        await ledger.fold(store, batch)
        assert await counts(store, job) == ("running", 100, 0, pytest.approx(1 / 3, abs=1e-6))
        # the unacked batch is delivered again: its records change nothing, the job is recounted
        await fold.record_annotations(store, batch)
        assert await counts(store, job) == ("running", 200, 50, pytest.approx(250 / 300, abs=1e-6))
        assert not (await store.jobs.find_one({"_id": job})).get("recount_pending")  # the mark is cleared
        await fold.record_annotations(store, [task(job, 250, 50), task(job, 200, 50)])  # + the failures succeed
        assert await counts(store, job) == ("completed", 300, 0, 1.0)
    finally:
        await store.jobs.delete_one({"_id": job})
        await store.ledger.delete_many({"job_id": job})


async def test_a_gateway_restarting_recounts_the_folds_its_previous_run_left_cut(mongo):
    store, _ = mongo
    job = await new_job(store, total=300)
    try:
        await fold.record_annotations(store, [task(job, 0, 100)], "gw-b")
        # gateway gw-b dies between the records of its last batch and their counts; gateway gw-a
        # folds the job's remaining outcomes (and that batch again, redelivered to it: its records
        # count nothing)
        cut = [task(job, 100, 100)]
        await ledger.mark(store, [job], ledger.mark_key("gw-b"))
        await ledger.fold(store, cut)
        await fold.record_annotations(store, [*cut, task(job, 200, 100, ok=False)], "gw-a")
        # the job's counts stay behind its ledger: nothing of gw-b's comes to recount it
        assert await counts(store, job) == ("running", 100, 100, pytest.approx(200 / 300, abs=1e-6))
        assert await fold.recount_cut_folds(store, "gw-a") == 0  # another gateway's mark is not its own
        # gw-b starts again: its mark is a cut fold of its previous run
        assert await fold.recount_cut_folds(store, "gw-b") == 1
        assert await counts(store, job) == ("completed", 200, 100, 1.0)
        assert not (await store.jobs.find_one({"_id": job})).get("recount_pending")
        assert await fold.recount_cut_folds(store, "gw-b") == 0
    finally:
        await store.jobs.delete_one({"_id": job})
        await store.ledger.delete_many({"job_id": job})


async def test_racing_folds_of_the_same_outcomes_count_each_sample_once(mongo):
    store, _ = mongo
    job = await new_job(store, total=1_000)
    try:
        fails = [task(job, first, 100, ok=False) for first in range(0, 1_000, 100)]
        wins = [task(job, first, 100) for first in range(0, 500, 100)]
        # the same failures folded by four folds at once, then half of them turned into successes twice
        await asyncio.gather(*(fold.record_annotations(store, fails) for _ in range(4)))
        assert await counts(store, job) == ("completed", 0, 1_000, 1.0)
        await asyncio.gather(*(fold.record_annotations(store, wins) for _ in range(3)))
        doc = await store.jobs.find_one({"_id": job})
        assert (doc["succeeded"], doc["failed"]) == (500, 500)
        assert await ledger.counted(store, job) == (500, 500)
        assert len(await store.failures(job)) == 500
    finally:
        await store.jobs.delete_one({"_id": job})
        await store.ledger.delete_many({"job_id": job})
