"""The numbers of an evaluation, from what MongoDB counted and matched: pure functions, no I/O.

Classification works on the counts of each (ground truth, prediction) label pair, which is what one
`$group` over the samples gives: a dataset of any size is a labels × labels matrix here. A division
by zero gives 0.0, as scikit-learn's `classification_report` does by default, so the two agree.

Detections: a sample's predicted boxes are matched to its ground-truth boxes of the same label
greedily, highest confidence first, each to the still unmatched ground-truth box it overlaps most,
when that IoU is at least the threshold (COCO's rule). Matching per sample and ranking afterwards
gives what one ranking over the whole dataset gives (Pascal VOC's way), because a match in one
sample never changes another's. AP per label is the area under the precision/recall curve with
all-points interpolation (VOC 2010 on): the sum over the ranked predictions of the recall each adds
times the best precision at that recall or beyond. Predictions of equal confidence keep the order
the samples were read in (by id), so a result never depends on a sort's whims. mAP is the mean AP
over the labels that have ground truth; a label with predictions only has AP null.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


def classification(pairs: Mapping[tuple[str, str], int]) -> dict[str, Any]:
    """Accuracy, per-label precision/recall/F1/support and the confusion matrix (rows ground
    truth, columns prediction, labels sorted) from the count of each (ground truth, prediction) pair."""
    labels = sorted({g for g, _ in pairs} | {p for _, p in pairs})
    at = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for (truth, predicted), count in pairs.items():
        matrix[at[truth]][at[predicted]] += count
    total = sum(pairs.values())
    predicted = [sum(row[j] for row in matrix) for j in range(len(labels))]
    per_label = {}
    for i, label in enumerate(labels):
        hits, support = matrix[i][i], sum(matrix[i])
        per_label[label] = {
            "precision": _ratio(hits, predicted[i]),
            "recall": _ratio(hits, support),
            "f1": _ratio(2 * hits, support + predicted[i]),  # 2·tp / (2·tp + fp + fn)
            "support": support,
        }
    return {
        "accuracy": _ratio(sum(matrix[i][i] for i in range(len(labels))), total),
        "per_label": per_label,
        "confusion": {"labels": labels, "matrix": matrix},
    }


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


@dataclass(frozen=True)
class Box:
    """A detection: its label, confidence (1.0 for ground truth) and [x, y, w, h] relative box."""

    label: str
    x: float
    y: float
    w: float
    h: float
    confidence: float = 1.0


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two [x, y, w, h] boxes (0.0 when they do not overlap)."""
    across = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    down = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    if across <= 0 or down <= 0:
        return 0.0
    inter = across * down
    return inter / (a.w * a.h + b.w * b.h - inter)


def match(predictions: Sequence[Box], truths: Sequence[Box], threshold: float) -> list[tuple[Box, bool]]:
    """Each prediction of one sample with whether it is a true positive, highest confidence first."""
    taken = [False] * len(truths)
    matched = []
    for prediction in sorted(predictions, key=lambda b: b.confidence, reverse=True):  # stable: ties keep order
        best, best_iou = -1, -1.0
        for j, truth in enumerate(truths):
            if taken[j] or truth.label != prediction.label:
                continue
            overlap = iou(prediction, truth)
            if overlap >= threshold and overlap > best_iou:
                best, best_iou = j, overlap
        if best >= 0:
            taken[best] = True
        matched.append((prediction, best >= 0))
    return matched


def average_precision(confidences: Sequence[float], hits: Sequence[int], positives: int) -> float | None:
    """All-points interpolated AP of one label's predictions (None without ground truth)."""
    if positives == 0:
        return None
    order = sorted(range(len(confidences)), key=confidences.__getitem__, reverse=True)
    precisions, recalls, tp = [], [], 0
    for rank, i in enumerate(order, start=1):
        tp += hits[i]
        precisions.append(tp / rank)
        recalls.append(tp / positives)
    best, area = 0.0, 0.0
    for k in range(len(order) - 1, -1, -1):  # from the lowest confidence up: the best precision beyond
        best = max(best, precisions[k])
        area += (recalls[k] - (recalls[k - 1] if k else 0.0)) * best
    return area


@dataclass
class DetectionTally:
    """Every prediction's confidence and whether it matched, per label, and the ground-truth boxes
    per label, gathered sample by sample (compact arrays: 9 bytes a prediction)."""

    threshold: float
    confidences: dict[str, array] = field(default_factory=dict)
    hits: dict[str, array] = field(default_factory=dict)
    positives: Counter[str] = field(default_factory=Counter)

    def add(self, predictions: Sequence[Box], truths: Sequence[Box]) -> None:
        self.positives.update(t.label for t in truths)
        for prediction, hit in match(predictions, truths, self.threshold):
            self.confidences.setdefault(prediction.label, array("d")).append(prediction.confidence)
            self.hits.setdefault(prediction.label, array("b")).append(hit)

    def add_all(self, samples: Iterable[tuple[Sequence[Box], Sequence[Box]]]) -> None:
        for predictions, truths in samples:
            self.add(predictions, truths)

    def scores(self) -> dict[str, Any]:
        """mAP and, per label, AP, precision and recall over all its predictions, and support."""
        per_label = {}
        for label in sorted(set(self.positives) | set(self.confidences)):
            confidences = self.confidences.get(label, array("d"))
            hits, support = self.hits.get(label, array("b")), self.positives[label]
            per_label[label] = {
                "ap": average_precision(confidences, hits, support),
                "precision": _ratio(sum(hits), len(hits)),
                "recall": _ratio(sum(hits), support),
                "support": support,
            }
        aps = [s["ap"] for s in per_label.values() if s["ap"] is not None]
        return {"map": sum(aps) / len(aps) if aps else None, "per_label": per_label}
