"""Bounded history: a job's ledger (a record per task chunk) is what keeps its counts exact while
it runs; once the job has ended and nothing more can arrive for it, only the failures are worth
keeping (the Execution tab lists them, a retry runs them again). Compaction turns the records
without a failure into one count on the job (`compacted_succeeded`) and deletes them, so storage
grows with the chunks that hold failures, not with every task ever run. The job's record stays.

Why it is exact:
- Only jobs that ended `SETTLE_SECONDS` ago are compacted: by then every redelivery of an outcome
  (ack wait 30 s, dead letters after a few minutes, JetStream's 2-minute duplicate window) is over.
- The fold drops any outcome of a compacted attempt (`outcome_still_counts`): a late success
  cannot count twice, a late failure cannot land on a sample whose success became a number.
- The steps can be interrupted anywhere and repeated: the count is fixed first (`compacting`,
  set once, by whichever gateway gets there first), then records are deleted, then the count is
  published and the marker removed.
"""

import asyncio
import logging
from datetime import timedelta

from modelhub_contracts.documents import TERMINAL
from modelhub_contracts.events import utcnow
from modelhub_gateway.progress import ledger
from modelhub_gateway.store import GatewayStore

log = logging.getLogger(__name__)

ENDED = list(TERMINAL)
SETTLE_SECONDS = 600.0
SWEEP_SECONDS = 60.0


def outcome_still_counts(job: dict | None, attempt: int) -> bool:
    """Whether an outcome of `attempt` may still be folded into this job's ledger (no: the job is
    gone, or that attempt has been compacted or is being compacted)."""
    if job is None:
        return False
    compacting = job.get("compacting")
    done = max(job.get("compacted_attempt", 0), compacting["attempt"] if compacting else 0)
    return attempt > done


async def compact_ended_jobs(store: GatewayStore, settle_seconds: float = SETTLE_SECONDS) -> int:
    """Compact every job that ended more than `settle_seconds` ago and is not compacted yet for
    its current attempt; returns how many were compacted."""
    cutoff = utcnow() - timedelta(seconds=settle_seconds)
    query = {
        "status": {"$in": ENDED},
        "finished_at": {"$lt": cutoff},
        "$expr": {"$ne": [{"$ifNull": ["$compacted_attempt", 0]}, "$attempt"]},
    }
    done = 0
    async for job in store.jobs.find(query, projection={"attempt": 1}):
        await compact(store, job["_id"], job["attempt"])
        done += 1
    return done


async def compact(store: GatewayStore, job_id: str, attempt: int) -> None:
    """Turn the job's ledger records without failures (of attempts up to `attempt`) into its
    `compacted_succeeded`."""
    job = await store.jobs.find_one({"_id": job_id})
    if job is None or job.get("compacted_attempt", 0) >= attempt:
        return
    if not job.get("compacting"):
        succeeded, _ = await ledger.summed(store, _settled(job_id, attempt))
        await store.jobs.update_one(
            {"_id": job_id, "compacting": {"$exists": False}},
            {"$set": {"compacting": {"attempt": attempt, "succeeded": job.get("compacted_succeeded", 0) + succeeded}}},
        )
        job = await store.jobs.find_one({"_id": job_id})  # whichever gateway set it first, its count
        if job is None:  # deleted with its dataset meanwhile
            return
    compacting = job["compacting"]
    await store.ledger.delete_many(_settled(job_id, compacting["attempt"]))
    await store.jobs.update_one(
        {"_id": job_id},
        {
            "$set": {"compacted_succeeded": compacting["succeeded"], "compacted_attempt": compacting["attempt"]},
            "$unset": {"compacting": ""},
        },
    )


def _settled(job_id: str, attempt: int) -> dict:
    """The job's ledger records that compaction turns into a count: those of attempts up to
    `attempt` without a failure (a record with failures keeps its own count of successes)."""
    return {"job_id": job_id, "attempt": {"$lte": attempt}, "failed": 0}


async def sweep_forever(
    store: GatewayStore, every: float = SWEEP_SECONDS, settle_seconds: float = SETTLE_SECONDS
) -> None:
    """The gateway's background sweep: compact what has settled, every `every` seconds."""
    while True:
        try:
            if compacted := await compact_ended_jobs(store, settle_seconds):
                log.info("history: compacted %d ended jobs", compacted)
        except Exception:  # MongoDB away: try again at the next sweep
            log.warning("history: sweep failed; trying again in %.0f s", every, exc_info=True)
        await asyncio.sleep(every)
