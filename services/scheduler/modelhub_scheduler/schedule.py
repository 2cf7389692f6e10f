"""Scheduler use case: plan a job's samples into tasks of whole mini-batches, stored as the job's queue.

Planning publishes nothing: the dispatcher (dispatch.py) publishes a bounded window of each
deployment's tasks at a time. A job is planned once: its plan is recorded last, so a job message
redelivered after a crash mid-plan is planned again (tasks already stored are kept as they are).
"""

from collections.abc import AsyncIterator, Awaitable, Callable

from modelhub_contracts.events import OUTCOMES_PER_EVENT, JobScheduled, JobSubmitted, TaskScheduled

# Tasks stored per bulk write while planning; the first few are stored (and dispatched) at once:
# reading a dataset's sample ids takes a while (a million ids take seconds), and a deployment's
# window is a few tasks, so its replicas start on the first tasks while the rest are planned. The
# first few are FIRST_BATCH tasks of up to TASK_SAMPLES, or as many samples in larger tasks (two of
# 2,048: a window's worth, dispatch.sized_window); eight of 2,048 were most of a 20,000-sample
# job, whose first task then waited ~60 ms for the whole plan to be read (bench/README.md).
PLAN_BATCH = 500
FIRST_BATCH = 8
# A task carries several mini-batches (each still one Model.predict call): what a task costs besides
# its samples (its queue entry, a publish, a write lease, an event, an ack, a fold: tens of CPU-ms
# over the stack's processes, bench/README.md) is paid once per task. A task is at least 8
# mini-batches, up to 512 samples (one task's outcomes fit one SampleAnnotated), and more on a
# deployment whose measured pace (pace.py) runs that many in under TASK_SECONDS: a slow model's
# task stays short enough for two jobs on one deployment to take turns (the window and the
# round-robin between jobs count tasks), a fast model's pays its costs once per up to
# TASK_SAMPLES_MAX samples (its outcomes in events of up to 512). Not more: what a deployment has
# in flight (its window of tasks) is what a small job on another deployment waits behind when it
# comes, and tasks of 4,096 made that small job markedly slower than tasks of 2,048, for about the
# same samples per second (bench/README.md).
BATCHES_PER_TASK = 8
TASK_SAMPLES = OUTCOMES_PER_EVENT
TASK_SECONDS = 0.25
TASK_SAMPLES_MAX = 4 * OUTCOMES_PER_EVENT

AddTasks = Callable[[list[tuple[int, TaskScheduled]], int], Awaitable[None]]


def task_for(job: JobSubmitted, index: int, sample_ids: list[str], traceparent: str | None = None) -> TaskScheduled:
    """Task ids are deterministic, so a redelivered job plans (and publishes) the same ids. The
    task keeps the trace context it was planned in, for its publish, which may come much later."""
    task_id = (
        f"{job.job_id}.{job.attempt}.{index}" if not job.part else f"{job.job_id}.{job.attempt}.p{job.part}.{index}"
    )
    return TaskScheduled(
        event_id=task_id,
        task_id=task_id,
        job_id=job.job_id,
        attempt=job.attempt,
        dataset=job.dataset,
        deployment=job.deployment,
        sample_ids=sample_ids,
        inputs=job.inputs,
        outputs=job.outputs,
        output_types=job.output_types,
        mini_batch=job.mini_batch,
        traceparent=traceparent or job.traceparent,
    )


def task_size(mini_batch: int, samples_per_s: float | None = None, samples: int | None = None, window: int = 1) -> int:
    """Samples per task: whole mini-batches, at most BATCHES_PER_TASK of them and as many as fit
    TASK_SAMPLES (at least one); on a deployment measured at `samples_per_s`, as many whole
    mini-batches as it runs in TASK_SECONDS, up to TASK_SAMPLES_MAX, when that is more. A job of
    `samples` is cut in at least `window` tasks (its deployment's window), so that its tasks fill
    the window and its stages (reads, calls, writes, folds) overlap instead of running one task
    after the other."""
    least = mini_batch * max(1, min(BATCHES_PER_TASK, TASK_SAMPLES // mini_batch))
    if not samples_per_s:
        return least
    paced = min(samples_per_s * TASK_SECONDS, TASK_SAMPLES_MAX)
    if samples is not None:
        paced = min(paced, -(-samples // max(1, window)))
    return max(least, int(paced) // mini_batch * mini_batch)


def plan_id(job: JobSubmitted) -> str:
    return f"{job.job_id}.{job.attempt}.p{job.part}"


async def chunks(batches: AsyncIterator[list[str]], size: int) -> AsyncIterator[list[str]]:
    """Lists of `size` ids (the last one shorter) out of lists of any length."""
    chunk: list[str] = []
    async for batch in batches:
        chunk.extend(batch)
        start = 0
        while len(chunk) - start >= size:
            yield chunk[start : start + size]
            start += size
        del chunk[:start]
    if chunk:
        yield chunk


async def plan_job(
    job: JobSubmitted,
    sample_ids: AsyncIterator[list[str]],
    add_tasks: AddTasks,
    is_cancelled: Callable[[], Awaitable[bool]],
    traceparent: str | None = None,
    stored: Callable[[], None] | None = None,
    task_samples: int | None = None,
) -> JobScheduled | None:
    """Store one waiting task per `task_samples` samples (default: `task_size` of the job's
    mini_batch), FIRST_BATCH tasks first, then PLAN_BATCH at a time (fewer of larger tasks in each:
    no more samples than as many tasks of TASK_SAMPLES, which also bounds the planning's memory),
    calling `stored` after each batch is stored (the dispatcher can send them while the rest are
    planned, and the last while the plan is recorded); stop early (returning None) if the job is
    cancelled (checked before each full batch; the caller checks before planning)."""
    batch: list[tuple[int, TaskScheduled]] = []
    tasks = samples = 0
    per_task = task_samples or task_size(job.mini_batch)
    size = max(1, min(FIRST_BATCH, FIRST_BATCH * TASK_SAMPLES // per_task))
    later = max(FIRST_BATCH, min(PLAN_BATCH, PLAN_BATCH * TASK_SAMPLES // per_task))
    async for chunk in chunks(sample_ids, per_task):
        batch.append((tasks, task_for(job, tasks, chunk, traceparent)))
        tasks, samples = tasks + 1, samples + len(chunk)
        if len(batch) == size:
            if await is_cancelled():
                return None
            await add_tasks(batch, job.part)
            if stored is not None:
                stored()
            batch, size = [], later
    if batch:
        await add_tasks(batch, job.part)
        if stored is not None:
            stored()
    return JobScheduled(
        event_id=f"{plan_id(job)}.scheduled",
        job_id=job.job_id,
        attempt=job.attempt,
        num_tasks=tasks,
        num_samples=samples,
    )
