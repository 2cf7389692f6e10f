"""Box matching needs each sample's two lists of boxes side by side, which no `$group` gives: the
samples that have both fields are read in id order, the two fields only, a batch at a time, and each
batch is matched in a worker thread (so that a long evaluation leaves the event loop to other
requests). Only each prediction's confidence and hit are kept (scoring.DetectionTally), never a
sample, so memory grows with the predictions, not the dataset. bench/README.md gives the rate.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from modelhub_contracts.errors import Invalid
from modelhub_gateway.evaluation.scoring import Box, DetectionTally
from modelhub_gateway.store import GatewayStore

BATCH = 2_000  # samples per cursor batch and per matching step in the thread


def boxes(value: Any, name: str, sample_id: str, truth: bool) -> list[Box]:
    """The detections of one sample's field as boxes; Invalid naming the field and sample for an
    item without a string label, an [x, y, w, h] of numbers, or (a prediction's) a confidence."""
    items = value.get("detections") if isinstance(value, dict) else None
    if not isinstance(items, list):
        raise Invalid(f"field '{name}' of sample {sample_id} holds no detections list")
    found = []
    for i, item in enumerate(items):
        where = f"field '{name}' of sample {sample_id}, detections[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("label"), str):
            raise Invalid(f"{where} has no string label")
        box = item.get("bounding_box")
        if not isinstance(box, list) or len(box) != 4 or not all(_number(v) for v in box):
            raise Invalid(f"{where} has no bounding_box [x, y, w, h] of numbers")
        confidence = item.get("confidence", 1.0 if truth else None)
        if not _number(confidence):
            raise Invalid(f"{where} has no confidence: predictions are ranked by it")
        found.append(Box(item["label"], *(float(v) for v in box), confidence=float(confidence)))
    return found


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


async def tally(
    store: GatewayStore, dataset: str, prediction: str, ground_truth: str, threshold: float
) -> DetectionTally:
    """Match every sample's predicted boxes to its ground truth at IoU `threshold`."""
    result = DetectionTally(threshold)
    paths = [f"fields.{prediction}", f"fields.{ground_truth}"]
    cursor = store.samples.find(
        {"dataset": dataset, **{path: {"$ne": None} for path in paths}},
        projection=dict.fromkeys(paths, 1),
        sort=[("_id", 1)],
        batch_size=BATCH,
    )
    batch: list[dict[str, Any]] = []
    async for doc in cursor:
        batch.append(doc)
        if len(batch) >= BATCH:
            await asyncio.to_thread(_add, result, batch, prediction, ground_truth)
            batch = []
    await asyncio.to_thread(_add, result, batch, prediction, ground_truth)
    return result


def _add(result: DetectionTally, docs: list[dict[str, Any]], prediction: str, ground_truth: str) -> None:
    result.add_all(
        (
            boxes(doc["fields"][prediction], prediction, doc["_id"], truth=False),
            boxes(doc["fields"][ground_truth], ground_truth, doc["_id"], truth=True),
        )
        for doc in docs
    )
