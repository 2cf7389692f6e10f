"""Worker use cases: run a task's samples through the deployment, check and keep the outputs."""

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from modelhub_contracts.events import MAX_ERROR_CHARS, OUTCOMES_PER_EVENT, SampleAnnotated, SampleOutcome, TaskScheduled
from modelhub_contracts.model_schema import check_output
from modelhub_worker.errors import ServingLost

PredictChunk = Callable[[str, list[dict]], Awaitable[list[dict]]]  # one mini-batch in one call
K = TypeVar("K", bound=Hashable)  # whatever names a sample: a sample id, or a request's index


class Outcome:
    """One sample's result: the fields to write, or the reason it failed."""

    def __init__(self, fields: dict[str, Any] | None = None, error: str | None = None) -> None:
        self.fields, self.error = fields, error


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
) -> dict[K, Any]:
    """Run the samples through the deployment in calls of at most `mini_batch` (all at once, each
    one Model.predict; None: one call). When a call raises, its samples are split in halves and
    each half is called on its own, down to single samples: only the samples that really fail are
    marked failed, and their batch-mates still succeed in batches.

    Raises ServingLost when the deployment gave no verdict (a replica died, none is up): failing
    the samples would blame them for the infrastructure; the task is retried instead."""
    ids = list(inputs)
    size = mini_batch or len(ids) or 1
    parts = await asyncio.gather(
        *(_bisect(predict, deployment, inputs, ids[i : i + size], describe) for i in range(0, len(ids), size))
    )
    return {sid: result for part in parts for sid, result in part.items()}


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
    except Exception as exc:
        if len(ids) == 1:
            return {ids[0]: Outcome(error=describe(exc))}
    half = len(ids) // 2
    return {
        **await _bisect(predict, deployment, inputs, ids[:half], describe),
        **await _bisect(predict, deployment, inputs, ids[half:], describe),
    }


async def annotate(
    task: TaskScheduled, docs: dict[str, dict], predict: PredictChunk, describe: Callable[[BaseException], str]
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
    for sample_id, result in (await predict_many(predict, task.deployment, inputs, describe, task.mini_batch)).items():
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


def _sample_outcome(sample_id: str, outcome: Outcome) -> SampleOutcome:
    error = outcome.error
    return SampleOutcome(
        sample_id=sample_id, ok=error is None, error=None if error is None else error[:MAX_ERROR_CHARS]
    )


def chunked_events(task: TaskScheduled, ordered: list[SampleOutcome]) -> list[SampleAnnotated]:
    parts = [ordered[i : i + OUTCOMES_PER_EVENT] for i in range(0, len(ordered), OUTCOMES_PER_EVENT)] or [[]]
    return [
        SampleAnnotated(
            event_id=event_id(task, k),
            job_id=task.job_id,
            attempt=task.attempt,
            task_id=task.task_id,
            samples=part,
            chunk=k,
            chunks=len(parts),
        )
        for k, part in enumerate(parts)
    ]
