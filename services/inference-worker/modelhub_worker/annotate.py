"""Worker use cases: run a task's samples through the deployment, check and keep the outputs."""

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Protocol, TypeVar

from modelhub_contracts.events import MAX_ERROR_CHARS, OUTCOMES_PER_EVENT, SampleAnnotated, TaskScheduled
from modelhub_contracts.model_schema import check_output
from modelhub_worker.errors import AnswerTooLarge, ServingLost


class Outcome:
    """One sample's result: the fields to write, or the reason it failed."""

    def __init__(self, fields: dict[str, Any] | None = None, error: str | None = None) -> None:
        self.fields, self.error = fields, error


# One mini-batch in one call: each sample's outputs, or an Outcome failing it (an output the
# worker would not take, modelhub_worker.serving)
PredictChunk = Callable[[str, list[dict]], Awaitable[Sequence[dict | Outcome]]]
K = TypeVar("K", bound=Hashable)  # whatever names a sample: a sample id, or a request's index
# The most samples one call to a replica carries (more only as one mini-batch): a task's
# mini-batches are spread over its deployment's replicas in calls of up to this many.
CALL_SAMPLES = OUTCOMES_PER_EVENT


class BatchCalls(Protocol):
    """Several mini-batches in one call (modelhub_worker.serving.ServeClient)."""

    def spread(self, deployment: str) -> int:
        """How many calls to spread a task's mini-batches over (0: one call per mini-batch)."""
        ...

    async def predict_chunks(
        self, deployment: str, batches: list[list[dict]]
    ) -> Sequence[Sequence[dict | Outcome] | Exception]:
        """Each mini-batch's outputs, or the model's failure on it; raises when the call as a whole failed."""
        ...


def sample_inputs(doc: dict, inputs: dict[str, str]) -> dict[str, Any]:
    """Model input name -> value read from the sample ('filepath' or one of its fields)."""
    values = {}
    for name, field in inputs.items():
        if field == "filepath":
            values[name] = doc["filepath"]
        elif field in doc.get("fields", {}):
            values[name] = doc["fields"][field]
        else:
            raise KeyError(f"sample has no field '{field}' for input '{name}'")
    return values


def check_outputs(result: Any, outputs: dict[str, str], types: dict[str, str]) -> Outcome:
    """Map the model's outputs to sample fields, checking each against its declared type."""
    if not isinstance(result, dict):
        return Outcome(error=f"model returned {type(result).__name__}, expected a dict of outputs")
    fields = {}
    for name, field in outputs.items():
        if name not in result:
            return Outcome(error=f"model returned no output '{name}'")
        if problem := check_output(types[name], result[name]):
            return Outcome(error=f"output '{name}' is not a valid {types[name]}: {problem}")
        fields[field] = result[name]
    return Outcome(fields=fields)


async def predict_many(
    predict: PredictChunk,
    deployment: str,
    inputs: dict[K, dict],
    describe: Callable[[BaseException], str],
    mini_batch: int | None = None,
    calls: BatchCalls | None = None,
) -> dict[K, Any]:
    """Run the samples through the deployment in mini-batches of at most `mini_batch` (None: one),
    each one Model.predict call, all at once: one call each, or, with `calls` and several
    replicas known, the mini-batches spread over as many calls as there are replicas, each of up
    to CALL_SAMPLES samples (fewer round trips). When the model fails on a mini-batch, its
    samples are split in halves and each half is called on its own, down to single samples: only
    the samples that really fail are marked failed, and their batch-mates still succeed in batches. A mini-batch whose answer is
    over the worker's bound (AnswerTooLarge) fails whole, with why, without being split.

    Raises ServingLost when the deployment gave no verdict (a replica died, none is up): failing
    the samples would blame them for the infrastructure; the task is retried instead."""
    ids = list(inputs)
    size = mini_batch or len(ids) or 1
    batches = [ids[i : i + size] for i in range(0, len(ids), size)]
    spread = calls.spread(deployment) if calls is not None else 0
    # as few calls as replicas, each of at most CALL_SAMPLES samples (or one mini-batch): a task
    # of thousands of samples still makes calls whose answers the worker's bound was set for
    per_call = min(-(-len(batches) // spread), max(1, CALL_SAMPLES // size)) if spread else 1
    if calls is None or per_call == 1:
        return await _each_alone(predict, deployment, inputs, batches, describe)
    groups = [batches[i : i + per_call] for i in range(0, len(batches), per_call)]
    parts = await asyncio.gather(*(_in_one_call(calls, predict, deployment, inputs, g, describe) for g in groups))
    return {sid: result for part in parts for sid, result in part.items()}


async def _each_alone(
    predict: PredictChunk,
    deployment: str,
    inputs: dict[K, dict],
    batches: list[list[K]],
    describe: Callable[[BaseException], str],
) -> dict[K, Any]:
    """One call per mini-batch, all at once (each through _bisect)."""
    parts = await asyncio.gather(*(_bisect(predict, deployment, inputs, batch, describe) for batch in batches))
    return {sid: result for part in parts for sid, result in part.items()}


async def _in_one_call(
    calls: BatchCalls,
    predict: PredictChunk,
    deployment: str,
    inputs: dict[K, dict],
    batches: list[list[K]],
    describe: Callable[[BaseException], str],
) -> dict[K, Any]:
    """Several mini-batches in one call; a mini-batch the model failed on is split as in _bisect,
    and when the call as a whole had no such answer (or one too large: AnswerTooLarge) each
    mini-batch is called on its own."""
    try:
        results = await calls.predict_chunks(deployment, [[inputs[i] for i in batch] for batch in batches])
    except ServingLost:
        raise
    except Exception:  # e.g. a replica that takes one mini-batch per call
        return await _each_alone(predict, deployment, inputs, batches, describe)
    done: dict[K, Any] = {}
    failed = []
    for batch, result in zip(batches, results, strict=True):
        if isinstance(result, Exception):
            failed.append(_split(predict, deployment, inputs, batch, result, describe))
        else:
            done.update(zip(batch, result, strict=True))
    for part in await asyncio.gather(*failed):
        done.update(part)
    return done


async def _bisect(
    predict: PredictChunk,
    deployment: str,
    inputs: dict[K, dict],
    ids: list[K],
    describe: Callable[[BaseException], str],
) -> dict[K, Any]:
    if not ids:
        return {}
    try:
        return dict(zip(ids, await predict(deployment, [inputs[i] for i in ids]), strict=True))
    except ServingLost:
        raise
    except AnswerTooLarge as exc:  # the model's verdict on the whole call, not split (see the error)
        return {i: Outcome(error=describe(exc)) for i in ids}
    except Exception as exc:
        return await _split(predict, deployment, inputs, ids, exc, describe)


async def _split(
    predict: PredictChunk,
    deployment: str,
    inputs: dict[K, dict],
    ids: list[K],
    error: BaseException,
    describe: Callable[[BaseException], str],
) -> dict[K, Any]:
    """Samples the model failed on together (`error`): a lone one fails with it, more are halved
    and each half called on its own."""
    if len(ids) == 1:
        return {ids[0]: Outcome(error=describe(error))}
    half = len(ids) // 2
    return {
        **await _bisect(predict, deployment, inputs, ids[:half], describe),
        **await _bisect(predict, deployment, inputs, ids[half:], describe),
    }


async def annotate(
    task: TaskScheduled,
    docs: dict[str, dict],
    predict: PredictChunk,
    describe: Callable[[BaseException], str],
    calls: BatchCalls | None = None,
) -> dict[str, Outcome]:
    """Every sample of the task gets an Outcome: fields to write, or an error."""
    outcomes: dict[str, Outcome] = {}
    inputs: dict[str, dict] = {}
    for sample_id in task.sample_ids:
        doc = docs.get(sample_id)
        try:
            if doc is None:
                raise KeyError("sample no longer exists")
            inputs[sample_id] = sample_inputs(doc, task.inputs)
        except KeyError as exc:
            outcomes[sample_id] = Outcome(error=str(exc.args[0]))
    predicted = await predict_many(predict, task.deployment, inputs, describe, task.mini_batch, calls)
    for sample_id, result in predicted.items():
        outcomes[sample_id] = (
            result if isinstance(result, Outcome) else check_outputs(result, task.outputs, task.output_types)
        )
    return outcomes


def event_id(task: TaskScheduled, chunk: int) -> str:
    """One id per task and chunk of its outcomes, whoever publishes it (worker or dead-letter
    handler), so JetStream stores only the first one published within its duplicate window."""
    return f"{task.task_id}.annotated.{chunk}"


def events_for(task: TaskScheduled, outcomes: dict[str, Outcome]) -> list[SampleAnnotated]:
    """The task's outcomes in its sample order, OUTCOMES_PER_EVENT per event (one event for any
    mini_batch up to that): one JetStream publish per task instead of one per sample."""
    ordered = [_sample_outcome(sid, outcomes[sid]) for sid in task.sample_ids if sid in outcomes]
    return chunked_events(task, ordered)


def _sample_outcome(sample_id: str, outcome: Outcome) -> dict:
    """A SampleOutcome as the event validates it: plain dicts validated once with their event
    cost less than SampleOutcome objects built one by one."""
    if outcome.error is None:
        return {"sample_id": sample_id, "ok": True}
    return {"sample_id": sample_id, "ok": False, "error": outcome.error[:MAX_ERROR_CHARS]}


def chunked_events(task: TaskScheduled, ordered: list[dict]) -> list[SampleAnnotated]:
    """The outcomes (SampleOutcome fields as dicts, validated with their event) in events of
    OUTCOMES_PER_EVENT."""
    parts = [ordered[i : i + OUTCOMES_PER_EVENT] for i in range(0, len(ordered), OUTCOMES_PER_EVENT)] or [[]]
    return [
        SampleAnnotated.model_validate(
            {
                "event_id": event_id(task, k),
                "job_id": task.job_id,
                "attempt": task.attempt,
                "task_id": task.task_id,
                "samples": part,
                "chunk": k,
                "chunks": len(parts),
            }
        )
        for k, part in enumerate(parts)
    ]
