"""What the scheduler reads: a dataset's sample ids and whether a job was cancelled."""

from collections.abc import AsyncIterator

from pymongo.asynchronous.database import AsyncDatabase


class SchedulerStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.samples = db["samples"]
        self.jobs = db["jobs"]

    async def sample_ids(self, dataset: str, only: list[str] | None, until: str | None = None) -> AsyncIterator[str]:
        """Sample ids in insertion order: all of the dataset's up to `until` (the last sample when the
        job was submitted, so samples added later do not push the counts past the job's total),
        or just `only`."""
        query: dict = {"dataset": dataset}
        if only is not None:
            query["_id"] = {"$in": only}
        elif until is not None:
            query["_id"] = {"$lte": until}
        async for doc in self.samples.find(query, projection={"_id": 1}, sort=[("_id", 1)], batch_size=5000):
            yield doc["_id"]

    async def is_cancelled(self, job_id: str) -> bool:
        doc = await self.jobs.find_one({"_id": job_id}, projection={"status": 1, "cancel_requested": 1})
        return doc is None or doc["status"] == "cancelled" or bool(doc.get("cancel_requested"))
