"""Jobs: run a model over a dataset (the seed's suitcase button and "Execution" tab)."""

import asyncio

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import StreamingResponse

from modelhub_contracts import queue, subjects
from modelhub_contracts.events import JobCancelled
from modelhub_contracts.messaging import publish_event

from modelhub_gateway import access, jobs, observability
from modelhub_gateway.errors import errors
from modelhub_gateway.deps import Broker, CurrentUser, Store, current_user
from modelhub_gateway.routes.datasets import owned_dataset
from modelhub_gateway.routes.deployments import visible_deployment
from modelhub_gateway.schemas import NamePath, IdPath, Failure, FailureList, JobCreate, JobList, JobPublic

router = APIRouter(tags=["jobs"], dependencies=[Depends(current_user)], responses=errors(400, 401, 422))
SSE_POLL_SECONDS = 0.5


def public(doc: dict, queue_: dict | None = None) -> JobPublic:
    return JobPublic.model_validate({**doc, "id": doc["_id"], "queue": queue_ or {}})


async def with_queue(store: Store, doc: dict) -> JobPublic:
    """The job with its queue: its tasks waiting and in flight (the scheduler's task queue). An
    ended job has none: tasks the scheduler has yet to clear are not the user's concern."""
    if doc["status"] in jobs.TERMINAL:
        return public(doc)
    return public(doc, await queue.counts(store.db, {"job_id": doc["_id"]}))


@router.post("/datasets/{name}/jobs", status_code=202, response_model=JobPublic, responses=errors(404, 413))
async def submit_job(name: NamePath, body: JobCreate, user: CurrentUser, store: Store, broker: Broker) -> JobPublic:
    """Run a running deployment over every sample of the dataset, writing the mapped outputs
    into each sample's fields. Refused (422) before anything runs if the mapping is wrong."""
    await owned_dataset(store, user, name)
    deployment = await visible_deployment(store, user, body.deployment, need="run")
    if deployment["status"] != "running":
        raise HTTPException(422, f"deployment '{body.deployment}' is {deployment['status']}, not running")
    schema = await _schema(store, deployment)
    output_types = jobs.check_outputs(schema, body.outputs)
    inputs = jobs.resolve_inputs(schema, body.inputs)
    # the job covers the samples there now: later additions are not counted in, nor run
    last = await store.samples.find_one({"dataset": name}, projection={"_id": 1}, sort=[("_id", -1)])
    until = last["_id"] if last else None
    total = await store.samples.count_documents({"dataset": name, "_id": {"$lte": until}}) if until else 0
    job = jobs.new_job(name, deployment, inputs, body.outputs, total, user["username"], until)
    observability.submitted(job)
    await store.jobs.insert_one(job)
    if total:
        await publish_event(broker, subjects.JOB_SUBMITTED,
                            jobs.submitted_event(job, output_types, deployment["mini_batch"]))
    return public(job)


async def _schema(store: Store, deployment: dict) -> dict:
    """The model schema of the version the deployment runs; 422 when that version was deleted."""
    version = await store.version(deployment["model"], deployment["version"])
    if version is None:
        raise HTTPException(422, f"model '{deployment['model']}' version {deployment['version']} no longer exists")
    return version["schema"]


async def visible_job(store: Store, user: dict, job_id: str) -> dict:
    doc = await store.jobs.find_one({"_id": job_id})
    if doc is None or not access.owns(doc, user):
        raise HTTPException(404, f"job '{job_id}' not found")
    return doc


@router.get("/jobs/{job_id}", response_model=JobPublic, responses=errors(404))
async def get_job(job_id: IdPath, user: CurrentUser, store: Store) -> JobPublic:
    """A job's status and counts."""
    return await with_queue(store, await visible_job(store, user, job_id))


@router.get("/datasets/{name}/jobs", response_model=JobList, responses=errors(404))
async def list_jobs(name: NamePath, user: CurrentUser, store: Store) -> JobList:
    """The dataset's jobs, newest first (the Execution tab)."""
    await owned_dataset(store, user, name)
    docs = await store.jobs.find({"dataset": name}, sort=[("created_at", -1)]).to_list()
    queues = await queue.counts_by_job(store.db, [d["_id"] for d in docs if d["status"] not in jobs.TERMINAL])
    return JobList(items=[public(d, queues.get(d["_id"])) for d in docs])


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {"schema": {
                "type": "object", "required": ["data"],
                "properties": {"event": {"type": "string", "const": "job"},
                               "data": {"type": "string", "contentMediaType": "application/json",
                                        "contentSchema": {"$ref": "#/components/schemas/JobPublic"}}}}}},
                             "description": "Server-Sent Events: `event: job`, the job object as data"},
                       **errors(404)})
async def job_events(job_id: IdPath, user: CurrentUser, store: Store) -> StreamingResponse:
    """Server-Sent Events: the job object each time it changes, until it ends."""
    await visible_job(store, user, job_id)

    async def stream():
        last = None
        while True:
            doc = await store.jobs.find_one({"_id": job_id})
            if doc is None:  # deleted with its dataset while followed
                return
            payload = (await with_queue(store, doc)).model_dump_json()
            if payload != last:
                yield f"event: job\ndata: {payload}\n\n"
                last = payload
            if doc["status"] in jobs.TERMINAL:
                return
            await asyncio.sleep(SSE_POLL_SECONDS)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/jobs/{job_id}/cancel", status_code=202, response_model=JobPublic, responses=errors(404, 409))
async def cancel_job(job_id: IdPath, user: CurrentUser, store: Store, broker: Broker) -> JobPublic:
    """Stop the job. Once this answers `cancelled`, no sample of the job gets a field written;
    the samples annotated before keep theirs (and are counted)."""
    job = await visible_job(store, user, job_id)
    if job["status"] == "completed":
        raise HTTPException(409, "the job has already completed")
    if job["status"] not in jobs.TERMINAL:
        await jobs.cancel(store, job_id, lambda: publish_event(
            broker, subjects.JOB_CANCELLED, JobCancelled(job_id=job_id, requested_by=user["username"])))
    return public(await visible_job(store, user, job_id))


@router.post("/jobs/{job_id}/retry", status_code=202, response_model=JobPublic, responses=errors(404, 409))
async def retry_job(job_id: IdPath, user: CurrentUser, store: Store, broker: Broker) -> JobPublic:
    """Run again only the samples that failed."""
    job = await visible_job(store, user, job_id)
    deployment = await visible_deployment(store, user, job["deployment"], need="run")
    if deployment["status"] != "running":
        raise HTTPException(422, f"deployment '{job['deployment']}' is {deployment['status']}, not running")
    failed = await jobs.failed_samples(store, job)
    schema = await _schema(store, deployment)
    events = jobs.retry_events(job, jobs.check_outputs(schema, job["outputs"]), deployment["mini_batch"], failed)
    for event in events:
        await publish_event(broker, subjects.JOB_SUBMITTED, event)
    await jobs.reopen(store, job, events[0].attempt)
    return public(await visible_job(store, user, job_id))


@router.get("/jobs/{job_id}/failures", response_model=FailureList, responses=errors(404))
async def failures(job_id: IdPath, user: CurrentUser, store: Store) -> FailureList:
    """Each failed sample with the reason it failed."""
    await visible_job(store, user, job_id)
    cursor = store.ledger.find({"job_id": job_id, "ok": False}, sort=[("sample_id", 1)])
    return FailureList(items=[Failure(sample_id=d["sample_id"], error=d["error"] or "unknown error")
                              async for d in cursor])
