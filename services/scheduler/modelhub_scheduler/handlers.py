"""The scheduler's subscribers: JobSubmitted in (planned into the task queue, JobScheduled out),
SampleAnnotated in (a task done frees its place in the window: TaskScheduled out)."""

import asyncio
import logging

from faststream.nats import NatsBroker

from modelhub_contracts import queue, subjects
from modelhub_contracts.events import JobRefused, JobScheduled, JobSubmitted, SampleAnnotatedHead, TaskScheduled
from modelhub_runtime import bus, telemetry
from modelhub_runtime.logs import log_ids
from modelhub_runtime.messaging import current_message, durable_subscriber, publish_event, settle
from modelhub_scheduler.authz import job_refusal
from modelhub_scheduler.dispatch import Dispatcher
from modelhub_scheduler.schedule import plan_id, plan_job, task_size
from modelhub_scheduler.store import SchedulerStore, takes_no_tasks

log = logging.getLogger(__name__)
SERVICE = "scheduler"

# Scheduling only fails when MongoDB or NATS does, and it is idempotent (deterministic task ids),
# so a job is retried until it goes through rather than given up: -1 is "no delivery limit".
JOB_ACK_WAIT = 30.0
JOB_MAX_DELIVER = -1
# Every deployment's queue is refilled this often too: after a restart, and for the places of tasks
# that announce nothing (a cancelled job's tasks, whose workers refuse to write).
SWEEP_SECONDS = 2.0
# Jobs planned at once: a job submitted while a big one is being planned (reading a million sample
# ids takes seconds) starts without waiting for it. Planning is idempotent per job (deterministic
# task ids, duplicates ignored) and fills of one deployment take turns (Dispatcher's lock).
PLANNING_WORKERS = 4
# Finished tasks are taken one fetch each (a batch fetch waits until its batch is full, up to its
# timeout: with a bounded window that wait would set the pace) by a few handlers at once.
PROGRESS_WORKERS = 16


def register(broker: NatsBroker, store: SchedulerStore) -> Dispatcher:
    """Wire the scheduler's durable consumers; returns the dispatcher (its sweep runs from app.py)."""

    bus.declare(
        broker, SERVICE, subjects.TASK_SCHEDULED, TaskScheduled, "one mini-batch of a job's samples to annotate"
    )
    bus.declare(broker, SERVICE, subjects.JOB_SCHEDULED, JobScheduled, "a job's tasks are planned: it runs")
    bus.declare(
        broker,
        SERVICE,
        subjects.JOB_REFUSED,
        JobRefused,
        "the job's acting user may not run it (or it names what does not exist): it failed",
    )

    async def publish(task: TaskScheduled) -> None:
        with telemetry.attached(task.traceparent):  # the job's trace, whichever fill publishes it
            await publish_event(broker, subjects.TASK_SCHEDULED, task)

    dispatcher = Dispatcher(store, publish)

    async def schedule(job: JobSubmitted) -> None:
        telemetry.annotate_current(
            {
                telemetry.JOB_ID: job.job_id,
                telemetry.DATASET: job.dataset,
                telemetry.DEPLOYMENT: job.deployment,
                telemetry.ATTEMPT: job.attempt,
                telemetry.BATCH_SIZE: job.mini_batch,
            }
        )
        pid = plan_id(job)
        # what deciding and sizing the plan needs, read at once: each read is a round trip on the
        # job's way to its first task, and beside another job's load each costs several ms
        # (bench/README.md)
        reason, state, doc, generation, window = await asyncio.gather(
            job_refusal(store.db, job),
            store.plan_state(pid, job),
            store.job_state(job.job_id),
            store.generation(job.deployment),
            store.window(job.deployment),
        )
        if reason:
            await publish_event(
                broker,
                subjects.JOB_REFUSED,
                JobRefused(
                    event_id=f"{job.job_id}.{job.attempt}.refused",
                    job_id=job.job_id,
                    attempt=job.attempt,
                    reason=reason,
                ),
            )
            return
        if takes_no_tasks(doc, job.attempt):
            # cancelled before it was planned, or ended at this attempt (its tasks ran before a
            # crash kept its plan from being recorded): planned again, it would hold window places
            log.info("job %s takes no tasks (%s): not planned", job.job_id, doc and doc.get("status"))
            return
        if not state.planned:
            # tasks sized by the deployment's measured pace; the size is kept with the plan
            pace = dispatcher.pace.samples_per_s(job.deployment, generation)
            samples = len(job.sample_ids) if job.sample_ids is not None else (doc or {}).get("total")
            proposed = task_size(job.mini_batch, pace, samples, window)
            size = await store.task_samples(job, pid, proposed, task_size(job.mini_batch), state)
            log.info(
                "planning job %s in tasks of %d samples (pace %s samples/s)", job.job_id, size, pace and round(pace)
            )
            scheduled = await plan_job(
                job,
                store.sample_ids(job.dataset, job.sample_ids, job.until_sample_id),
                store.add_tasks,
                lambda: store.is_cancelled(job.job_id),
                telemetry.current_traceparent(),
                # its tasks go out as they are stored (the first while the rest are planned, the
                # last while the plan is recorded)
                stored=lambda: dispatcher.poke(job.deployment),
                task_samples=size,
            )
            if scheduled is None:
                return
            await store.planned(pid, job.job_id, scheduled.num_tasks, scheduled.num_samples)
            await publish_event(broker, subjects.JOB_SCHEDULED, scheduled)
        await dispatcher.fill(job.deployment)

    @durable_subscriber(
        broker,
        SERVICE,
        subjects.JOB_SUBMITTED,
        subjects.DURABLE_SCHEDULER_JOBS,
        ack_wait=JOB_ACK_WAIT,
        max_deliver=JOB_MAX_DELIVER,
        max_workers=PLANNING_WORKERS,
    )
    async def on_job_submitted(job: JobSubmitted) -> None:
        """Plan the job into its queue of tasks and start filling its deployment's window. Acked
        only after every task is stored; NAKed (retried later) if MongoDB or NATS failed on the way."""
        with log_ids(job_id=job.job_id, deployment=job.deployment, dataset=job.dataset):
            await settle(current_message(broker), schedule(job))

    async def finished(event: SampleAnnotatedHead) -> None:
        if event.chunk == event.chunks - 1 and (deployment := await store.finish(event.task_id)):
            dispatcher.pace.back(event.task_id)
            dispatcher.poke(deployment)  # a task's last chunk comes last: its place is free

    @durable_subscriber(
        broker,
        SERVICE,
        subjects.SAMPLE_ANNOTATED,
        subjects.DURABLE_SCHEDULER_PROGRESS,
        ack_wait=JOB_ACK_WAIT,
        max_deliver=JOB_MAX_DELIVER,
        max_workers=PROGRESS_WORKERS,
        reads=SampleAnnotatedHead,  # the task and chunk: its outcomes are not decoded here
    )
    async def on_annotated(event: SampleAnnotatedHead) -> None:
        """A task announced done leaves the queue; its place goes to the next waiting task (the
        fill runs in the background, coalesced with other finished tasks' fills)."""
        await settle(current_message(broker), finished(event))

    return dispatcher


async def sweep(
    store: SchedulerStore,
    dispatcher: Dispatcher,
    every: float = SWEEP_SECONDS,
    gauges: tuple[telemetry.GaugeSet, telemetry.GaugeSet] | None = None,
) -> None:
    """Refill every deployment with queued tasks, forever: recovers a restarted scheduler and frees
    the places of cancelled jobs. A failed round (MongoDB or NATS away) is retried next round.
    Each round also sets the queue gauges (tasks waiting / in flight per deployment)."""
    while True:
        try:
            for deployment in await store.deployments_with_tasks():
                await dispatcher.fill(deployment)
            if gauges:
                counts = await queue.counts_by_deployment(store.db)
                for gauge, state in zip(gauges, (queue.TaskState.WAITING, queue.TaskState.IN_FLIGHT), strict=True):
                    gauge.update({d: c[state.value] for d, c in counts.items()})
        except Exception:
            log.exception("queue sweep failed; retrying in %.0f s", every)
        await asyncio.sleep(every)
