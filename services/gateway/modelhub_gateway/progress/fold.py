"""The progress fold: SampleAnnotated, JobScheduled and JobRefused events into each job's counts
and status.

Counts are derived from the job ledger (`job_chunks`, one record per job, task and chunk with
its failed samples, see `ledger`), so a redelivered event cannot count a sample twice and
`succeeded + failed <= total` holds (a retry's outcomes that come before the retry reopened the
job wait for it: `ledger.BeforeReopen`). The bus's consumers (`bus.handlers`) call these; a
retry (`jobs.reopen`) recounts through `refresh_counts`.
"""

import asyncio

from modelhub_contracts.documents import OPEN, JobStatus
from modelhub_contracts.events import JobRefused, SampleAnnotated, utcnow
from modelhub_gateway.progress import history, ledger
from modelhub_gateway.store import GatewayStore


async def record_annotations(store: GatewayStore, events: list[SampleAnnotated], folder: str | None = None) -> None:
    """Fold a batch of SampleAnnotated events (each a task's outcomes) into the ledger and the
    counts of the jobs they touch, at a cost that grows with the batch, not with the jobs
    (`ledger`: a record per task chunk, inserted or read and written once, counts added from the
    records that changed).

    A success always wins over a failure; a failure never overwrites a success. A failure that a
    retry is running again is taken from its record (`retried`, not counted). A job whose counts say it is done, or
    whose earlier fold was interrupted between ledger and counts, is recounted from the ledger.
    Folds of the same job in one process run one at a time (folds of other jobs beside them), and
    the batches of a job that wait for its running fold are folded together next (ledger.together);
    several gateways (`--gateways N`) fold at once, each adding only the records it changed, and each
    marks its folds under its own name (`folder`).
    """
    by_job: dict[str, list[SampleAnnotated]] = {}
    for event in events:
        by_job.setdefault(event.job_id, []).append(event)

    async def fold_job(batch: list[SampleAnnotated]) -> None:
        await _record_annotations(store, batch, folder)

    results = await asyncio.gather(
        *(ledger.together(store, job_id, batch, fold_job, folder) for job_id, batch in by_job.items()),
        return_exceptions=True,
    )
    if errors := [r for r in results if isinstance(r, BaseException)]:
        raise errors[0]


async def _record_annotations(store: GatewayStore, events: list[SampleAnnotated], folder: str | None) -> None:
    who = ledger.mark_key(folder)
    # Each job is read and marked in one round trip (the fold's path had a read, then a mark, each
    # waited for in turn on every batch); `marked_before`: this gateway's earlier fold of the job
    # was cut between its records and its counts (its mark was still there): recounted instead.
    jobs_before = await ledger.mark_and_read(store, sorted({e.job_id for e in events}), who)
    early, now = [], []
    for event in events:
        job = jobs_before.get(event.job_id)
        if job is not None and event.attempt > job.get("attempt", 1):
            # a retry's outcomes that came before its reopen wait for it (the batch comes again;
            # its other events are folded now, and folded again they change nothing)
            early.append(event)
        elif history.outcome_still_counts(job, event.attempt):
            now.append(event)  # not: outcomes of a deleted job, or of an attempt compacted
    await _fold_marked(store, now, jobs_before, who, folder)
    if early:
        raise ledger.BeforeReopen(f"{len(early)} outcome events of a retry came before its job reopened; folded later")


async def _fold_marked(
    store: GatewayStore, events: list[SampleAnnotated], jobs_before: dict[str, dict], who: str, folder: str | None
) -> None:
    job_ids = sorted({e.job_id for e in events})
    # marked just now for nothing: unmarked again (a mark that was there already stays for its recount)
    marked_before = {j for j, doc in jobs_before.items() if (doc.get("recount_pending") or {}).get(who)}
    if unused := [j for j in jobs_before if j not in job_ids and j not in marked_before]:
        await asyncio.gather(*(ledger.unmark(store, j, who) for j in unused))
    if not job_ids:
        return
    changes = await ledger.fold(store, events)
    done = await asyncio.gather(
        *(_count_fold(store, j, changes.get(j, (0, 0)), j in marked_before, who, folder) for j in job_ids)
    )
    for job_id in (j for j, complete in zip(job_ids, done, strict=True) if complete):
        await refresh_counts(store, job_id, folder)  # done by the counts: complete it on the ledger's


async def recount_cut_folds(store: GatewayStore, folder: str | None) -> int:
    """At a gateway's start, before it consumes: every job still marked under its name was being
    folded by its previous run when that run died, between the records and the counts. Each is
    recounted from its ledger (and completed when every sample has an outcome) and unmarked.
    Without this a job could stall: when the other gateways folded all its remaining outcomes
    while this one restarted, the redelivered batch met its records (nothing to count) and no later
    fold of this gateway came to recount it, so its counts stayed behind its ledger for good.
    Returns how many jobs were recounted."""
    who = ledger.mark_key(folder)
    recounted = 0
    async for job in store.jobs.find({f"recount_pending.{who}": {"$exists": True}}, projection={"_id": 1}):
        async with ledger.one_at_a_time(store, [job["_id"]]):
            await _recount_cut_fold(store, job["_id"], who, folder)
        recounted += 1
    return recounted


async def _recount_cut_fold(store: GatewayStore, job_id: str, who: str, folder: str | None) -> None:
    """A fold of this gateway was cut between the job's records and its counts: recount the job from
    its ledger, then clear the gateway's mark."""
    await refresh_counts(store, job_id, folder)
    await ledger.unmark(store, job_id, who)


async def _count_fold(
    store: GatewayStore, job_id: str, change: tuple[int, int], interrupted: bool, who: str, folder: str | None
) -> bool:
    """Add a folded job's change to its counts (or recount it, when this gateway's earlier fold was
    cut between records and counts); True when its counts say it is done (to be completed on the ledger's)."""
    if interrupted:
        await _recount_cut_fold(store, job_id, who, folder)
        return False
    job = await ledger.add_counts(store, job_id, change, who, folder)
    return bool(job and job["succeeded"] + job["failed"] >= job["total"] and job["status"] in OPEN)


async def refused(store: GatewayStore, event: JobRefused) -> None:
    """The scheduler would not run the job's attempt (its acting user lacks the rights): it failed."""
    await store.jobs.update_one(
        {"_id": event.job_id, "attempt": event.attempt, "status": {"$in": list(OPEN)}},
        {"$set": {"status": JobStatus.FAILED, "error": event.reason, "finished_at": utcnow()}},
    )


async def refresh_counts(store: GatewayStore, job_id: str, folder: str | None = None) -> None:
    """Recount a job from its ledger and complete it when every sample has an outcome.

    Several gateways fold one job at once (`modelhub up --gateways N`): each recounts after its
    own ledger write, and a recount taken before another gateway's write may reach MongoDB after
    that gateway's newer one. So a recount is stored only if it is no older than what is stored:
    within an attempt a ledger only grows (a chunk gains its record, a failure turns into a
    success, never back), so the newer count has at least as many successes and outcomes. The job
    is read before the ledger, so a retry that reopened it in between (an older attempt's
    failures no longer count) makes the recount's `attempt` fence miss. `folder` names the
    gateway, kept in `folded_by` (which gateways folded this job).
    """
    job = await store.jobs.find_one({"_id": job_id})
    if job is None:
        return
    # a retried sample (taken from its older attempt's record) counts in neither
    ok, failed = await ledger.counted(store, job_id)
    succeeded = ok + job.get("compacted_succeeded", 0)
    done = succeeded + failed
    changes = {
        "succeeded": succeeded,
        "failed": failed,
        "counted_attempt": job["attempt"],
        "progress": round(done / job["total"], 6) if job["total"] else 1.0,
    }
    no_newer = {
        "$or": [
            {"counted_attempt": {"$ne": job["attempt"]}},
            {
                "$expr": {
                    "$and": [{"$lte": ["$succeeded", succeeded]}, {"$lte": [{"$add": ["$succeeded", "$failed"]}, done]}]
                }
            },
        ]
    }
    update: dict = {"$set": changes}
    if folder:
        update["$addToSet"] = {"folded_by": folder}
    await store.jobs.update_one({"_id": job_id, "attempt": job["attempt"], **no_newer}, update)
    # completion follows the stored counts, whichever gateway stored the last of them
    now = utcnow()
    await store.jobs.update_one(
        {
            "_id": job_id,
            "status": {"$in": list(OPEN)},
            "$expr": {"$gte": [{"$add": ["$succeeded", "$failed"]}, "$total"]},
        },
        [
            {
                "$set": {
                    "status": JobStatus.COMPLETED,
                    "finished_at": now,
                    "started_at": {"$ifNull": ["$started_at", now]},
                }
            }
        ],
    )


async def mark_started(store: GatewayStore, job_id: str) -> None:
    """The scheduler published the job's tasks: queued → running."""
    await store.jobs.update_one(
        {"_id": job_id, "status": JobStatus.QUEUED}, {"$set": {"status": JobStatus.RUNNING, "started_at": utcnow()}}
    )
