"""A dataset's evaluations: a prediction field scored against a ground-truth field. Whoever may read
the dataset may evaluate it and read its evaluations; deleting one takes its creator, the dataset's
owner or the admin. Their confusion cells filter `GET /datasets/{name}/samples` (datasets.py)."""

from typing import Any

from fastapi import APIRouter, Depends, Response

from modelhub_gateway.api.deps import CurrentUser, OwnedDataset, Store, current_user, known_query
from modelhub_gateway.api.errors import errors
from modelhub_gateway.evaluation import evaluations
from modelhub_gateway.evaluation.schemas import EvaluationCreate, EvaluationList, EvaluationPath, EvaluationPublic
from modelhub_gateway.schemas import NamePath

router = APIRouter(
    prefix="/datasets/{name}/evaluations",
    tags=["evaluations"],
    dependencies=[Depends(current_user), Depends(known_query)],
    responses=errors(400, 401, 404, 422),
)


@router.post("", status_code=201, response_model=EvaluationPublic, responses=errors(409))
async def create_evaluation(
    dataset: OwnedDataset, body: EvaluationCreate, user: CurrentUser, store: Store
) -> dict[str, Any]:
    """Score field `prediction` against field `ground_truth` over the samples that have both, in
    MongoDB, and keep the result as `name` (409 if the dataset has an evaluation of that name).
    Labels (a string, a whole number, `{"label": ...}`) give a classification evaluation: accuracy,
    per-label precision/recall/F1/support and the confusion matrix; detections give mAP at `iou`
    and per-label AP/precision/recall/support. 422 naming the field when it is on no sample, mixes
    types, or holds neither labels nor detections."""
    return await evaluations.create(store, user, dataset, body)


@router.get("", response_model=EvaluationList)
async def list_evaluations(dataset: OwnedDataset, store: Store) -> EvaluationList:
    """The dataset's evaluations, newest first, with their headline number (accuracy or mAP) but
    without per-label scores and confusion matrix."""
    return EvaluationList.model_validate({"items": await evaluations.list_of(store, dataset["_id"])})


@router.get("/{evaluation}", response_model=EvaluationPublic)
async def get_evaluation(
    name: NamePath, evaluation: EvaluationPath, dataset: OwnedDataset, store: Store
) -> dict[str, Any]:
    """One evaluation, whole."""
    # `name` is declared first so that the path parameters keep their order (name, evaluation) in openapi.json
    return await evaluations.get(store, dataset["_id"], evaluation)


@router.delete("/{evaluation}", status_code=204, response_class=Response, responses=errors(403))
async def delete_evaluation(
    name: NamePath, evaluation: EvaluationPath, dataset: OwnedDataset, user: CurrentUser, store: Store
) -> Response:
    """Delete an evaluation (its creator, the dataset's owner or the admin; 403 for anyone else
    who may read the dataset)."""
    await evaluations.delete(store, user, dataset, evaluation)
    return Response(status_code=204)
