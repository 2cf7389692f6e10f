"""The ledger fold's insert when MongoDB answers with errors: duplicate keys are records that exist
already (read and merged next, not counted now); anything else, a write concern error included
(a replica set that could not confirm the records, which may be rolled back), stops the fold before
anything is counted. The fold's exactness against a real MongoDB is in
tests/integration/test_ledger_fold.py."""

from collections import defaultdict
from typing import Any, cast

import pytest
from pymongo.errors import BulkWriteError

from modelhub_contracts.events import SampleAnnotated, SampleOutcome
from modelhub_gateway.progress import ledger
from modelhub_gateway.store import GatewayStore


class Ledger:
    def __init__(self, details: dict) -> None:
        self.details = details
        self.inserted: list[dict] = []

    async def insert_many(self, docs: list[dict], ordered: bool) -> None:
        self.inserted = docs
        raise BulkWriteError(self.details)


class Store:
    def __init__(self, details: dict) -> None:
        self.ledger = Ledger(details)


def event(n: int) -> SampleAnnotated:
    return SampleAnnotated(
        job_id="j", attempt=1, task_id="t", samples=[SampleOutcome(sample_id=f"s{i}", ok=True) for i in range(n)]
    )


async def test_a_write_concern_error_stops_the_fold_uncounted():
    details = {"writeErrors": [], "writeConcernErrors": [{"code": 64, "errmsg": "waiting for replication timed out"}]}
    counts: dict[str, list[int]] = {}
    store = Store(details)
    with pytest.raises(BulkWriteError):
        await ledger._insert(cast(Any, store), [{"_id": "j:t:0", "job_id": "j", "succeeded": 3, "failed": 0}], counts)
    assert counts == {}
    with pytest.raises(BulkWriteError):
        await ledger.fold(cast(GatewayStore, Store(details)), [event(3)])


async def test_an_error_other_than_a_duplicate_key_stops_the_fold():
    details = {"writeErrors": [{"index": 0, "code": 121, "errmsg": "Document failed validation"}]}
    with pytest.raises(BulkWriteError):
        await ledger.fold(cast(GatewayStore, Store(details)), [event(3)])


async def test_duplicate_keys_are_not_counted_and_come_back_to_be_merged():
    details = {"writeErrors": [{"index": 1, "code": ledger.DUPLICATE_KEY, "errmsg": "dup"}]}
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # as fold() keeps them
    docs = [{"_id": f"j:t{i}:0", "job_id": "j", "succeeded": 10 * i, "failed": i} for i in range(3)]
    lost = await ledger._insert(cast(Any, Store(details)), docs, counts)
    assert lost == {"j:t1:0"}
    assert dict(counts) == {"j": [20, 2]}  # t0's and t2's records counted; t1's exists already
