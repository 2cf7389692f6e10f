"""What the worker reads and writes in MongoDB: the task's samples, their new fields, the job's
write lease, and why a task's last delivery failed (for its dead letter)."""

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pymongo import UpdateMany, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, ConnectionFailure, DocumentTooLarge, PyMongoError

from modelhub_contracts.documents import CLOSED, SERVING, JobStatus
from modelhub_contracts.events import TaskScheduled, utcnow
from modelhub_contracts.model_schema import check_field_name


def _matching(task: TaskScheduled) -> dict:
    """A filter on the job document that holds only when the task is part of that job."""
    return {
        "dataset": task.dataset,
        "deployment": task.deployment,
        **{f"inputs.{name}": field for name, field in task.inputs.items()},
        **{f"outputs.{name}": field for name, field in task.outputs.items()},
    }


# MongoDB's answers to a statement over its document size limit (BSONObjectTooLarge and kin)
TOO_LARGE_CODES = frozenset({10334, 17419, 17420})
# Samples per update statement. Each sample's position among its statement's ids is a scan of
# them ($indexOfArray): one statement for a task of 512 took MongoDB ~0.45 s of CPU per 20,000
# samples, statements of 64 ~0.31 s (standalone mongod, four runs each), at the same client cost.
STATEMENT_SAMPLES = 64


def _picking(names: tuple[str, ...], ids: list[str], fields_by_sample: dict[str, dict], written: dict) -> dict:
    """The `$set` stage that gives each sample of `ids` its own values of the `names` fields (the
    value at the sample's position in `ids`) and the same lineage. The update matches samples by
    `_id: {$in: ids}`, and `$indexOfArray` finds each of them in the same `ids` by the same
    equality (under the same collation, if any), so a position is never -1 (`$arrayElemAt` would
    then give the last value). A filter that checks it anyway (`$expr`) would cost MongoDB most
    of the write's CPU again. (A pipeline `$set` would turn a
    `fields` that is not an object into one; the gateway always stores an object.)"""
    at = {"$indexOfArray": [{"$literal": ids}, "$_id"]}  # the sample's position among `ids`
    stage: dict[str, Any] = {
        f"fields.{name}": {"$arrayElemAt": [{"$literal": [fields_by_sample[sid][name] for sid in ids]}, at]}
        for name in names
    }
    stage.update({f"lineage.{name}": {"$literal": written} for name in names})
    return {"$set": stage}


def _input_path(field: str) -> str | None:
    """Where a sample keeps an input: its filepath or one of its fields (None for a name that is no
    field's, as a forged task may carry: left out, the sample then has no such input)."""
    if field == "filepath":
        return field
    return None if check_field_name(field) else f"fields.{field}"


def _retryable(exc: PyMongoError) -> bool:
    """What the driver would have retried once for a retryable single-document write (a multi-
    document update is not one): a lost connection, a primary stepping down."""
    return isinstance(exc, ConnectionFailure) or exc.has_error_label("RetryableWriteError")


@dataclass(frozen=True)
class Lease:
    """The right to write a task's samples, and who is writing: the job, model, version and
    deployment recorded as each written field's lineage. Falsy when refused."""

    writer: dict | None = None

    def __bool__(self) -> bool:
        return self.writer is not None


REFUSED = Lease()


class WorkerStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.samples = db["samples"]
        self.jobs = db["jobs"]
        self.task_failures = db["task_failures"]
        self.deployments = db["deployments"]

    async def serve_secret(self, deployment: str) -> str | None:
        """The secret a running deployment's replicas want with each call (set by the deployer)."""
        return (await self.serve_route(deployment))[0]

    async def serve_route(self, deployment: str) -> tuple[str | None, int]:
        """A running deployment's secret and, for a fixed-size one, its replica count (0 for an
        autoscaled or unknown one: how many replicas the worker is to meet on the direct path,
        direct.py), from one read of its document, so that both are of the same deploy."""
        doc = await self.deployments.find_one(
            {"_id": deployment, "status": {"$in": list(SERVING)}},
            projection={"serve_secret": 1, "num_replicas": 1, "max_replicas": 1},
        )
        if not doc:
            return None, 0
        count = doc.get("num_replicas")
        fixed = doc.get("max_replicas") is None and isinstance(count, int) and count > 0
        return doc.get("serve_secret"), count if fixed else 0

    async def load(self, sample_ids: list[str], dataset: str, inputs: Iterable[str]) -> dict[str, dict]:
        """The task's samples, from its dataset only (a task naming another dataset's samples gets
        none), with only what its model reads: the `inputs` ('filepath' or a field's name). Other
        fields (earlier models' outputs: embeddings, detections) are neither sent nor decoded:
        decoding what the model does not read would be a sizeable share of the worker's CPU."""
        # One round trip: the default first batch is 101 documents (a task of 512 took getMores more),
        # and with a limit the server closes the cursor with the last one instead of waiting for a getMore.
        n = max(1, len(sample_ids))
        paths = [path for field in inputs if (path := _input_path(field))]
        cursor = self.samples.find(
            {"_id": {"$in": sample_ids}, "dataset": dataset},
            projection={"_id": 1, **dict.fromkeys(paths, 1)},
            batch_size=n,
            limit=n,
        )
        return {doc["_id"]: doc async for doc in cursor}

    async def is_cancelled(self, job_id: str) -> bool:
        """A cheap early exit before running the model; the write lease is what guarantees."""
        doc = await self.jobs.find_one({"_id": job_id}, projection={"status": 1, "cancel_requested": 1})
        return doc is None or doc["status"] == JobStatus.CANCELLED or bool(doc.get("cancel_requested"))

    @asynccontextmanager
    async def write_lease(self, task: TaskScheduled) -> AsyncIterator[Lease]:
        """Yield a granted Lease while this worker may write the task's samples, REFUSED if it may not.

        Taking the lease and checking for a cancel is one atomic update, and the gateway marks a
        job cancelled only once no lease is held, so no field lands after a job reports cancelled.
        The lease is granted only to a task that matches its job (dataset, deployment, and each
        input and output mapping): the job was authorised when it was submitted, so a task
        forged on NATS cannot write anything that job would not have.
        """
        job_id = task.job_id
        granted = await self.jobs.find_one_and_update(
            {"_id": job_id, "status": {"$nin": list(CLOSED)}, "cancel_requested": {"$ne": True}, **_matching(task)},
            {"$inc": {"active_writes": 1}},
            projection={"model": 1, "version": 1, "deployment": 1},
        )
        if granted is None:
            yield REFUSED
            return
        try:
            yield Lease(
                {
                    "job_id": job_id,
                    "model": granted["model"],
                    "version": granted["version"],
                    "deployment": granted["deployment"],
                }
            )
        finally:
            await self.jobs.update_one({"_id": job_id}, {"$inc": {"active_writes": -1}})

    async def write_fields(self, fields_by_sample: dict[str, dict], lease: Lease) -> None:
        """Write the task's outputs; each field written gets its lineage beside it
        (`lineage.<field>`: job, model, version, deployment, time).

        One update command for the task: a statement per STATEMENT_SAMPLES samples with the same
        output fields (a task's samples are normally one field set), each a pipeline that picks
        every sample's values by its position among the statement's ids: a bulk of one UpdateOne
        per sample would spend much of the worker's CPU building, validating and encoding a
        statement per sample. Values travel inside `$literal`, so no output is
        ever read as an expression. Samples whose statement MongoDB refuses for its size (over
        the 16 MB document limit: large outputs) are written with one statement per sample
        instead: the refused statement's, or the whole task's when MongoDB refuses the command."""
        written = {**(lease.writer or {}), "at": utcnow()}
        groups: dict[tuple[str, ...], list[str]] = {}
        for sid, fields in fields_by_sample.items():
            if fields:
                groups.setdefault(tuple(fields), []).append(sid)
        parts = [
            (names, ids[start : start + STATEMENT_SAMPLES])
            for names, ids in groups.items()
            for start in range(0, len(ids), STATEMENT_SAMPLES)
        ]
        if too_large := await self._write_parts(parts, fields_by_sample, written):
            await self._write_per_sample(too_large, fields_by_sample, written)

    async def _write_parts(
        self, parts: list[tuple[tuple[str, ...], list[str]]], fields_by_sample: dict[str, dict], written: dict
    ) -> list[tuple[tuple[str, ...], list[str]]]:
        """One pipeline statement per part, in one command (unordered), tried twice on what the
        driver retries for single-document writes (it writes the same values again). Returns
        the parts too large for one statement (not written)."""
        if not parts:
            return []
        for attempt in (1, 2):
            try:
                await self.samples.bulk_write(
                    [
                        UpdateMany({"_id": {"$in": ids}}, [_picking(names, ids, fields_by_sample, written)])
                        for names, ids in parts
                    ],
                    ordered=False,
                )
                return []
            except DocumentTooLarge:  # bson's, not a PyMongoError: a statement past a whole message's size
                return parts  # (statements sent before it are written again: the same values)
            except BulkWriteError as exc:  # the others were written (unordered)
                errors = exc.details.get("writeErrors", [])
                if (
                    errors
                    and not exc.details.get("writeConcernErrors")
                    and all(e.get("code") in TOO_LARGE_CODES for e in errors)
                ):
                    return [parts[e["index"]] for e in errors]
                raise
            except PyMongoError as exc:
                if attempt == 1 and _retryable(exc):
                    continue
                if getattr(exc, "code", None) in TOO_LARGE_CODES:
                    return parts
                raise
        return []  # unreachable: the second attempt returns or raises

    async def _write_per_sample(
        self, parts: list[tuple[tuple[str, ...], list[str]]], fields_by_sample: dict[str, dict], written: dict
    ) -> None:
        await self.samples.bulk_write(
            [
                UpdateOne(
                    {"_id": sid},
                    {
                        "$set": {
                            **{f"fields.{k}": fields_by_sample[sid][k] for k in names},
                            **{f"lineage.{k}": written for k in names},
                        }
                    },
                )
                for names, ids in parts
                for sid in ids
            ],
            ordered=False,
        )

    async def note_failure(self, task_id: str, error: str) -> None:
        """Remember why the task's latest delivery failed; its dead letter reports it."""
        await self.task_failures.update_one({"_id": task_id}, {"$set": {"error": error}}, upsert=True)

    async def last_failure(self, task_id: str) -> str | None:
        doc = await self.task_failures.find_one({"_id": task_id})
        return doc["error"] if doc else None
