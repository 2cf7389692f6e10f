"""Jobs: run a model over a dataset (the seed's suitcase button and "Execution" tab)."""

import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from sse_starlette import EventSourceResponse, ServerSentEvent

from modelhub_contracts import queue
from modelhub_contracts.documents import TERMINAL
from modelhub_gateway import datasets, jobs
from modelhub_gateway.api.deps import CurrentUser, OwnedDataset, OwnedJob, Publisher, Store, current_user, known_query
from modelhub_gateway.api.errors import errors
from modelhub_gateway.schemas import Failure, FailureList, IdPath, JobCreate, JobList, JobPublic

router = APIRouter(
    tags=["jobs"], dependencies=[Depends(current_user), Depends(known_query)], responses=errors(400, 401, 422)
)
SSE_POLL_SECONDS = 0.5
# A comment line this often keeps a quiet stream (a long task between two counts) from being cut
# by a proxy's or a client's idle timeout.
SSE_PING_SECONDS = 15
SSE_SEPARATOR = "\n"  # lines end in LF (sse-starlette would write CRLF; SSE readers take both)
RESUMABLE_ID = re.compile("[0-9]{1,18}")
EVENT_ID_RULE = (
    "counts the job states this client was sent: 1, 2, ...; a stream resumed with `Last-Event-ID: n` goes on at n+1"
)
RESUME_RULE = (
    "the `id` of the last event this client read: the stream starts with the job as it is now, as event "
    "n+1, then each later change (the states in between are not replayed: each event is the whole job); "
    "any other value is ignored"
)


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
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "required": ["data", "id"],
                        "properties": {
                            "event": {"type": "string", "const": "job"},
                            "id": {"type": "string", "pattern": "^[0-9]+$", "description": EVENT_ID_RULE},
                            "data": {
                                "type": "string",
                                "contentMediaType": "application/json",
                                "contentSchema": {"$ref": "#/components/schemas/JobPublic"},
                            },
                        },
                    }
                }
            },
            "description": "Server-Sent Events: `event: job`, an `id:`, the job object as data; comment lines "
            f"(`: ping`) every {SSE_PING_SECONDS} seconds keep a quiet stream open",
        },
        **errors(404),
    },
)
async def job_events(
    job_id: IdPath,
    _: OwnedJob,
    store: Store,
    last_event_id: Annotated[str, Header(alias="Last-Event-ID", description=RESUME_RULE)] = "",
) -> EventSourceResponse:
    """Server-Sent Events: the job object now, then each time it changes, until it ends."""
    counted = resumed_from(last_event_id)

    async def stream() -> AsyncIterator[ServerSentEvent]:
        number = counted
        async for state in jobs.states(store, job_id, SSE_POLL_SECONDS):
            number += 1
            yield ServerSentEvent(state.model_dump_json(), event="job", id=str(number), sep=SSE_SEPARATOR)

    return EventSourceResponse(stream(), ping=SSE_PING_SECONDS, sep=SSE_SEPARATOR)


def resumed_from(last_event_id: str) -> int:
    """The id to count on from: a `Last-Event-ID` this route gave (a number), else 0 (a new
    follower, or an id that is not ours: the stream starts at 1)."""
    if RESUMABLE_ID.fullmatch(last_event_id):
        return int(last_event_id)
    return 0


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
