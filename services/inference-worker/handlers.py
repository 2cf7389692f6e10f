"""The worker's subscribers: tasks from JetStream, online predict over request/reply."""

import asyncio

from faststream.nats import NatsBroker, PullSub

from modelhub_contracts import subjects
from modelhub_contracts.events import PredictRequest, RpcReply, TaskScheduled
from modelhub_contracts.messaging import EVENTS_STREAM, ok, publish_event, refuse

from modelhub_worker.annotate import annotate, events_for, predict_online
from modelhub_worker.serving import DeploymentUnavailable, ServeClient, short_error
from modelhub_worker.store import WorkerStore

# Tasks processed at once by one worker process; each task's samples are called concurrently too.
CONCURRENT_TASKS = 8


def register(broker: NatsBroker, store: WorkerStore, serve: ServeClient) -> None:
    @broker.subscriber(subjects.TASK_SCHEDULED, stream=EVENTS_STREAM, durable=subjects.DURABLE_WORKER_TASKS,
                       pull_sub=PullSub(batch_size=CONCURRENT_TASKS, timeout=1.0), max_workers=CONCURRENT_TASKS)
    async def on_task(task: TaskScheduled) -> None:
        """Annotate the task's samples, write their fields, then publish one SampleAnnotated each.
        Acked after the events are stored, so a crash before that redelivers the task."""
        if await store.is_cancelled(task.job_id):
            return
        outcomes = await annotate(task, await store.load(task.sample_ids), serve.predict_one, short_error)
        if await store.is_cancelled(task.job_id):
            return
        await store.write_fields({sid: o.fields for sid, o in outcomes.items() if o.error is None})
        await asyncio.gather(*(publish_event(broker, subjects.SAMPLE_ANNOTATED, e)
                               for e in events_for(task, outcomes)))

    @broker.subscriber(subjects.RPC_PREDICT, queue="inference-worker")
    async def on_predict(request: PredictRequest) -> RpcReply:
        """Online inference: per-sample calls through the deployment, outputs checked by type."""
        try:
            return ok({"outputs": await predict_online(serve.predict_one, request.deployment, request.inputs,
                                                       request.output_types, short_error)})
        except DeploymentUnavailable as exc:
            serve.forget(request.deployment)
            return refuse(409, str(exc))
        except ValueError as exc:
            return refuse(422, str(exc))
        except RuntimeError as exc:
            return refuse(502, f"the model failed: {exc}")
