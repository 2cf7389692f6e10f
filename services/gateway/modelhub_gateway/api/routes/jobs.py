"""Jobs: run a model over a dataset (the seed's suitcase button and "Execution" tab)."""

import asyncio

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from modelhub_contracts import queue
from modelhub_contracts.documents import TERMINAL
from modelhub_gateway import datasets, jobs
from modelhub_gateway.api.deps import CurrentUser, OwnedDataset, OwnedJob, Publisher, Store, current_user
from modelhub_gateway.api.errors import errors
from modelhub_gateway.schemas import Failure, FailureList, IdPath, JobCreate, JobList, JobPublic

router = APIRouter(tags=["jobs"], dependencies=[Depends(current_user)], responses=errors(400, 401, 422))
SSE_POLL_SECONDS = 0.5


@router.post("/datasets/{name}/jobs", status_code=202, response_model=JobPublic, responses=errors(404, 413))
async def submit_job(
    dataset: OwnedDataset, body: JobCreate, user: CurrentUser, store: Store, publish: Publisher
) -> JobPublic:
    """Run a running deployment over every sample of the dataset, writing the mapped outputs
    into each sample's fields. Refused (422) before anything runs if the mapping is wrong."""
    return jobs.public(await jobs.submit_job(store, publish, user, dataset, body))


@router.get("/jobs/{job_id}", response_model=JobPublic, responses=errors(404))
async def get_job(job: OwnedJob, store: Store) -> JobPublic:
    """A job's status and counts."""
    return await jobs.with_queue(store, job)


@router.get("/datasets/{name}/jobs", response_model=JobList, responses=errors(404))
async def list_jobs(dataset: OwnedDataset, store: Store) -> JobList:
    """The dataset's jobs, newest first (the Execution tab)."""
    docs = await store.jobs_of(dataset["_id"])
    queues = await queue.counts_by_job(store.db, [d["_id"] for d in docs if d["status"] not in TERMINAL])
    return JobList(items=[jobs.public(d, queues.get(d["_id"])) for d in docs])


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "required": ["data"],
                        "properties": {
                            "event": {"type": "string", "const": "job"},
                            "data": {
                                "type": "string",
                                "contentMediaType": "application/json",
                                "contentSchema": {"$ref": "#/components/schemas/JobPublic"},
                            },
                        },
                    }
                }
            },
            "description": "Server-Sent Events: `event: job`, the job object as data",
        },
        **errors(404),
    },
)
async def job_events(job_id: IdPath, _: OwnedJob, store: Store) -> StreamingResponse:
    """Server-Sent Events: the job object each time it changes, until it ends."""

    async def stream():
        last = None
        while True:
            doc = await store.job(job_id)
            if doc is None:  # deleted with its dataset: the stream ends
                return
            payload = (await jobs.with_queue(store, doc)).model_dump_json()
            if payload != last:
                yield f"event: job\ndata: {payload}\n\n"
                last = payload
            if doc["status"] in TERMINAL:
                return
            await asyncio.sleep(SSE_POLL_SECONDS)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@router.post("/jobs/{job_id}/cancel", status_code=202, response_model=JobPublic, responses=errors(404, 409))
async def cancel_job(job_id: IdPath, job: OwnedJob, user: CurrentUser, store: Store, publish: Publisher) -> JobPublic:
    """Stop the job. Once this answers `cancelled`, no sample of the job gets a field written;
    the samples annotated before keep theirs (and are counted)."""
    await jobs.cancel_job(store, publish, user, job)
    return jobs.public(await datasets.owned_job(store, user, job_id))  # 404 if deleted meanwhile


@router.post("/jobs/{job_id}/retry", status_code=202, response_model=JobPublic, responses=errors(404, 409))
async def retry_job(job_id: IdPath, job: OwnedJob, user: CurrentUser, store: Store, publish: Publisher) -> JobPublic:
    """Run again only the samples that failed."""
    await jobs.retry_job(store, publish, user, job)
    return jobs.public(await datasets.owned_job(store, user, job_id))  # 404 if deleted meanwhile


@router.get("/jobs/{job_id}/failures", response_model=FailureList, responses=errors(404))
async def failures(job_id: IdPath, _: OwnedJob, store: Store) -> FailureList:
    """Each failed sample with the reason it failed."""
    return FailureList(
        items=[
            Failure(sample_id=d["sample_id"], error=d["error"] or "unknown error") for d in await store.failures(job_id)
        ]
    )
