"""Round trips on a job's hot path, against a real MongoDB: a worker reads a task's samples in one
command (no getMore), and the gateway's read-and-mark of the jobs it folds keeps what a cut
fold left for its recount."""

import uuid

import pytest
from conftest import insert_job
from pymongo import AsyncMongoClient, monitoring

from modelhub_contracts.events import SampleAnnotated, SampleOutcome
from modelhub_gateway.progress import fold, ledger
from modelhub_gateway.store import GatewayStore
from modelhub_worker.store import WorkerStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class Commands(monitoring.CommandListener):
    """The commands sent to one collection, by name, in order."""

    def __init__(self, collection: str) -> None:
        self.collection, self.seen = collection, []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        # a getMore names its collection under "collection" (its own key holds the cursor id)
        if self.collection in (event.command.get(event.command_name), event.command.get("collection")):
            self.seen.append(event.command_name)

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


@pytest.fixture
async def mongo(stack):
    listener = Commands("samples")
    client = AsyncMongoClient(stack.mongo_url, tz_aware=True, event_listeners=[listener])
    yield client["modelhub"], listener
    await client.close()


async def test_a_task_of_512_samples_is_read_in_one_command(mongo):
    db, listener = mongo
    dataset = f"ds-{uuid.uuid4().hex[:8]}"
    ids = [f"{dataset}-{i:04d}" for i in range(512)]
    await db["samples"].insert_many(
        [
            {"_id": sid, "dataset": dataset, "filepath": f"/x/{sid}", "fields": {"text": sid, "embedding": [0.5] * 64}}
            for sid in ids
        ]
    )
    try:
        listener.seen.clear()
        docs = await WorkerStore(db).load(ids, dataset, ["text"])
        # only what the model reads comes back (not filepath, not the other fields)
        assert sorted(docs) == ids and docs[ids[7]] == {"_id": ids[7], "fields": {"text": ids[7]}}
        assert listener.seen == ["find"], listener.seen  # the default first batch (101) took getMores more
        both = await WorkerStore(db).load(ids[:2], dataset, ["filepath", "text", "not a field"])
        assert both[ids[1]] == {"_id": ids[1], "filepath": f"/x/{ids[1]}", "fields": {"text": ids[1]}}
        assert await WorkerStore(db).load(ids[:3], "another-dataset", ["text"]) == {}  # still only its own dataset's
    finally:
        await db["samples"].delete_many({"dataset": dataset})


async def test_outcomes_that_no_longer_count_leave_a_cut_folds_mark_for_its_recount(mongo):
    db, _ = mongo
    store = GatewayStore(db)
    job = await insert_job(store.jobs, attempt=2, compacted_attempt=1, total=10, progress=0.0)
    try:
        who = ledger.mark_key(None)
        await ledger.mark(store, [job], who)  # an earlier fold was cut between its records and its counts
        stale = SampleAnnotated(job_id=job, attempt=1, task_id="t0", samples=[SampleOutcome(sample_id="s0", ok=True)])
        await fold.record_annotations(store, [stale])  # attempt 1 was compacted: it changes nothing
        assert (await store.jobs.find_one({"_id": job}))["recount_pending"] == {who: True}
        assert await store.ledger.count_documents({"job_id": job}) == 0
        fresh = SampleAnnotated(job_id=job, attempt=2, task_id="t1", samples=[SampleOutcome(sample_id="s1", ok=True)])
        await fold.record_annotations(store, [fresh])  # the next fold that counts recounts it, then clears the mark
        doc = await store.jobs.find_one({"_id": job})
        assert (doc["succeeded"], doc["failed"], doc.get("recount_pending")) == (1, 0, {}), doc
        # a job that was not marked before gets no mark left behind by such a batch
        await fold.record_annotations(store, [stale])
        assert (await store.jobs.find_one({"_id": job})).get("recount_pending") == {}
    finally:
        await store.jobs.delete_one({"_id": job})
        await store.ledger.delete_many({"job_id": job})
