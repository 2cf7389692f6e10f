"""Scheduler use case: split a job's samples into mini-batch tasks and publish them."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from modelhub_contracts.events import JobScheduled, JobSubmitted, TaskScheduled

# Publishing is awaited per message (JetStream acks); keep a bounded number in flight.
PUBLISH_WINDOW = 256

Publish = Callable[[TaskScheduled], Awaitable[None]]


def task_for(job: JobSubmitted, index: int, sample_ids: list[str]) -> TaskScheduled:
    """Task ids are deterministic, so a redelivered job republishes the same ids (deduplicated)."""
    task_id = f"{job.job_id}.{job.attempt}.{index}" if not job.part else f"{job.job_id}.{job.attempt}.p{job.part}.{index}"
    return TaskScheduled(event_id=task_id, task_id=task_id, job_id=job.job_id, attempt=job.attempt,
                         dataset=job.dataset, deployment=job.deployment, sample_ids=sample_ids,
                         inputs=job.inputs, outputs=job.outputs, output_types=job.output_types)


async def chunks(ids: AsyncIterator[str], size: int) -> AsyncIterator[list[str]]:
    chunk: list[str] = []
    async for sample_id in ids:
        chunk.append(sample_id)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def schedule_job(job: JobSubmitted, sample_ids: AsyncIterator[str], publish: Publish,
                       is_cancelled: Callable[[], Awaitable[bool]]) -> JobScheduled | None:
    """Publish one task per `mini_batch` samples; stop early (returning None) if the job is cancelled."""
    pending: set[asyncio.Task] = set()
    tasks = samples = 0
    async for chunk in chunks(sample_ids, job.mini_batch):
        if tasks % PUBLISH_WINDOW == 0 and await is_cancelled():
            await asyncio.gather(*pending)
            return None
        pending.add(asyncio.create_task(publish(task_for(job, tasks, chunk))))
        tasks, samples = tasks + 1, samples + len(chunk)
        if len(pending) >= PUBLISH_WINDOW:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for finished in done:
                finished.result()  # a failed publish fails the job message: it is redelivered
    await asyncio.gather(*pending)
    return JobScheduled(event_id=f"{job.job_id}.{job.attempt}.p{job.part}.scheduled", job_id=job.job_id,
                        attempt=job.attempt, num_tasks=tasks, num_samples=samples)
