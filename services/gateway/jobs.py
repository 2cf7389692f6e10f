"""Job use cases: submit, retry, cancel, and folding SampleAnnotated events into progress.

Counts are derived from a per-sample ledger (`job_samples`, one document per job and sample),
never incremented, so a redelivered event cannot count a sample twice and
`succeeded + failed <= total` always holds.
"""

import uuid

from fastapi import HTTPException
from pymongo import UpdateOne

from modelhub_contracts.events import JobSubmitted, SampleAnnotated, utcnow
from modelhub_contracts.model_schema import check_field_name, input_types, output_types

from modelhub_gateway.store import GatewayStore

TERMINAL = ("completed", "failed", "cancelled")


def resolve_inputs(schema: dict, mapping: dict[str, str]) -> dict[str, str]:
    """Model input -> sample field. A `local` input defaults to the sample's filepath, others to
    the field of the same name."""
    types = input_types(schema)
    unknown = sorted(set(mapping) - set(types))
    if unknown:
        raise HTTPException(422, f"inputs not in the model schema: {', '.join(unknown)}")
    resolved = {name: mapping.get(name, "filepath" if kind == "local" else name) for name, kind in types.items()}
    for field in resolved.values():
        if field != "filepath" and (problem := check_field_name(field)):
            raise HTTPException(422, f"input field '{field}': {problem}")
    return resolved


def check_outputs(schema: dict, mapping: dict[str, str]) -> dict[str, str]:
    """Model output -> its declared type, for the outputs the job maps; 422 on any bad name."""
    types = output_types(schema)
    unknown = sorted(set(mapping) - set(types))
    if unknown:
        raise HTTPException(422, f"outputs not in the model schema: {', '.join(unknown)} "
                                 f"(it declares: {', '.join(sorted(types))})")
    for field in mapping.values():
        if problem := check_field_name(field):
            raise HTTPException(422, f"output field '{field}': {problem}")
    if len(set(mapping.values())) != len(mapping):
        raise HTTPException(422, "two outputs are mapped to the same field")
    return {name: types[name] for name in mapping}


def new_job(dataset: str, deployment: dict, inputs: dict, outputs: dict, total: int, user: str) -> dict:
    now = utcnow()
    done = total == 0
    return {"_id": uuid.uuid4().hex, "dataset": dataset, "deployment": deployment["_id"],
            "model": deployment["model"], "version": deployment["version"], "inputs": inputs,
            "outputs": outputs, "status": "completed" if done else "queued", "attempt": 1, "total": total,
            "succeeded": 0, "failed": 0, "progress": 1.0 if done else 0.0, "error": None, "created_by": user,
            "owner": user, "created_at": now, "started_at": now if done else None,
            "finished_at": now if done else None}


def submitted_event(job: dict, output_types_: dict, mini_batch: int, sample_ids: list[str] | None) -> JobSubmitted:
    return JobSubmitted(
        event_id=f"{job['_id']}.{job['attempt']}", job_id=job["_id"], attempt=job["attempt"],
        dataset=job["dataset"], deployment=job["deployment"], inputs=job["inputs"], outputs=job["outputs"],
        output_types=output_types_, mini_batch=mini_batch, sample_ids=sample_ids, submitted_by=job["created_by"])


async def prepare_retry(store: GatewayStore, job: dict) -> list[str]:
    """Forget the failed samples' outcomes and reopen the job; returns the samples to run again."""
    if job["status"] not in TERMINAL:
        raise HTTPException(409, f"job is {job['status']}; retry it once it has ended")
    failed = [d["sample_id"] async for d in store.ledger.find({"job_id": job["_id"], "ok": False})]
    if not failed:
        raise HTTPException(409, "the job has no failed samples to retry")
    await store.ledger.delete_many({"job_id": job["_id"], "ok": False})
    await store.jobs.update_one({"_id": job["_id"]}, {
        "$inc": {"attempt": 1},
        "$set": {"status": "queued", "failed": 0, "finished_at": None, "error": None}})
    return failed


async def record_annotations(store: GatewayStore, events: list[SampleAnnotated]) -> None:
    """Fold a batch of SampleAnnotated events into the ledger, then recount the jobs they touch.

    A success always wins over a failure; a failure never overwrites a success.
    """
    ops = []
    for e in events:
        key = {"_id": f"{e.job_id}:{e.sample_id}"}
        base = {"job_id": e.job_id, "sample_id": e.sample_id}
        if e.ok:
            ops.append(UpdateOne(key, {"$set": {**base, "ok": True, "error": None}}, upsert=True))
        else:
            ops.append(UpdateOne(key, {"$setOnInsert": {**base, "ok": False, "error": e.error}}, upsert=True))
    if ops:
        await store.ledger.bulk_write(ops, ordered=False)
    for job_id in {e.job_id for e in events}:
        await refresh_counts(store, job_id)


async def refresh_counts(store: GatewayStore, job_id: str) -> None:
    """Recount a job from its ledger and complete it when every sample has an outcome."""
    counts = {True: 0, False: 0}
    async for row in await store.ledger.aggregate([{"$match": {"job_id": job_id}},
                                                   {"$group": {"_id": "$ok", "n": {"$sum": 1}}}]):
        counts[bool(row["_id"])] = row["n"]
    job = await store.jobs.find_one({"_id": job_id})
    if job is None:
        return
    done = counts[True] + counts[False]
    changes = {"succeeded": counts[True], "failed": counts[False],
               "progress": round(done / job["total"], 6) if job["total"] else 1.0}
    if done >= job["total"] and job["status"] in ("queued", "running"):
        now = utcnow()
        changes.update(status="completed", finished_at=now, started_at=job.get("started_at") or now)
    await store.jobs.update_one({"_id": job_id}, {"$set": changes})


async def mark_started(store: GatewayStore, job_id: str) -> None:
    """The scheduler published the job's tasks: queued → running."""
    await store.jobs.update_one({"_id": job_id, "status": "queued"},
                                {"$set": {"status": "running", "started_at": utcnow()}})
