"""The scheduler's subscriber: JobSubmitted in, TaskScheduled... and JobScheduled out."""

from faststream import AckPolicy
from faststream.nats import NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage

from modelhub_contracts import subjects
from modelhub_contracts.events import JobRefused, JobSubmitted, TaskScheduled
from modelhub_contracts.messaging import EVENTS_STREAM, consumer_config, publish_event, settle

from modelhub_scheduler.authz import job_refusal
from modelhub_scheduler.schedule import schedule_job
from modelhub_scheduler.store import SchedulerStore

# Scheduling only fails when MongoDB or NATS does, and it is idempotent (deterministic task ids),
# so a job is retried until it goes through rather than given up: -1 is "no delivery limit".
JOB_ACK_WAIT = 30.0
JOB_MAX_DELIVER = -1


def register(broker: NatsBroker, store: SchedulerStore) -> None:
    """Wire the scheduler's durable consumer of submitted jobs."""

    async def schedule(job: JobSubmitted) -> None:
        if reason := await job_refusal(store.db, job):
            await publish_event(broker, subjects.JOB_REFUSED, JobRefused(
                event_id=f"{job.job_id}.{job.attempt}.refused", job_id=job.job_id, attempt=job.attempt,
                reason=reason))
            return

        async def publish(task: TaskScheduled) -> None:
            await publish_event(broker, subjects.TASK_SCHEDULED, task)

        scheduled = await schedule_job(job, store.sample_ids(job.dataset, job.sample_ids, job.until_sample_id), publish,
                                       lambda: store.is_cancelled(job.job_id))
        if scheduled is not None:
            await publish_event(broker, subjects.JOB_SCHEDULED, scheduled)

    @broker.subscriber(subjects.JOB_SUBMITTED, stream=EVENTS_STREAM, durable=subjects.DURABLE_SCHEDULER_JOBS,
                       config=consumer_config(JOB_ACK_WAIT, JOB_MAX_DELIVER), ack_policy=AckPolicy.MANUAL,
                       pull_sub=PullSub(batch_size=1, timeout=1.0))
    async def on_job_submitted(job: JobSubmitted, message: NatsMessage) -> None:
        """Split the job into tasks. Acked only after every task is stored in JetStream; NAKed
        (retried later) if MongoDB or NATS failed on the way."""
        await settle(message, schedule(job))
