"""Looking at a dataset's samples: filters for the grid, per-field label counts, and export.

Filters work on model outputs as they are stored: a classification is `{"label", "confidence"}`,
detections are `{"detections": [{"label", "confidence", ...}]}`; a label filter matches either.
Export streams from a cursor in batches, so a dataset of any size is never held in memory.
"""

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from modelhub_contracts.errors import Invalid
from modelhub_gateway.store import GatewayStore

EXPORT_BATCH = 1000
FIELD_NAME = re.compile("^[^.$\x00][^.\x00]{0,255}$")  # addressable as a MongoDB path
LABELS_SHOWN = 50  # per field in the summary: the most frequent labels


# Filters that read an output, and so need `field` to say which one (the samples route states it
# in its OpenAPI operation too: `dependentRequired` of its `filters` query object)
NEEDS_FIELD = ("label", "min_confidence", "max_confidence")


class InvalidFilter(Invalid):
    """A filter names a bad field or an impossible range (the route answers 422)."""


@dataclass(frozen=True)
class SampleFilter:
    field: str | None = None
    label: str | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    missing: str | None = None
    failed_ids: tuple[str, ...] | None = None  # the failed samples of one job, when filtering by it

    def query(self, dataset: str) -> dict[str, Any]:
        """The MongoDB query for the samples of `dataset` that pass this filter."""
        query: dict[str, Any] = {"dataset": dataset}
        for name in (self.field, self.missing):
            if name is not None and not FIELD_NAME.match(name):
                raise InvalidFilter(f"field '{name}' is not a field name (no '.', not starting with '$')")
        if self.missing:
            query[f"fields.{self.missing}"] = {"$exists": False}
        if self.failed_ids is not None:
            query["_id"] = {"$in": list(self.failed_ids)}
        if any(getattr(self, name) is not None for name in NEEDS_FIELD):
            if not self.field:
                raise InvalidFilter("a label or confidence filter needs `field`")
            query["$or"] = self._output_match(self.field)
        return query

    def _output_match(self, field: str) -> list[dict[str, Any]]:
        low, high = self.min_confidence, self.max_confidence
        if low is not None and high is not None and low > high:
            raise InvalidFilter("min_confidence is above max_confidence")
        condition: dict[str, Any] = {}
        if self.label is not None:
            condition["label"] = self.label
        confidence = {op: v for op, v in (("$gte", low), ("$lte", high)) if v is not None}
        if confidence:
            condition["confidence"] = confidence
        classification = {f"fields.{field}.{k}": v for k, v in condition.items()}
        return [classification, {f"fields.{field}.detections": {"$elemMatch": condition}}]


async def field_summary(store: GatewayStore, dataset: str) -> list[dict[str, Any]]:
    """Each field on the dataset's samples: how many samples have it, its most frequent labels
    (classification and detections), and the jobs that wrote it (newest first)."""
    counts = store.samples.aggregate(
        [
            {"$match": {"dataset": dataset}},
            {"$project": {"keys": {"$objectToArray": {"$ifNull": ["$fields", {}]}}}},
            {"$unwind": "$keys"},
            {"$group": {"_id": "$keys.k", "samples": {"$sum": 1}}},
            {"$sort": {"_id": 1}},
        ]
    )
    writers = await _writers(store, dataset)
    return [
        {
            "name": doc["_id"],
            "samples": doc["samples"],
            "labels": await _labels(store, dataset, doc["_id"]),
            "jobs": writers.get(doc["_id"], []),
        }
        async for doc in await counts
    ]


async def _labels(store: GatewayStore, dataset: str, field: str) -> list[dict[str, Any]]:
    if not FIELD_NAME.match(field):  # a name no query could address: no label counts
        return []
    path = f"$fields.{field}"
    pipeline = [
        {"$match": {"dataset": dataset, f"fields.{field}": {"$type": "object"}}},
        {
            "$project": {
                "labels": {"$cond": [{"$isArray": f"{path}.detections"}, f"{path}.detections.label", [f"{path}.label"]]}
            }
        },
        {"$unwind": "$labels"},
        {"$match": {"labels": {"$type": "string"}}},
        {"$group": {"_id": "$labels", "count": {"$sum": 1}}},
        {"$sort": {"count": -1, "_id": 1}},
        {"$limit": LABELS_SHOWN},
    ]
    return [{"label": d["_id"], "count": d["count"]} async for d in await store.samples.aggregate(pipeline)]


async def _writers(store: GatewayStore, dataset: str) -> dict[str, list[dict[str, Any]]]:
    writers: dict[str, list[dict[str, Any]]] = {}
    async for job in store.jobs.find({"dataset": dataset}, sort=[("created_at", -1)]):
        for output, field in (job.get("outputs") or {}).items():
            writers.setdefault(field, []).append(
                {
                    "job_id": job["_id"],
                    "model": job.get("model"),
                    "version": job.get("version"),
                    "deployment": job.get("deployment"),
                    "output": output,
                    "status": job.get("status"),
                    "at": job.get("finished_at") or job.get("created_at"),
                }
            )
    return writers


async def export_lines(store: GatewayStore, dataset: str, fmt: str, fields: list[str] | None) -> AsyncIterator[str]:
    """The dataset as JSON Lines (`{"id", "filepath", "fields"}` per sample) or CSV (a header row,
    then `id`, `filepath` and one column per field, objects as JSON), in insertion order."""
    columns: list[str] = []  # CSV's field columns: the asked ones, else every field of the dataset
    if fmt == "csv":
        columns = fields if fields is not None else [f["name"] for f in await _field_names(store, dataset)]
        fields = columns
    cursor = store.samples.find({"dataset": dataset}, sort=[("_id", 1)], batch_size=EXPORT_BATCH)
    if fmt == "csv":
        yield _csv_row(["id", "filepath", *columns])
    batch: list[str] = []
    async for doc in cursor:
        values = doc.get("fields") or {}
        if fields is not None:
            values = {k: values[k] for k in fields if k in values}
        if fmt == "csv":
            batch.append(_csv_row([doc["_id"], doc["filepath"], *(_cell(values.get(k)) for k in columns)]))
        else:
            batch.append(
                json.dumps({"id": doc["_id"], "filepath": doc["filepath"], "fields": values}, default=str) + "\n"
            )
        if len(batch) >= EXPORT_BATCH:
            yield "".join(batch)
            batch = []
    if batch:
        yield "".join(batch)


async def _field_names(store: GatewayStore, dataset: str) -> list[dict[str, Any]]:
    pipeline = [
        {"$match": {"dataset": dataset}},
        {"$project": {"keys": {"$objectToArray": {"$ifNull": ["$fields", {}]}}}},
        {"$unwind": "$keys"},
        {"$group": {"_id": "$keys.k"}},
        {"$sort": {"_id": 1}},
    ]
    return [{"name": d["_id"]} async for d in await store.samples.aggregate(pipeline)]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _csv_row(values: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()
