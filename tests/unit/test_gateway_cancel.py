"""Cancel waits for the workers' write leases before it reports `cancelled`."""

import asyncio
from types import SimpleNamespace
from typing import Any

from modelhub_gateway import jobs


class FakeJobs:
    """Just enough of a collection: one job document, `$set`/`$inc`, and a `$nin` status filter."""

    def __init__(self, doc: dict) -> None:
        self.doc, self.history = doc, []

    def _matches(self, query: dict) -> bool:
        status = query.get("status")
        return query["_id"] == self.doc["_id"] and not (
            isinstance(status, dict) and self.doc["status"] in status["$nin"]
        )

    async def update_one(self, query, update):
        matched = self._matches(query)
        if matched:
            self.doc.update(update.get("$set", {}))
            for key, n in update.get("$inc", {}).items():
                self.doc[key] = self.doc.get(key, 0) + n
            self.history.append(dict(self.doc))
        return SimpleNamespace(matched_count=int(matched))

    async def find_one(self, query, projection=None):
        return dict(self.doc) if self._matches(query) else None


def store_with(**job) -> Any:
    """A stand-in for GatewayStore with just its `jobs` collection."""
    return SimpleNamespace(jobs=FakeJobs({"_id": "j", "status": "running", **job}))


async def test_cancelled_is_set_only_after_every_held_lease_is_released():
    store, announced = store_with(active_writes=2), []

    async def announce():
        announced.append(store.jobs.doc["cancel_requested"])

    async def workers_finish():
        for _ in range(2):
            await asyncio.sleep(0.1)
            assert store.jobs.doc["status"] == "running", "cancelled while a write was in flight"
            await store.jobs.update_one({"_id": "j"}, {"$inc": {"active_writes": -1}})

    await asyncio.gather(jobs.cancel(store, "j", announce), workers_finish())
    assert announced == [True]  # the cancel was requested (leases refused) before it was announced
    assert store.jobs.doc["status"] == "cancelled" and store.jobs.doc["active_writes"] == 0
    assert store.jobs.doc["finished_at"] is not None


async def test_a_lease_that_never_returns_delays_the_cancel_only_up_to_the_bound():
    store = store_with(active_writes=1)  # a worker killed while holding it

    async def announce():
        pass

    await asyncio.wait_for(jobs.cancel(store, "j", announce, drain_seconds=0.2), 5)
    assert store.jobs.doc["status"] == "cancelled"


async def test_a_job_that_already_ended_is_left_as_it_is():
    store, announced = store_with(status="completed"), []

    async def announce():
        announced.append(True)

    await jobs.cancel(store, "j", announce)
    assert store.jobs.doc["status"] == "completed" and announced == [] and store.jobs.history == []
