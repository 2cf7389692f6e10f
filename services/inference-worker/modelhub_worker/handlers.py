"""The worker's subscribers: tasks and their dead letters from JetStream, online predict over
request/reply (many requests at once; their samples share batches, see online.py).

Tasks are acked explicitly. A task whose deployment gave no verdict (a replica died, the app is
restarting) or whose MongoDB/NATS calls failed is NAKed with a growing delay and runs again; the
last delivery that fails, or JetStream's max-deliveries advisory, fails its samples with why.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable

from faststream.nats import JStream, NatsBroker
from faststream.nats.annotations import JsClient, NatsMessage
from nats.js.api import StorageType
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from modelhub_contracts import subjects
from modelhub_contracts.events import PredictRequest, RpcReply, SampleAnnotated, TaskScheduled
from modelhub_runtime import bus, telemetry
from modelhub_runtime.logs import log_ids
from modelhub_runtime.messaging import (
    current_message,
    deliveries,
    durable_subscriber,
    keep_alive,
    ok,
    publish_event,
    refuse,
    settle,
)
from modelhub_worker import predict_sub
from modelhub_worker.online import OnlineBatcher, Overloaded, Shape, predict_online
from modelhub_worker.serving import DeploymentUnavailable, ServeClient, ServingLost, short_error
from modelhub_worker.store import WorkerStore
from modelhub_worker.tasks import MAX_DELIVER, MaxDeliveriesAdvisory, attempt, dead_letter_advised, run_task

# Tasks processed at once by one worker process. The scheduler keeps at most a window of each
# deployment's tasks in flight (modelhub_contracts.queue.window: WINDOW_MIN to WINDOW_MAX); room for
# many windows means a task of one deployment never waits in JetStream behind another deployment's.
CONCURRENT_TASKS = 256
# Tasks are fetched one at a time: a fetch of N waits (up to its timeout) until N are there, and with
# only a window of tasks in flight that wait would set the job's pace. A fetch of one returns as
# soon as a task is there.
# Redelivery of a task whose worker died comes after this; a running task heartbeats well within.
TASK_ACK_WAIT = 30.0

# Online predict requests handled at once by one worker process (FastStream runs each in a task
# of its own). Admission is bounded in samples by OnlineBatcher.max_samples; past it, 429 at once.
ONLINE_CONCURRENCY = 1024
# The most reply bytes NATS carries when the server does not say (nats-server's default).
DEFAULT_MAX_PAYLOAD = 1024 * 1024

# JetStream advisories are core NATS messages: captured in a stream so that one published while
# no worker runs still reaches a worker later.
DEADLETTER_STREAM = JStream(
    name=subjects.DEADLETTER_STREAM, subjects=[subjects.WORKER_TASKS_MAX_DELIVERIES], storage=StorageType.FILE
)


SERVICE = "inference-worker"


def register(
    broker: NatsBroker, store: WorkerStore, serve: ServeClient, metrics: telemetry.Metrics | None = None
) -> predict_sub.PredictSubscription:
    """Wire the task consumer, its dead-letter consumer and online predict; returns online
    predict's nats-py subscription, for the app to start once the broker is connected."""

    bus.declare(
        broker,
        SERVICE,
        subjects.SAMPLE_ANNOTATED,
        SampleAnnotated,
        "a task's sample outcomes (annotated or failed, with why)",
    )

    async def publish(event: SampleAnnotated) -> None:
        await publish_event(broker, subjects.SAMPLE_ANNOTATED, event)

    def counted(task: TaskScheduled | None) -> Callable[[SampleAnnotated], Awaitable[None]]:
        totals = {telemetry.SAMPLES_OK: 0, telemetry.SAMPLES_FAILED: 0}  # over the task's chunks

        async def publish_counted(event: SampleAnnotated) -> None:
            await publish(event)
            if task is not None:
                count_outcomes(metrics, task, event, totals)

        return publish_counted

    @durable_subscriber(
        broker,
        SERVICE,
        subjects.TASK_SCHEDULED,
        subjects.DURABLE_WORKER_TASKS,
        ack_wait=TASK_ACK_WAIT,
        max_deliver=MAX_DELIVER,
        max_workers=CONCURRENT_TASKS,
    )
    async def on_task(task: TaskScheduled) -> None:
        """Annotate the task's samples, write their fields, publish their outcomes as one event; acked
        after that, NAKed for a later retry when serving or storage failed."""
        message = current_message(broker)
        started, publish_task = time.perf_counter(), counted(task)
        telemetry.annotate_current(
            {
                telemetry.JOB_ID: task.job_id,
                telemetry.TASK_ID: task.task_id,
                telemetry.DATASET: task.dataset,
                telemetry.DEPLOYMENT: task.deployment,
                telemetry.BATCH_SIZE: len(task.sample_ids),
            }
        )
        with log_ids(job_id=task.job_id, task_id=task.task_id, deployment=task.deployment, dataset=task.dataset):
            async with keep_alive(message):
                delay = await attempt(
                    task,
                    deliveries(message),
                    lambda: run_task(task, store, serve.predict_chunk, publish_task, short_error, serve),
                    store,
                    publish_task,
                    short_error,
                )
        if metrics is not None:
            metrics.task_duration.record(time.perf_counter() - started, {"deployment": task.deployment})
        await (message.ack() if delay is None else message.nack(delay=delay))

    @durable_subscriber(
        broker,
        SERVICE,
        subjects.WORKER_TASKS_MAX_DELIVERIES,
        subjects.DURABLE_WORKER_DEADLETTERS,
        ack_wait=60.0,
        max_deliver=-1,
        stream=DEADLETTER_STREAM,
    )
    async def on_max_deliveries(advisory: MaxDeliveriesAdvisory, message: NatsMessage, js: JsClient) -> None:
        """JetStream stopped delivering a task: fail its samples with the reason, never drop them."""

        fetched: list[TaskScheduled] = []

        async def fetch(stream: str, seq: int) -> TaskScheduled | None:
            try:
                fetched.append(TaskScheduled.model_validate_json((await js.get_msg(stream, seq)).data or b""))
                return fetched[-1]
            except (NotFoundError, ValidationError):  # gone, or never was a task: nothing to fail
                return None

        async def publish_failed(event: SampleAnnotated) -> None:
            await counted(fetched[-1] if fetched else None)(event)

        await settle(message, dead_letter_advised(advisory, fetch, store, publish_failed))

    batcher = OnlineBatcher(serve.predict_batch, short_error)

    async def answer(request: PredictRequest) -> RpcReply:
        return sized(await predict_reply(request, batcher.run, serve.forget), _max_payload(broker))

    # The declared subscriber (the bus contract); predict_sub.py takes its place once connected.
    subscriber = broker.subscriber(
        subjects.RPC_PREDICT,
        queue=predict_sub.QUEUE,
        max_workers=ONLINE_CONCURRENCY,
        title=bus.receiving(SERVICE, subjects.RPC_PREDICT),
    )

    @subscriber
    async def on_predict(request: PredictRequest) -> RpcReply:
        """Online inference: the samples go through the deployment in shared batches, outputs
        checked by type; 429 when this worker is full, 504 (calls cancelled) past the deadline."""
        return await answer(request)

    return predict_sub.PredictSubscription(answer, serve.tel, replaces=subscriber)


def count_outcomes(
    metrics: telemetry.Metrics | None, task: TaskScheduled, event: SampleAnnotated, totals: dict[str, int]
) -> None:
    """A task's published outcomes: the sample counters (by deployment) and the task span's counts
    (`totals`, over the task's chunks). Counted as published: a task redelivered after it published
    (its worker died before the ack) counts again here, while the job's own counts, from its
    ledger, never do."""
    ok = sum(1 for s in event.samples if s.ok)
    failed = len(event.samples) - ok
    totals[telemetry.SAMPLES_OK] += ok
    totals[telemetry.SAMPLES_FAILED] += failed
    telemetry.annotate_current(totals)
    if metrics is not None:
        labels = {"deployment": task.deployment}
        metrics.samples_annotated.add(ok, labels)
        metrics.samples_failed.add(failed, labels)


async def predict_reply(
    request: PredictRequest, run: Callable[..., Awaitable[list]], forget: Callable[[str], None]
) -> RpcReply:
    """The outputs, or the refusal that says why (the gateway passes the status on)."""
    shape = Shape(request.mini_batch, 2 * request.num_replicas, request.batch_wait_ms / 1000)
    try:
        async with asyncio.timeout(request.timeout_s):
            return ok(
                {"outputs": await predict_online(run, request.deployment, request.inputs, request.output_types, shape)}
            )
    except Overloaded as exc:
        return RpcReply(status=429, detail=str(exc), retry_after=exc.retry_after)
    except TimeoutError:
        return refuse(
            504,
            f"deployment '{request.deployment}' did not answer within {request.timeout_s:g} s; "
            "the request was cancelled",
        )
    except DeploymentUnavailable as exc:
        forget(request.deployment)
        return refuse(409, str(exc))
    except ServingLost as exc:
        return refuse(503, f"{exc}; try again")
    except ValueError as exc:
        return refuse(422, str(exc))
    except RuntimeError as exc:
        return refuse(502, f"the model failed: {exc}")


def sized(reply: RpcReply, max_bytes: int) -> RpcReply:
    """The reply, or a 413 when it is too large for one NATS message (it would never arrive)."""
    size = len(reply.model_dump_json())
    if size <= max_bytes:
        return reply
    return refuse(
        413,
        f"the outputs take {size} bytes, over the {max_bytes}-byte limit of one reply; send fewer samples per request",
    )


def _max_payload(broker: NatsBroker) -> int:
    try:
        limit = broker.connection.max_payload
    except Exception:
        limit = None
    if not isinstance(limit, int) or limit <= 0:  # not connected to a real server (TestNatsBroker)
        limit = DEFAULT_MAX_PAYLOAD
    return limit - 4096  # room for the message's headers
