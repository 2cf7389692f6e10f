"""Evaluation use cases: score a prediction field against a ground-truth field of a dataset, keep
the result under a name, list, read and delete results, and turn a confusion-matrix cell into the
samples route's filter.

Who may do what: whoever may read the dataset may evaluate it and read its evaluations (the
routes take the dataset as the caller may see it); deleting one takes its creator, the dataset's
owner or the admin. An evaluation is a snapshot: later writes to the fields change the samples a
cell filter finds, not the stored numbers.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from modelhub_contracts.documents import Dataset, User
from modelhub_contracts.errors import Conflict, Forbidden, Invalid, NotFound
from modelhub_contracts.events import utcnow
from modelhub_gateway.evaluation import census, detections, scoring
from modelhub_gateway.evaluation.schemas import EvaluationCreate
from modelhub_gateway.store import GatewayStore

SUMMARY = {"per_label": 0, "confusion": 0}  # what a listing leaves out (a matrix may be megabytes)


async def create(store: GatewayStore, user: User, dataset: Dataset, body: EvaluationCreate) -> dict[str, Any]:
    """Count and score; store the result under its name (Conflict if taken); the public document."""
    name = dataset["_id"]
    if await store.evaluations.find_one({"dataset": name, "name": body.name}, {"_id": 1}):
        raise _taken(body.name, name)
    counted = await census.count(store, dataset, body.prediction, body.ground_truth)
    kind = counted.evaluation_type(name)
    doc: dict[str, Any] = {
        "_id": str(ObjectId()),
        "dataset": name,
        "name": body.name,
        "prediction": body.prediction,
        "ground_truth": body.ground_truth,
        "type": kind,
        "kinds": {"prediction": _kind(counted, body.prediction), "ground_truth": _kind(counted, body.ground_truth)},
        "samples": counted.evaluated,
        "missing": counted.missing,
        "created_by": user["username"],
        "created_at": _millis(utcnow()),
        "lineage": counted.lineage(),
    }
    if kind == census.DETECTIONS:
        matched = await detections.tally(store, name, body.prediction, body.ground_truth, body.iou)
        doc |= {"iou": body.iou, **(await asyncio.to_thread(matched.scores))}
    else:
        doc |= scoring.classification(counted.label_pairs())
    doc["per_label"] = [{"label": label, **scores} for label, scores in doc["per_label"].items()]
    try:
        await store.evaluations.insert_one(doc)
    except DuplicateKeyError:  # another request took the name while this one counted
        raise _taken(body.name, name) from None
    return public(doc)


def _millis(at: datetime) -> datetime:
    """The time as MongoDB keeps it (milliseconds), so that the POST's answer is what a GET reads."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _kind(counted: census.Census, field: str) -> str:
    return next(k for k, _ in counted.kinds[field].most_common() if k != census.MISSING)


def _taken(evaluation: str, dataset: str) -> Conflict:
    return Conflict(f"dataset '{dataset}' already has an evaluation named '{evaluation}'")


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """The API's shape of a stored evaluation: per-label scores keyed by label."""
    out = {k: v for k, v in doc.items() if k not in ("_id", "kinds")}
    if "per_label" in doc:
        out["per_label"] = {s["label"]: {k: v for k, v in s.items() if k != "label"} for s in doc["per_label"]}
    return out


async def list_of(store: GatewayStore, dataset: str) -> list[dict[str, Any]]:
    """The dataset's evaluations, newest first, without per-label scores and matrix."""
    cursor = store.evaluations.find({"dataset": dataset}, SUMMARY, sort=[("created_at", DESCENDING)])
    return [public(doc) async for doc in cursor]


async def get(store: GatewayStore, dataset: str, evaluation: str) -> dict[str, Any]:
    """One evaluation of the dataset (NotFound if it has none of that name)."""
    return public(await _stored(store, dataset, evaluation))


async def _stored(store: GatewayStore, dataset: str, evaluation: str, projection: Any = None) -> dict[str, Any]:
    doc = await store.evaluations.find_one({"dataset": dataset, "name": evaluation}, projection)
    if doc is None:
        raise NotFound(f"evaluation '{evaluation}' not found on dataset '{dataset}'")
    return doc


async def delete(store: GatewayStore, user: User, dataset: Dataset, evaluation: str) -> None:
    """Delete an evaluation: its creator, the dataset's owner or the admin (Forbidden otherwise)."""
    doc = await _stored(store, dataset["_id"], evaluation, {"created_by": 1})
    if not (user.get("is_admin") or user["username"] in (doc["created_by"], dataset["owner"])):
        raise Forbidden(f"only its creator or the dataset's owner may delete evaluation '{evaluation}'")
    await store.evaluations.delete_one({"_id": doc["_id"]})


async def cell_filter(
    store: GatewayStore,
    dataset: str,
    evaluation: str | None,
    ground_truth_label: str | None,
    prediction_label: str | None,
) -> dict[str, Any] | None:
    """The samples query's part for `evaluation` (the samples that have both its fields) and, of a
    classification, a confusion row (`ground_truth_label`), column (`prediction_label`) or cell
    (both): equality on the two field paths, which an index on them could serve. None without
    `evaluation`; Invalid for a label without it, or a label of a detections evaluation."""
    if evaluation is None:
        if ground_truth_label is not None or prediction_label is not None:
            raise Invalid("ground_truth_label and prediction_label need `evaluation`")
        return None
    doc = await _stored(store, dataset, evaluation, {"type": 1, "prediction": 1, "ground_truth": 1, "kinds": 1})
    query: dict[str, Any] = {f"fields.{doc[side]}": {"$ne": None} for side in ("prediction", "ground_truth")}
    wanted = {"ground_truth": ground_truth_label, "prediction": prediction_label}
    if doc["type"] == census.DETECTIONS and any(v is not None for v in wanted.values()):
        raise Invalid(f"evaluation '{evaluation}' is of detections: it has no confusion matrix to pick labels from")
    for side, label in wanted.items():
        if label is not None:
            query.update(label_match(doc[side], doc["kinds"][side], label))
    return query


def label_match(field: str, kind: str, label: str) -> dict[str, Any]:
    """The condition that a field of this kind holds this label (as `census` read it)."""
    if kind == census.CLASSIFICATION:
        return {f"fields.{field}.label": label}
    if kind == census.NUMBER:
        try:
            return {f"fields.{field}": int(label)}  # 3 matches 3 and 3.0, as the census read both as "3"
        except ValueError:
            pass  # not a number: no sample holds it; the string below matches none of the numbers
    return {f"fields.{field}": label}
