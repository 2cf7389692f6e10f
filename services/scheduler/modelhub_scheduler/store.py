"""What the scheduler reads and writes: a dataset's sample ids, jobs' status, and the task queue
(`modelhub_contracts.queue`: planned tasks, waiting or in flight, per job and deployment)."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, NamedTuple, Protocol

from pymongo import ASCENDING, InsertOne, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from modelhub_contracts import queue
from modelhub_contracts.documents import CLOSED, GONE, JobStatus
from modelhub_contracts.events import JobSubmitted, TaskScheduled
from modelhub_contracts.queue import TaskState

DUPLICATE_KEY = 11000
WINDOW_TTL = 10.0
UNBOUNDED = 1024  # the worker consumer's max_ack_pending
ORDER = [("attempt", ASCENDING), ("part", ASCENDING), ("index", ASCENDING)]
ID_BATCH = 5000  # sample ids read per round trip while planning


class PlanState(NamedTuple):
    """A job part's plan as stored: its document (None: never begun) and whether tasks are stored."""

    kept: dict[str, Any] | None
    tasks_stored: bool

    @property
    def planned(self) -> bool:
        return self.kept is not None and "num_tasks" in self.kept


def cancelled(job: dict[str, Any] | None) -> bool:
    """Whether a job's document says it takes no more tasks: gone, cancelled or being cancelled."""
    return job is None or job.get("status") == JobStatus.CANCELLED or bool(job.get("cancel_requested"))


def takes_no_tasks(job: dict[str, Any] | None, attempt: int) -> bool:
    """Whether planning a job (`job_state`'s document) at `attempt` would only hold window places:
    it is gone, cancelled or being cancelled, or completed at this very attempt (its tasks ran while
    a scheduler that crashed before recording its plan was planning it; the worker writes nothing
    more for it). A failed job, or one completed at an earlier attempt, is planned: a retry's
    JobSubmitted comes before the job is reopened for it."""
    if cancelled(job):
        return True
    return job is not None and job.get("status") in CLOSED and job.get("attempt") == attempt


class QueueStore(Protocol):
    """The queue operations the dispatcher needs (MongoDB here, a fake in unit tests)."""

    async def window(self, deployment: str) -> int: ...
    async def jobs_with_tasks(self, deployment: str) -> list[str]: ...
    async def closed_jobs(self, job_ids: list[str]) -> list[str]: ...
    async def drop_jobs(self, job_ids: list[str]) -> None: ...
    async def in_flight_by_job(self, deployment: str) -> dict[str, int]: ...
    async def jobs_waiting(self, deployment: str) -> list[str]: ...
    async def next_waiting(self, job_id: str, limit: int) -> list[TaskScheduled]: ...
    async def mark_in_flight(self, task_ids: list[str]) -> None: ...
    async def tasks_by_deployment(self) -> dict[str, int]: ...


class SchedulerStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.samples = db["samples"]
        self.jobs = db["jobs"]
        self.deployments = db["deployments"]
        self.tasks = db[queue.COLLECTION]
        self.plans = db["job_plans"]
        self._windows: dict[str, tuple[int, float]] = {}

    async def ensure_indexes(self) -> None:
        await self.tasks.create_index([("deployment", ASCENDING), ("state", ASCENDING), ("job_id", ASCENDING)])
        await self.tasks.create_index([("job_id", ASCENDING), ("state", ASCENDING), *ORDER])

    async def sample_ids(
        self, dataset: str, only: list[str] | None, until: str | None = None
    ) -> AsyncIterator[list[str]]:
        """Sample ids in insertion order, in lists of up to ID_BATCH: all of the dataset's up to
        `until` (the last sample when the job was submitted, so samples added later do not push the
        counts past the job's total), or just `only`. In lists: a batch at a time costs less CPU
        than one id at a time through the cursor."""
        query: dict = {"dataset": dataset}
        if only is not None:
            query["_id"] = {"$in": only}
        elif until is not None:
            query["_id"] = {"$lte": until}
        cursor = self.samples.find(query, projection={"_id": 1}, sort=[("_id", 1)], batch_size=ID_BATCH)
        while docs := await cursor.to_list(ID_BATCH):
            yield [doc["_id"] for doc in docs]

    async def is_cancelled(self, job_id: str) -> bool:
        return cancelled(await self.jobs.find_one({"_id": job_id}, projection={"status": 1, "cancel_requested": 1}))

    async def job_state(self, job_id: str) -> dict[str, Any] | None:
        """The job as planning reads it: its total, status, attempt and whether a cancel was asked."""
        return await self.jobs.find_one(
            {"_id": job_id}, projection={"total": 1, "status": 1, "attempt": 1, "cancel_requested": 1}
        )

    # ------------------------------------------------------------------ planning

    async def is_planned(self, plan_id: str) -> bool:
        return await self.plans.find_one({"_id": plan_id, "num_tasks": {"$exists": True}}) is not None

    async def plan_state(self, plan_id: str, job: JobSubmitted) -> PlanState:
        """The plan as kept, and whether tasks of it are stored, read at once."""
        kept, task = await asyncio.gather(
            self.plans.find_one({"_id": plan_id}, projection={"num_tasks": 1, "task_samples": 1}),
            self.tasks.find_one(
                {"job_id": job.job_id, "attempt": job.attempt, "part": job.part}, projection={"_id": 1}
            ),
        )
        return PlanState(kept, task is not None)

    async def task_samples(
        self, job: JobSubmitted, plan_id: str, proposed: int, smallest: int, state: PlanState | None = None
    ) -> int:
        """The plan's task size: `proposed` the first time it is planned, the same size when it is
        planned again after a crash (tasks already stored keep their samples, so the rest must be
        cut the same way). A plan with tasks stored but no size kept was begun by a scheduler from
        before tasks were sized by pace, which cut every task at `smallest`. `state`: the plan as
        plan_state read it (read here when not given)."""
        state = state if state is not None else await self.plan_state(plan_id, job)
        if state.kept is not None and state.kept.get("task_samples"):
            return int(state.kept["task_samples"])  # sized before: nothing to write
        if state.kept is None and state.tasks_stored:
            proposed = smallest
        doc = await self.plans.find_one_and_update(
            {"_id": plan_id},
            {"$setOnInsert": {"task_samples": proposed}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return int(doc.get("task_samples") or proposed) if doc else proposed

    async def generation(self, deployment: str) -> tuple | None:
        """What the deployment runs (its package, replicas, mini_batch, when it was created): its
        measured pace holds while this stays the same."""
        doc = await self.deployments.find_one(
            {"_id": deployment},
            projection={"package_sha256": 1, "num_replicas": 1, "max_replicas": 1, "mini_batch": 1, "created_at": 1},
        )
        if doc is None:
            return None
        keys = ("package_sha256", "num_replicas", "max_replicas", "mini_batch", "created_at")
        return tuple(doc.get(k) for k in keys)

    async def add_tasks(self, tasks: list[tuple[int, TaskScheduled]], part: int) -> None:
        """Store planned tasks (index in their job part, task) as waiting; a task already stored
        (a job planned again after a crash) is left as it is."""
        ops = [
            InsertOne(
                {
                    "_id": t.task_id,
                    "job_id": t.job_id,
                    "attempt": t.attempt,
                    "part": part,
                    "index": i,
                    "deployment": t.deployment,
                    "state": TaskState.WAITING.value,
                    "task": t.model_dump(mode="json"),
                }
            )
            for i, t in tasks
        ]
        try:
            await self.tasks.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            if any(e["code"] != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise

    async def planned(self, plan_id: str, job_id: str, tasks: int, samples: int) -> None:
        await self.plans.update_one(
            {"_id": plan_id}, {"$set": {"job_id": job_id, "num_tasks": tasks, "num_samples": samples}}, upsert=True
        )

    # ------------------------------------------------------------------ dispatching (QueueStore)

    async def window(self, deployment: str) -> int:
        """The deployment's window, read again at most every WINDOW_TTL seconds (it changes only
        with a redeploy, and a refill happens per finished task)."""
        cached = self._windows.get(deployment)
        if cached and time.monotonic() - cached[1] < WINDOW_TTL:
            return cached[0]
        doc = await self.deployments.find_one(
            {"_id": deployment}, projection={"num_replicas": 1, "max_replicas": 1, "status": 1}
        )
        if doc is None:
            # no such deployment (a job refused for it reads this too): its tasks go as a gone
            # one's do, and nothing is kept, since one of that name may be made next
            return UNBOUNDED
        if doc.get("status") in GONE:
            # nothing will run them: let every task go, to be failed by its dead letter in parallel
            # (a window would fail a big job's tasks a few at a time, each after its retries)
            size = UNBOUNDED
        else:
            # an autoscaled deployment gets the window of its most replicas (Serve adds them
            # only while calls wait, so a window of the starting count would never let it grow)
            size = queue.window(doc.get("max_replicas") or doc.get("num_replicas", 1))
        self._windows[deployment] = (size, time.monotonic())
        return size

    async def jobs_with_tasks(self, deployment: str) -> list[str]:
        return await self.tasks.distinct("job_id", {"deployment": deployment})

    async def closed_jobs(self, job_ids: list[str]) -> list[str]:
        """Jobs that take no more tasks: cancelled (or being cancelled), or gone."""
        open_ = {
            d["_id"]
            async for d in self.jobs.find(
                {"_id": {"$in": job_ids}, "status": {"$ne": JobStatus.CANCELLED}, "cancel_requested": {"$ne": True}},
                projection={"_id": 1},
            )
        }
        return [j for j in job_ids if j not in open_]

    async def drop_jobs(self, job_ids: list[str]) -> None:
        await self.tasks.delete_many({"job_id": {"$in": job_ids}})

    async def in_flight_by_job(self, deployment: str) -> dict[str, int]:
        rows = await self.tasks.aggregate(
            [
                {"$match": {"deployment": deployment, "state": TaskState.IN_FLIGHT.value}},
                {"$group": {"_id": "$job_id", "n": {"$sum": 1}}},
            ]
        )
        return {row["_id"]: row["n"] async for row in rows}

    async def jobs_waiting(self, deployment: str) -> list[str]:
        return await self.tasks.distinct("job_id", {"deployment": deployment, "state": TaskState.WAITING.value})

    async def next_waiting(self, job_id: str, limit: int) -> list[TaskScheduled]:
        cursor = self.tasks.find(
            {"job_id": job_id, "state": TaskState.WAITING.value}, projection={"task": 1}, sort=ORDER, limit=limit
        )
        return [TaskScheduled.model_validate(doc["task"]) async for doc in cursor]

    async def mark_in_flight(self, task_ids: list[str]) -> None:
        await self.tasks.update_many(
            {"_id": {"$in": task_ids}, "state": TaskState.WAITING.value}, {"$set": {"state": TaskState.IN_FLIGHT.value}}
        )

    async def finish(self, task_id: str) -> str | None:
        """Forget a task announced done; the deployment whose window this frees (None: already gone)."""
        doc = await self.tasks.find_one_and_delete({"_id": task_id}, projection={"deployment": 1})
        return doc["deployment"] if doc else None

    async def tasks_by_deployment(self) -> dict[str, int]:
        """Tasks left (waiting or in flight) of every deployment that has some, in one query."""
        return {d: sum(states.values()) for d, states in (await queue.counts_by_deployment(self.db)).items()}

    async def deployments_with_tasks(self) -> list[str]:
        return await self.tasks.distinct("deployment", {})
