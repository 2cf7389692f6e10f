"""The gateway's event subscribers: fold worker and scheduler events into job progress.

Both fold idempotently (a ledger record per task chunk; a status change guarded by the current status), so
they are acked explicitly once stored, and NAKed to retry later while MongoDB is unavailable;
they have no delivery limit, since an outcome dropped here would leave its job running forever.
"""

from faststream.nats import NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage

from modelhub_contracts import subjects
from modelhub_contracts.events import JobRefused, JobScheduled, SampleAnnotated
from modelhub_gateway import observability
from modelhub_gateway.progress import fold
from modelhub_gateway.store import GatewayStore
from modelhub_runtime import telemetry
from modelhub_runtime.adapters.faststream import prompt_batches
from modelhub_runtime.messaging import current_message, durable_subscriber, settle

# Each SampleAnnotated carries a task's outcomes (up to OUTCOMES_PER_EVENT samples); fold them in
# batches so one bulk write covers many tasks. A batch is handed over as soon as it has an event
# (adapters.faststream.prompt_batches: the first event plus those already waiting), not when it is
# full, so a small job's last outcomes are not held back; ANNOTATION_WAIT is only the pull timeout
# FastStream's declaration needs, which that loop does not use.
ANNOTATION_BATCH = 64
ANNOTATION_WAIT = 0.2
# Batches folded at once by one gateway: folds of different jobs run side by side (those of one
# job wait for each other, ledger.one_at_a_time), so a small job's outcomes are not folded after a
# big job's batch.
FOLD_CONCURRENCY = 4
ACK_WAIT = 30.0
NO_DELIVERY_LIMIT = -1
SERVICE = "gateway"


def register(broker: NatsBroker, store: GatewayStore, tel: telemetry.Telemetry, instance: str | None = None) -> None:
    """Wire the progress subscribers (durable, so a gateway restart resumes where it stopped).

    Every gateway binds the same durable consumers, so with several (`modelhub up --gateways N`)
    JetStream hands each batch to one of them, and a killed one's unacked batches go to the others
    after ACK_WAIT; `instance` names this gateway in the jobs it folds (`folded_by`)."""

    progress = durable_subscriber(
        broker,
        SERVICE,
        subjects.SAMPLE_ANNOTATED,
        subjects.DURABLE_GATEWAY_PROGRESS,
        ack_wait=ACK_WAIT,
        max_deliver=NO_DELIVERY_LIMIT,
        pull_sub=PullSub(batch_size=ANNOTATION_BATCH, timeout=ANNOTATION_WAIT, batch=True),
    )
    prompt_batches(progress, ANNOTATION_BATCH, concurrency=FOLD_CONCURRENCY)

    @progress
    async def on_annotated(events: list[SampleAnnotated]) -> None:
        """Record each task's sample outcomes and add them to the jobs' counts."""
        message = current_message(broker)
        # one span per event, in its job's trace
        with observability.fold_spans(tel, events, message.batch_headers):
            await settle(message, fold.record_annotations(store, events, instance))

    @durable_subscriber(
        broker,
        SERVICE,
        subjects.JOB_SCHEDULED,
        subjects.DURABLE_GATEWAY_SCHEDULED,
        ack_wait=ACK_WAIT,
        max_deliver=NO_DELIVERY_LIMIT,
    )
    async def on_scheduled(event: JobScheduled, message: NatsMessage) -> None:
        """The job's tasks are out: it is running."""
        await settle(message, fold.mark_started(store, event.job_id))

    @durable_subscriber(
        broker,
        SERVICE,
        subjects.JOB_REFUSED,
        subjects.DURABLE_GATEWAY_REFUSED,
        ack_wait=ACK_WAIT,
        max_deliver=NO_DELIVERY_LIMIT,
    )
    async def on_refused(event: JobRefused, message: NatsMessage) -> None:
        """The scheduler refused the job (its acting user may not run it): it failed, with the reason."""
        await settle(message, fold.refused(store, event))
