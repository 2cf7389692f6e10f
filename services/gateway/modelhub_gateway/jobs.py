"""Job use cases: submit, retry, cancel, and a job as the API shows it.

`submit_job`, `retry_job` and `cancel_job` are what the HTTP routes and the external commands call:
they check, store and publish (through a `Publish` callable, as the deployment use cases do) and
raise domain errors. How outcomes become a job's counts is `progress.fold`.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from modelhub_contracts import queue, subjects
from modelhub_contracts.documents import (
    TERMINAL,
    Dataset,
    Deployment,
    DeploymentStatus,
    Job,
    JobStatus,
    Only,
    User,
)
from modelhub_contracts.errors import Conflict, Invalid
from modelhub_contracts.events import JobCancelled, JobSubmitted, utcnow
from modelhub_contracts.model_schema import check_field_name, input_types, output_types
from modelhub_gateway import deployments, incremental, observability
from modelhub_gateway.deployments import Publish
from modelhub_gateway.progress import fold, ledger
from modelhub_gateway.schemas import JobCreate, JobPublic
from modelhub_gateway.store import GatewayStore
from modelhub_runtime.telemetry import current_traceparent

log = logging.getLogger(__name__)

# How long a cancel waits for the workers' in-flight writes (each a single bulk write and a few
# publishes, so milliseconds) before it reports cancelled anyway.
CANCEL_DRAIN_SECONDS = 30.0
CANCEL_POLL_SECONDS = 0.05


def public(doc: Mapping[str, Any], queue_: dict | None = None) -> JobPublic:
    """A job as the API shows it, over HTTP and to an external command alike."""
    return JobPublic.model_validate({**doc, "id": doc["_id"], "queue": queue_ or {}})


async def with_queue(store: GatewayStore, doc: Mapping[str, Any]) -> JobPublic:
    """The job with its queue: its tasks waiting and in flight (the scheduler's task queue). An
    ended job has none: tasks the scheduler has yet to clear are not the user's concern."""
    if doc["status"] in TERMINAL:
        return public(doc)
    return public(doc, await queue.counts(store.db, {"job_id": doc["_id"]}))


async def states(store: GatewayStore, job_id: str, poll_seconds: float) -> AsyncIterator[JobPublic]:
    """The job as the API shows it: now, then each time it changes (read every `poll_seconds`),
    until it ends or is deleted (with its dataset)."""
    last = None
    while (doc := await store.job(job_id)) is not None:
        state = await with_queue(store, doc)
        if state != last:
            yield state
            last = state
        if doc["status"] in TERMINAL:
            return
        await asyncio.sleep(poll_seconds)


async def runnable_deployment(store: GatewayStore, user: User, name: str) -> Deployment:
    """The deployment a job would run on: the caller may run its model (NotFound / Forbidden
    otherwise) and it is running (Invalid otherwise)."""
    deployment = await deployments.visible_deployment(store, user, name, need="run")
    if deployment["status"] != DeploymentStatus.RUNNING:
        raise Invalid(f"deployment '{name}' is {deployment['status']}, not running")
    return deployment


async def version_schema(store: GatewayStore, deployment: Deployment) -> dict:
    """The model schema of the version the deployment runs; Invalid when that version was deleted."""
    version = await store.version(deployment["model"], deployment["version"])
    if version is None:
        raise Invalid(f"model '{deployment['model']}' version {deployment['version']} no longer exists")
    return version["schema"]


async def submit_job(store: GatewayStore, publish: Publish, user: User, dataset: Dataset, body: JobCreate) -> Job:
    """Run a running deployment over the samples in the dataset now (all of them, or those `only`
    selects: incremental.py): checked (the mapping against the version's schema) before anything
    is stored, then stored and handed to the scheduler. Nothing to run: completed at once."""
    deployment = await runnable_deployment(store, user, body.deployment)
    schema = await version_schema(store, deployment)
    output_types_ = check_outputs(schema, body.outputs)
    inputs = resolve_inputs(schema, body.inputs)
    until, every = await store.samples_now(dataset["_id"])  # the job covers the samples there now
    fields, only = list(body.outputs.values()), Only(body.only)
    chosen = await incremental.select(store, dataset["_id"], until, every, deployment, fields, only)
    job = new_job(dataset["_id"], deployment, inputs, body.outputs, chosen.total, user["username"], until, only)
    observability.submitted(job)
    await store.insert_job(job)
    store.index_writers(fields)
    mini_batch = deployment["mini_batch"]
    if chosen.sample_ids is None and chosen.total:
        await publish(subjects.JOB_SUBMITTED, submitted_event(job, output_types_, mini_batch))
    for part, ids in enumerate(id_parts(chosen.sample_ids or [])):
        await publish(subjects.JOB_SUBMITTED, submitted_event(job, output_types_, mini_batch, ids, part=part))
    return job


async def retry_job(store: GatewayStore, publish: Publish, user: User, job: Job) -> None:
    """Run the job's failed samples again, as a new attempt of the same job (Conflict while it
    runs, after a cancel, or with nothing failed)."""
    deployment = await runnable_deployment(store, user, job["deployment"])
    failed = await failed_samples(store, job)
    schema = await version_schema(store, deployment)
    events = retry_events(job, check_outputs(schema, job["outputs"]), deployment["mini_batch"], failed)
    for event in events:
        await publish(subjects.JOB_SUBMITTED, event)
    await reopen(store, job, events[0].attempt)


async def cancel_job(store: GatewayStore, publish: Publish, user: User, job: Job) -> None:
    """Stop a job (Conflict once it completed; a job already cancelled or failed stays as it is)."""
    if job["status"] == JobStatus.COMPLETED:
        raise Conflict("the job has already completed")
    if job["status"] not in TERMINAL:
        announce = JobCancelled(job_id=job["_id"], requested_by=user["username"])
        await cancel(store, job["_id"], lambda: publish(subjects.JOB_CANCELLED, announce))


def resolve_inputs(schema: dict, mapping: dict[str, str]) -> dict[str, str]:
    """Model input -> sample field. A `local` input defaults to the sample's filepath, others to
    the field of the same name."""
    types = input_types(schema)
    unknown = sorted(set(mapping) - set(types))
    if unknown:
        raise Invalid(f"inputs not in the model schema: {', '.join(unknown)}")
    resolved = {name: mapping.get(name, "filepath" if kind == "local" else name) for name, kind in types.items()}
    for field in resolved.values():
        if field != "filepath" and (problem := check_field_name(field)):
            raise Invalid(f"input field '{field}': {problem}")
    return resolved


def check_outputs(schema: dict, mapping: dict[str, str]) -> dict[str, str]:
    """Model output -> its declared type, for the outputs the job maps; 422 on any bad name."""
    types = output_types(schema)
    unknown = sorted(set(mapping) - set(types))
    if unknown:
        raise Invalid(
            f"outputs not in the model schema: {', '.join(unknown)} (it declares: {', '.join(sorted(types))})"
        )
    for field in mapping.values():
        if problem := check_field_name(field):
            raise Invalid(f"output field '{field}': {problem}")
    if len(set(mapping.values())) != len(mapping):
        raise Invalid("two outputs are mapped to the same field")
    return {name: types[name] for name in mapping}


def new_job(
    dataset: str,
    deployment: Deployment,
    inputs: dict,
    outputs: dict,
    total: int,
    user: str,
    until_sample_id: str | None,
    only: Only = Only.ALL,
) -> Job:
    now = utcnow()
    done = total == 0
    return {
        "_id": uuid.uuid4().hex,
        "dataset": dataset,
        "until_sample_id": until_sample_id,
        "deployment": deployment["_id"],
        "model": deployment["model"],
        "version": deployment["version"],
        "inputs": inputs,
        "outputs": outputs,
        "only": only,
        "status": JobStatus.COMPLETED if done else JobStatus.QUEUED,
        "attempt": 1,
        "total": total,
        "succeeded": 0,
        "failed": 0,
        "progress": 1.0 if done else 0.0,
        "error": None,
        "created_by": user,
        "owner": user,
        "created_at": now,
        "started_at": now if done else None,
        "finished_at": now if done else None,
    }


# Sample ids (a retry's failed ones, an incremental run's selection) ride in JobSubmitted events;
# parts keep each under NATS's 1 MiB payload.
ID_PART_SIZE = 10_000


def id_parts(sample_ids: list[str]) -> list[list[str]]:
    return [sample_ids[i : i + ID_PART_SIZE] for i in range(0, len(sample_ids), ID_PART_SIZE)]


def submitted_event(
    job: Job,
    output_types_: dict,
    mini_batch: int,
    sample_ids: list[str] | None = None,
    attempt: int | None = None,
    part: int = 0,
) -> JobSubmitted:
    attempt = attempt or job["attempt"]
    return JobSubmitted(
        event_id=f"{job['_id']}.{attempt}" + (f".p{part}" if part else ""),
        job_id=job["_id"],
        attempt=attempt,
        dataset=job["dataset"],
        deployment=job["deployment"],
        inputs=job["inputs"],
        outputs=job["outputs"],
        output_types=output_types_,
        mini_batch=mini_batch,
        sample_ids=sample_ids,
        submitted_by=job["created_by"],
        until_sample_id=job.get("until_sample_id"),
        part=part,
        traceparent=current_traceparent(),
    )


async def failed_samples(store: GatewayStore, job: Job) -> list[str]:
    """The samples a retry runs again; 409 while the job runs, after a cancel, or with none failed."""
    if job["status"] == JobStatus.CANCELLED:
        raise Conflict("a cancelled job cannot be retried; submit a new job")
    if job["status"] not in TERMINAL:
        raise Conflict(f"job is {job['status']}; retry it once it has ended")
    failed = await store.failed_sample_ids(job["_id"])
    if not failed:
        raise Conflict("the job has no failed samples to retry")
    return failed


def retry_events(job: Job, output_types_: dict, mini_batch: int, failed: list[str]) -> list[JobSubmitted]:
    attempt = job["attempt"] + 1
    return [
        submitted_event(job, output_types_, mini_batch, ids, attempt, part) for part, ids in enumerate(id_parts(failed))
    ]


async def reopen(store: GatewayStore, job: Job, attempt: int) -> None:
    """After the retry's events are out: the earlier attempts' failures stop counting, the job runs.

    Called after publishing, so a failed publish changes nothing; outcomes of the new attempt that
    race ahead wait until the job holds the new attempt (`ledger.BeforeReopen`: their batch comes
    again), so those samples never count for both attempts; only older attempts' failures are
    taken (`ledger.take_for_retry`), and a recount closes the job if nothing is left to run.
    """
    # under the fold's lock: a recount between a fold's records and its counts would count them twice
    async with ledger.one_at_a_time(store, [job["_id"]]):
        await ledger.take_for_retry(store, job["_id"], attempt)
        await store.jobs.update_one(
            {"_id": job["_id"]},
            {
                "$set": {
                    "attempt": attempt,
                    "status": JobStatus.QUEUED,
                    "finished_at": None,
                    "error": None,
                    "cancel_requested": False,
                }
            },
        )
        await fold.refresh_counts(store, job["_id"])


async def cancel(
    store: GatewayStore,
    job_id: str,
    announce: Callable[[], Awaitable[None]],
    drain_seconds: float = CANCEL_DRAIN_SECONDS,
) -> None:
    """Cancel a job that has not ended, so that no sample field is written after it reports
    `cancelled`: refuse new write leases, let the held ones finish, only then mark it cancelled.

    Workers take a lease (an atomic `$inc` of `active_writes`, refused once `cancel_requested`
    is set) around each task's writes. If the leases do not drain in time (a worker killed while
    holding one), the job is marked cancelled anyway and the overrun is logged."""
    open_job = {"_id": job_id, "status": {"$nin": list(TERMINAL)}}
    requested = await store.jobs.update_one(open_job, {"$set": {"cancel_requested": True}})
    if not requested.matched_count:
        return
    await announce()
    if not await _writes_drained(store, job_id, drain_seconds):
        log.warning(
            "job %s: workers still held write leases after %.0f s; marking it cancelled anyway", job_id, drain_seconds
        )
    await store.jobs.update_one(open_job, {"$set": {"status": JobStatus.CANCELLED, "finished_at": utcnow()}})


async def _writes_drained(store: GatewayStore, job_id: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        doc = await store.jobs.find_one({"_id": job_id}, projection={"active_writes": 1})
        if doc is None or doc.get("active_writes", 0) <= 0:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(CANCEL_POLL_SECONDS)
