"""The job task queue: a shared document the scheduler owns and the gateway reads.

The scheduler plans every job into tasks stored here (`job_tasks`, one document per task), and
keeps only a bounded window of each deployment's tasks in flight on NATS: `waiting` tasks are
planned but not yet published, `in_flight` ones are published and not yet announced done. A task
announced done (its last SampleAnnotated) is deleted. So the queue of a deployment and of a job
is two counts over this collection, and the scheduler's state survives a kill -9: it is all in
MongoDB and JetStream.
"""

from enum import StrEnum

from pymongo.asynchronous.database import AsyncDatabase

COLLECTION = "job_tasks"


class TaskState(StrEnum):
    WAITING = "waiting"
    IN_FLIGHT = "in_flight"


# A deployment's window: TASKS_PER_REPLICA tasks per replica, within WINDOW_MIN..WINDOW_MAX.
TASKS_PER_REPLICA = 2
WINDOW_MIN = 4
WINDOW_MAX = 32


def window(num_replicas: int) -> int:
    """Tasks of one deployment in flight at once, shared round-robin by its running jobs: enough
    to keep every replica busy while finished tasks are replaced, few enough that another job's
    task is never queued behind many. A task is 8 whole mini-batches and up to 512 samples, or
    about 0.25 s of a fast deployment's measured pace (the scheduler's pace.py; its Model.predict
    calls run at once), so two per replica keep replicas fed while the next task is on its way,
    and a job on the same deployment waits behind at most a few tasks."""
    return max(WINDOW_MIN, min(WINDOW_MAX, TASKS_PER_REPLICA * max(1, num_replicas)))


async def counts(db: AsyncDatabase, match: dict) -> dict[str, int]:
    """{"waiting": n, "in_flight": m} over the tasks matching `match` (a job or a deployment)."""
    result = {state.value: 0 for state in TaskState}
    async for row in await db[COLLECTION].aggregate(
        [{"$match": match}, {"$group": {"_id": "$state", "n": {"$sum": 1}}}]
    ):
        if row["_id"] in result:
            result[row["_id"]] = row["n"]
    return result


async def counts_by_deployment(db: AsyncDatabase) -> dict[str, dict[str, int]]:
    """counts() of every deployment that has tasks, in one query (the scheduler's gauges)."""
    result: dict[str, dict[str, int]] = {}
    async for row in await db[COLLECTION].aggregate(
        [{"$group": {"_id": {"deployment": "$deployment", "state": "$state"}, "n": {"$sum": 1}}}]
    ):
        per = result.setdefault(row["_id"]["deployment"], {state.value: 0 for state in TaskState})
        if row["_id"]["state"] in per:
            per[row["_id"]["state"]] = row["n"]
    return result


async def counts_by_job(db: AsyncDatabase, job_ids: list[str]) -> dict[str, dict[str, int]]:
    """counts() for several jobs in one query."""
    result = {job_id: {state.value: 0 for state in TaskState} for job_id in job_ids}
    async for row in await db[COLLECTION].aggregate(
        [
            {"$match": {"job_id": {"$in": job_ids}}},
            {"$group": {"_id": {"job": "$job_id", "state": "$state"}, "n": {"$sum": 1}}},
        ]
    ):
        job, state = row["_id"]["job"], row["_id"]["state"]
        if job in result and state in result[job]:
            result[job][state] = row["n"]
    return result
