"""The scheduler's subscriber: JobSubmitted in, TaskScheduled... and JobScheduled out."""

from faststream.nats import NatsBroker, PullSub

from modelhub_contracts import subjects
from modelhub_contracts.events import JobSubmitted, TaskScheduled
from modelhub_contracts.messaging import EVENTS_STREAM, publish_event

from modelhub_scheduler.schedule import schedule_job
from modelhub_scheduler.store import SchedulerStore


def register(broker: NatsBroker, store: SchedulerStore) -> None:
    @broker.subscriber(subjects.JOB_SUBMITTED, stream=EVENTS_STREAM, durable=subjects.DURABLE_SCHEDULER_JOBS,
                       pull_sub=PullSub(batch_size=1, timeout=1.0))
    async def on_job_submitted(job: JobSubmitted) -> None:
        """Split the job into tasks. Acked only after every task is stored in JetStream."""

        async def publish(task: TaskScheduled) -> None:
            await publish_event(broker, subjects.TASK_SCHEDULED, task)

        scheduled = await schedule_job(job, store.sample_ids(job.dataset, job.sample_ids), publish,
                                       lambda: store.is_cancelled(job.job_id))
        if scheduled is not None:
            await publish_event(broker, subjects.JOB_SCHEDULED, scheduled)
