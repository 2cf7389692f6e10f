"""The ledger's merge rules, a record per task chunk: a redelivered chunk counts nothing, a success
always wins over a failure, a retry takes its samples' failures away (a late outcome of the older
attempt then changes nothing, the retry's newer failure is the one listed), and two folds of the
same chunk at once count it once. Against an in-memory collection that answers the fold's few
commands as MongoDB does (duplicate keys, updates conditional on the state read); the same rules
against a real MongoDB are in tests/integration/test_ledger.py and test_ledger_fold.py."""

import asyncio
from dataclasses import dataclass
from typing import Any, cast

from pymongo.errors import BulkWriteError

from modelhub_contracts.events import SampleAnnotated, SampleOutcome
from modelhub_gateway.progress import ledger
from modelhub_gateway.store import GatewayStore


@dataclass
class Updated:
    modified_count: int


class Collection:
    """The ledger's commands the fold sends, each answered after a yield to the event loop (so
    that concurrent folds interleave between their read and their write, as over a network)."""

    def __init__(self) -> None:
        self.docs: dict[str, dict] = {}

    async def insert_many(self, docs: list[dict], ordered: bool) -> None:
        await asyncio.sleep(0)
        errors = []
        for i, doc in enumerate(docs):
            if doc["_id"] in self.docs:
                errors.append({"index": i, "code": ledger.DUPLICATE_KEY, "errmsg": "dup"})
            else:
                self.docs[doc["_id"]] = {**doc, "failures": list(doc["failures"])}
        if errors:
            raise BulkWriteError({"writeErrors": errors})

    async def find(self, query: dict, projection: dict):
        await asyncio.sleep(0)
        for key in query["_id"]["$in"]:
            if key in self.docs:
                yield {k: v for k, v in self.docs[key].items() if k == "_id" or k in projection}

    async def update_one(self, query: dict, update: dict) -> Updated:
        await asyncio.sleep(0)
        doc = self.docs.get(query["_id"])
        if doc is None or doc["failed"] != query["failed"]:
            return Updated(0)
        doc.update(update["$set"])
        doc["succeeded"] += update["$inc"]["succeeded"]
        return Updated(1)

    def take_for_retry(self, job_id: str, attempt: int) -> None:
        """What ledger.take_for_retry's update does to each record it matches."""
        for doc in self.docs.values():
            if doc["job_id"] == job_id and doc["attempt"] < attempt and doc["failed"] > 0:
                doc["retried"] = doc.get("retried", []) + [f["sample_id"] for f in doc["failures"]]
                doc["failures"], doc["failed"] = [], 0

    def counted(self, job_id: str) -> tuple[int, int]:
        """What ledger.counted sums."""
        mine = [d for d in self.docs.values() if d["job_id"] == job_id]
        return sum(d["succeeded"] for d in mine), sum(d["failed"] for d in mine)

    def failures(self) -> dict[str, str | None]:
        return {f["sample_id"]: f["error"] for d in self.docs.values() for f in d["failures"]}


class Store:
    def __init__(self) -> None:
        self.ledger = Collection()


def chunk(
    samples: dict[str, bool], task: str = "j.1.0", attempt: int = 1, number: int = 0, error: str = "boom"
) -> SampleAnnotated:
    return SampleAnnotated(
        job_id="j",
        attempt=attempt,
        task_id=task,
        chunk=number,
        samples=[SampleOutcome(sample_id=s, ok=ok, error=None if ok else error) for s, ok in samples.items()],
    )


async def fold(store: Store, *events: SampleAnnotated) -> tuple[int, int]:
    return (await ledger.fold(cast(GatewayStore, store), list(events))).get("j", (0, 0))


ABC_FAILS = {"a": True, "b": False, "c": False}


async def test_a_first_delivery_counts_its_chunk_and_keeps_only_its_failures():
    store = Store()
    assert await fold(store, chunk(ABC_FAILS), chunk({"d": True}, number=1)) == (2, 2)
    assert len(store.ledger.docs) == 2  # a record per chunk, not per sample
    record = store.ledger.docs["j:j.1.0:0"]
    assert (record["succeeded"], record["failed"], record["samples"]) == (1, 2, 3)
    assert store.ledger.failures() == {"b": "boom", "c": "boom"}


async def test_a_redelivered_chunk_counts_nothing():
    store = Store()
    await fold(store, chunk(ABC_FAILS))
    assert await fold(store, chunk(ABC_FAILS)) == (0, 0)
    assert await fold(store, chunk(ABC_FAILS), chunk(ABC_FAILS)) == (0, 0)
    assert store.ledger.counted("j") == (1, 2)


async def test_a_chunk_twice_in_one_batch_counts_once_its_success_winning():
    store = Store()
    assert await fold(store, chunk(ABC_FAILS), chunk({"a": False, "b": True, "c": False})) == (2, 1)
    assert store.ledger.failures() == {"c": "boom"}


async def test_a_success_always_wins():
    store = Store()
    await fold(store, chunk(ABC_FAILS))
    # the task ran again (another worker) and b succeeded: b moves from failed to succeeded
    assert await fold(store, chunk({"a": True, "b": True, "c": False})) == (1, -1)
    # a stale copy of the first run arrives again: the success stays, nothing counts
    assert await fold(store, chunk(ABC_FAILS)) == (0, 0)
    assert await fold(store, chunk({"a": False, "b": False, "c": False})) == (0, 0)
    assert store.ledger.counted("j") == (2, 1)
    assert store.ledger.failures() == {"c": "boom"}


async def test_a_retry_takes_failures_away_and_its_newer_failure_is_the_one_listed():
    store = Store()
    await fold(store, chunk(ABC_FAILS))
    store.ledger.take_for_retry("j", attempt=2)
    assert store.ledger.counted("j") == (1, 0)
    assert store.ledger.failures() == {}
    # a late outcome of attempt 1, success or failure, changes nothing: the retry owns b and c
    assert await fold(store, chunk({"a": True, "b": True, "c": True})) == (0, 0)
    # the retry's task: c succeeds, b fails again, with its newer error
    assert await fold(store, chunk({"b": False, "c": True}, task="j.2.p0", attempt=2, error="again")) == (1, 1)
    assert store.ledger.counted("j") == (2, 1)
    assert store.ledger.failures() == {"b": "again"}
    # a second retry takes attempt 2's failure; attempt 1's record is left as it is
    store.ledger.take_for_retry("j", attempt=3)
    assert store.ledger.counted("j") == (2, 0)
    assert store.ledger.docs["j:j.1.0:0"]["retried"] == ["b", "c"]


async def test_two_gateways_folding_the_same_chunk_at_once_count_it_once():
    for copies in (2, 3, 5):
        store = Store()
        await fold(store, chunk(ABC_FAILS))
        # the same success folded by several folds at once: each reads the record with b and c
        # failed, one writes it, the others' writes miss, read it again and find nothing to do
        wins = chunk({"a": True, "b": True, "c": True})
        changes = await asyncio.gather(*(fold(store, wins) for _ in range(copies)))
        assert sorted(changes) == [(0, 0)] * (copies - 1) + [(2, -2)]
        assert store.ledger.counted("j") == (3, 0)


async def test_first_deliveries_of_one_chunk_racing_count_once():
    store = Store()
    changes = await asyncio.gather(
        fold(store, chunk(ABC_FAILS)), fold(store, chunk({"a": True, "b": True, "c": False}))
    )
    assert sum(s for s, _ in changes) == 2 and sum(f for _, f in changes) == 1
    assert store.ledger.counted("j") == (2, 1)


def test_the_adopted_rows_of_an_older_hub_keep_their_counts():
    rows = [
        {"sample_id": "a", "ok": True, "attempt": 1},
        {"sample_id": "b", "ok": False, "attempt": 2, "error": "boom"},
        {"sample_id": "c", "ok": None, "attempt": 2},
    ]
    record = ledger._adopted("j", 0, cast(Any, rows))
    assert (record["_id"], record["attempt"], record["samples"]) == ("j:rows:0", 2, 3)
    assert (record["succeeded"], record["failed"], record["retried"]) == (1, 1, ["c"])
    assert record["failures"] == [{"sample_id": "b", "error": "boom"}]
