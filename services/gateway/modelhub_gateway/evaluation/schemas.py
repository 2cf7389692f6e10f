"""HTTP models of evaluations (separate from the stored documents: those keep per-label scores as a
list, since a label may be any text and a MongoDB key may not)."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Path
from pydantic import BaseModel, Field

from modelhub_contracts.names import NAME_PATTERN, NAME_RULE
from modelhub_gateway.schemas import FieldName, Name, Request

EvaluationPath = Annotated[str, Path(pattern=NAME_PATTERN, description=f"an evaluation's name: {NAME_RULE}")]
DEFAULT_IOU = 0.5


class EvaluationCreate(Request):
    name: Name = Field(description="unique among the dataset's evaluations")
    prediction: FieldName = Field(description="the field holding the predictions (classification or detections)")
    ground_truth: FieldName = Field(
        description='the field holding the truth: a label ("cat", 3, {"label": "cat"}) or detections'
    )
    iou: float = Field(
        default=DEFAULT_IOU, gt=0, le=1, description="detections: the IoU at which a predicted box matches a true one"
    )


class EvaluationLineage(BaseModel):
    model: str
    version: int
    samples: int = Field(description="of the evaluated samples, how many have a prediction this model version wrote")


class EvaluationBase(BaseModel):
    name: str
    dataset: str
    prediction: str
    ground_truth: str
    samples: int = Field(description="samples that have both fields: what the numbers count")
    missing: int = Field(description="samples without one of the fields (or with null there)")
    created_by: str
    created_at: datetime
    lineage: EvaluationLineage | None = Field(
        default=None,
        description="the model version that wrote most of the evaluated predictions (from the samples' lineage)",
    )


class LabelScores(BaseModel):
    precision: float
    recall: float
    f1: float
    support: int = Field(description="samples whose ground truth is this label")


class Confusion(BaseModel):
    labels: list[str] = Field(description="every label of either field, sorted")
    matrix: list[list[int]] = Field(description="rows: ground truth, columns: prediction, in `labels` order")


class ClassificationEvaluation(EvaluationBase):
    type: Literal["classification"]
    accuracy: float
    per_label: dict[str, LabelScores]
    confusion: Confusion


class DetectionScores(BaseModel):
    ap: float | None = Field(
        description="average precision at `iou`, all-points interpolated; null without ground truth"
    )
    precision: float = Field(description="of all predicted boxes of this label, the share that matched")
    recall: float = Field(description="of all true boxes of this label, the share that was matched")
    support: int = Field(description="true boxes of this label")


class DetectionsEvaluation(EvaluationBase):
    type: Literal["detections"]
    iou: float
    map: float | None = Field(description="mean AP over the labels that have ground truth (null if none has)")
    per_label: dict[str, DetectionScores]


EvaluationPublic = Annotated[ClassificationEvaluation | DetectionsEvaluation, Field(discriminator="type")]


class EvaluationSummary(EvaluationBase):
    type: Literal["classification", "detections"]
    accuracy: float | None = Field(default=None, description="classification")
    map: float | None = Field(default=None, description="detections")
    iou: float | None = Field(default=None, description="detections")


class EvaluationList(BaseModel):
    items: list[EvaluationSummary] = Field(description="newest first, without per-label scores and matrix")
