"""Worker use cases around one delivery of a task: run it, retry it later, or give it up.

A task's samples end in exactly one of two ways: annotated (fields written, SampleAnnotated ok),
or failed with a reason. A task whose deliveries run out is never dropped silently: its samples
are failed with "task failed after N deliveries: <last error>" (the dead letter).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from modelhub_contracts.events import MAX_ERROR_CHARS, SampleAnnotated, TaskScheduled
from modelhub_runtime.messaging import retry_delay
from modelhub_worker.annotate import BatchCalls, PredictChunk, annotate, chunked_events, events_for
from modelhub_worker.store import Lease

log = logging.getLogger(__name__)

# Deliveries of one task before it is given up; the task consumer's max_deliver.
MAX_DELIVER = 5
NO_ACK = "no acknowledgement (the worker crashed or hung while running it)"

Publish = Callable[[SampleAnnotated], Awaitable[None]]
Describe = Callable[[BaseException], str]


class TaskStore(Protocol):
    """What these use cases need of the worker's store (modelhub_worker.store.WorkerStore; the
    unit tests' fake)."""

    async def load(self, sample_ids: list[str], dataset: str, inputs: Iterable[str]) -> dict[str, dict]: ...
    async def is_cancelled(self, job_id: str) -> bool: ...
    def write_lease(self, task: TaskScheduled) -> AbstractAsyncContextManager[Lease]: ...
    async def write_fields(self, fields_by_sample: dict[str, dict], lease: Lease) -> None: ...
    async def note_failure(self, task_id: str, error: str) -> None: ...
    async def last_failure(self, task_id: str) -> str | None: ...


async def run_task(
    task: TaskScheduled,
    store: TaskStore,
    predict: PredictChunk,
    publish: Publish,
    describe: Describe,
    calls: BatchCalls | None = None,
) -> None:
    """Annotate the task's samples, write their fields under the job's write lease, then publish
    their outcomes (one SampleAnnotated for the task). A job being cancelled gets no write and no event.

    Raises ServingLost when the deployment gave no verdict (the task is to be retried), and
    lets MongoDB/NATS errors through (retried as well): nothing here fails a sample for them."""
    # both at once: one MongoDB round trip of the task's latency instead of two
    cancelled, docs = await asyncio.gather(
        store.is_cancelled(task.job_id), store.load(task.sample_ids, task.dataset, task.inputs.values())
    )
    if cancelled:
        return
    outcomes = await annotate(task, docs, predict, describe, calls)
    async with store.write_lease(task) as granted:
        if not granted:
            return
        await store.write_fields(
            {sid: o.fields for sid, o in outcomes.items() if o.error is None and o.fields is not None}, granted
        )
        # Published under the lease: a cancel waits for these too, so counts settle with it.
        await publish_in_order(publish, events_for(task, outcomes))


async def publish_in_order(publish: Publish, events: list[SampleAnnotated]) -> None:
    """One after the other: the task's last chunk is published last, so a consumer that sees it
    (the scheduler, freeing the task's place in its job's window) has had the others first."""
    for event in events:
        await publish(event)


async def attempt(
    task: TaskScheduled,
    delivered: int,
    work: Callable[[], Awaitable[None]],
    store: TaskStore,
    publish: Publish,
    describe: Describe,
) -> float | None:
    """Run one delivery. Returns None when the message is done with (ack), else the seconds to
    wait before JetStream delivers it again (nak). The last delivery that fails is dead-lettered."""
    try:
        await work()
        return None
    except Exception as exc:
        log.warning("task %s failed on delivery %d: %s", task.task_id, delivered, describe(exc))
        error = describe(exc)
    try:
        await store.note_failure(task.task_id, error)
        if delivered >= MAX_DELIVER:
            await dead_letter(task, delivered, store, publish)
            return None
    except Exception:
        # Even this failed (MongoDB/NATS down): the advisory path dead-letters it later.
        log.exception("could not record the failure of task %s", task.task_id)
    return retry_delay(delivered)


def give_up_reason(delivered: int, error: str | None) -> str:
    return f"task failed after {delivered} deliveries: {error or NO_ACK}"


def dead_letter_events(task: TaskScheduled, reason: str) -> list[SampleAnnotated]:
    """A failure per sample, under the worker's event ids: if the worker did publish the task's
    outcomes, JetStream drops these as duplicates, and the ledger keeps a success anyway."""
    reason = reason[:MAX_ERROR_CHARS]
    return chunked_events(task, [{"sample_id": sid, "ok": False, "error": reason} for sid in task.sample_ids])


async def dead_letter(task: TaskScheduled, delivered: int, store: TaskStore, publish: Publish) -> None:
    """Fail every sample of a task that will not be delivered again, saying why."""
    reason = give_up_reason(delivered, await store.last_failure(task.task_id))
    log.error("giving up task %s: %s", task.task_id, reason)
    await publish_in_order(publish, dead_letter_events(task, reason))


class MaxDeliveriesAdvisory(BaseModel):
    """JetStream's io.nats.jetstream.advisory.v1.max_deliver (only the fields used here)."""

    model_config = ConfigDict(extra="ignore")

    stream: str
    consumer: str
    stream_seq: int
    deliveries: int


async def dead_letter_advised(
    advisory: MaxDeliveriesAdvisory,
    fetch: Callable[[str, int], Awaitable[TaskScheduled | None]],
    store: TaskStore,
    publish: Publish,
) -> None:
    """JetStream gave up on a task message: fetch it from the stream and dead-letter it."""
    task = await fetch(advisory.stream, advisory.stream_seq)
    if task is None:
        log.error("max deliveries for %s seq %d, but it is gone or not a task", advisory.stream, advisory.stream_seq)
        return
    await dead_letter(task, advisory.deliveries, store, publish)
