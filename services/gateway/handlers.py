"""The gateway's event subscribers: fold worker and scheduler events into job progress."""

from faststream.nats import NatsBroker, PullSub

from modelhub_contracts import subjects
from modelhub_contracts.events import JobScheduled, SampleAnnotated
from modelhub_contracts.messaging import EVENTS_STREAM

from modelhub_gateway import jobs
from modelhub_gateway.store import GatewayStore

# Annotations arrive in bursts; fold them in batches so one bulk write covers many samples.
ANNOTATION_BATCH = 500


def register(broker: NatsBroker, store: GatewayStore) -> None:
    """Wire the progress subscribers (durable, so a gateway restart resumes where it stopped)."""

    @broker.subscriber(subjects.SAMPLE_ANNOTATED, stream=EVENTS_STREAM, durable=subjects.DURABLE_GATEWAY_PROGRESS,
                       pull_sub=PullSub(batch_size=ANNOTATION_BATCH, timeout=0.2, batch=True))
    async def on_annotated(events: list[SampleAnnotated]) -> None:
        """Record each sample's outcome and recount the jobs touched."""
        await jobs.record_annotations(store, events)

    @broker.subscriber(subjects.JOB_SCHEDULED, stream=EVENTS_STREAM, durable=subjects.DURABLE_GATEWAY_SCHEDULED,
                       pull_sub=PullSub(batch_size=16, timeout=1.0))
    async def on_scheduled(event: JobScheduled) -> None:
        """The job's tasks are out: it is running."""
        await jobs.mark_started(store, event.job_id)
