"""Datasets and their samples. A dataset is visible to its owner and the admin."""

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse

from modelhub_contracts.errors import NotFound
from modelhub_contracts.names import NAME_PATTERN
from modelhub_gateway import datasets, lifecycle, media, samples
from modelhub_gateway.api.deps import CurrentUser, OwnedDataset, Settings, Store, current_user, known_query
from modelhub_gateway.api.errors import errors
from modelhub_gateway.evaluation import evaluations
from modelhub_gateway.schemas import (
    FIELD_NAME_PATTERN,
    DatasetCreate,
    DatasetList,
    DatasetPublic,
    FieldPath,
    FieldRemoved,
    FieldSummaryList,
    IdPath,
    NamePath,
    SampleIds,
    SamplePage,
    SamplePublic,
    SamplesAdded,
    SamplesDeleted,
    SamplesIn,
)

router = APIRouter(
    prefix="/datasets",
    tags=["datasets"],
    dependencies=[Depends(current_user), Depends(known_query)],
    responses=errors(400, 401, 422),
)


@router.post("", status_code=201, response_model=DatasetPublic, responses=errors(409, 413))
async def create_dataset(body: DatasetCreate, user: CurrentUser, store: Store) -> DatasetPublic:
    """Create an empty dataset owned by the caller (409 if the name is taken)."""
    return DatasetPublic.model_validate(await datasets.create_dataset(store, user, body))


@router.get("", response_model=DatasetList)
async def list_datasets(user: CurrentUser, store: Store) -> DatasetList:
    """The caller's datasets (all of them for the admin)."""
    return DatasetList(items=[DatasetPublic.model_validate(d) for d in await datasets.list_datasets(store, user)])


@router.get("/{name}", response_model=DatasetPublic, responses=errors(404))
async def get_dataset(dataset: OwnedDataset) -> DatasetPublic:
    """One dataset."""
    return DatasetPublic.model_validate(dataset)


@router.delete("/{name}", status_code=204, response_class=Response, responses=errors(404, 409))
async def delete_dataset(dataset: OwnedDataset, store: Store) -> Response:
    """Delete the dataset with its samples, jobs and their ledgers (owner or admin); 409 naming the
    job while one runs on it. The name can be used again at once."""
    await lifecycle.delete_dataset(store, dataset["_id"])
    return Response(status_code=204)


@router.delete("/{name}/fields/{field}", response_model=FieldRemoved, responses=errors(404, 409))
async def remove_field(name: NamePath, field: FieldPath, dataset: OwnedDataset, store: Store) -> FieldRemoved:
    """Take a field and its lineage off every sample (undo a run); 409 while a running job writes it."""
    # `name` is declared first so that the path parameters keep their order (name, field) in openapi.json
    return FieldRemoved(removed=await lifecycle.remove_field(store, dataset["_id"], field))


@router.post("/{name}/samples/delete", response_model=SamplesDeleted, responses=errors(404, 409, 413))
async def delete_samples(dataset: OwnedDataset, body: SampleIds, store: Store) -> SamplesDeleted:
    """Delete samples by id (ids not in this dataset are ignored); 409 while a job runs on the dataset."""
    return SamplesDeleted(deleted=await lifecycle.delete_samples(store, dataset["_id"], body.ids))


@router.post("/{name}/samples", status_code=201, response_model=SamplesAdded, responses=errors(404, 413))
async def add_samples(dataset: OwnedDataset, body: SamplesIn, store: Store) -> SamplesAdded:
    """Add up to 10,000 samples; each gets an id (insertion-ordered)."""
    return SamplesAdded(added=await datasets.add_samples(store, dataset, body.samples))


@router.get(
    "/{name}/samples",
    response_model=SamplePage,
    responses=errors(404),
    # OpenAPI cannot make one parameter require another: the rule is in the description, and here,
    # which the served document turns into one exploded query object with JSON Schema's
    # `dependentRequired` (app._dependent_parameters), where generated clients and fuzzers read it
    openapi_extra={
        "x-dependentRequired": {
            **{name: ["field"] for name in samples.NEEDS_FIELD},
            **{name: ["evaluation"] for name in ("ground_truth_label", "prediction_label")},
        }
    },
)
async def list_samples(
    dataset: OwnedDataset,
    store: Store,
    limit: int = Query(100, ge=1, le=10_000),
    offset: int = Query(0, ge=0, le=10**12),
    field: Annotated[
        str | None, Query(pattern=FIELD_NAME_PATTERN, description="the field a label/confidence filter reads")
    ] = None,
    label: Annotated[
        str | None, Query(description="samples whose `field` has this label (classification, or any detection)")
    ] = None,
    min_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
    missing: Annotated[str | None, Query(pattern=FIELD_NAME_PATTERN, description="samples without this field")] = None,
    failed_job: Annotated[str | None, Query(max_length=64, description="the samples this job failed")] = None,
    evaluation: Annotated[
        str | None, Query(pattern=NAME_PATTERN, description="the samples that have both fields of this evaluation")
    ] = None,
    ground_truth_label: Annotated[
        str | None, Query(description="with `evaluation`: a row of its confusion matrix")
    ] = None,
    prediction_label: Annotated[
        str | None, Query(description="with `evaluation`: a column of its confusion matrix")
    ] = None,
) -> SamplePage:
    """A page of samples in insertion order, with their fields (model outputs included), optionally
    filtered by a field's label and confidence, by a missing field, by a job's failed samples, or by
    a cell of an evaluation's confusion matrix; `total` counts the samples that pass the filter.

    `label`, `min_confidence` and `max_confidence` read the output in `field`: each needs `field`
    (422 without it), and `min_confidence` must not exceed `max_confidence` (422).
    `ground_truth_label` and `prediction_label` need `evaluation` (422 without it, and for a
    detections evaluation); an evaluation the dataset does not have is a 404."""
    name = dataset["_id"]
    failed = await datasets.failed_ids(store, name, failed_job) if failed_job else None
    query = samples.SampleFilter(field, label, min_confidence, max_confidence, missing, failed).query(name)
    if cell := await evaluations.cell_filter(store, name, evaluation, ground_truth_label, prediction_label):
        query = {"$and": [query, cell]}
    items = [
        SamplePublic(id=d["_id"], filepath=d["filepath"], fields=d.get("fields", {}), lineage=d.get("lineage", {}))
        for d in await store.sample_page(query, offset, limit)
    ]
    return SamplePage(items=items, total=await store.count_samples(query))


@router.get("/{name}/fields", response_model=FieldSummaryList, responses=errors(404))
async def list_fields(dataset: OwnedDataset, store: Store) -> FieldSummaryList:
    """Each field on the dataset's samples: how many samples have it, its most frequent labels with
    their counts, and the jobs that wrote it (which model, version and deployment, when)."""
    return FieldSummaryList.model_validate({"items": await samples.field_summary(store, dataset["_id"])})


@router.get(
    "/{name}/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
            "description": "one line per sample, streamed",
        },
        **errors(404),
    },
)
async def export_dataset(
    dataset: OwnedDataset,
    store: Store,
    format: Literal["jsonl", "csv"] = "jsonl",
    fields: Annotated[str | None, Query(description="comma-separated field names; default: every field")] = None,
) -> StreamingResponse:
    """The dataset's samples, streamed in insertion order: JSON Lines (`id`, `filepath`, `fields`)
    or CSV (a header row; `id`, `filepath`, one column per field, objects as JSON)."""
    name = dataset["_id"]
    chosen = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
    media_type = "text/csv" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(
        samples.export_lines(store, name, format, chosen),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}.{format}"'},
    )


@router.get(
    "/{name}/samples/{sample_id}/thumbnail",
    response_class=Response,
    responses={
        200: {
            "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
            "description": "the sample's image, re-encoded",
        },
        **errors(403, 404, 413, 415),
    },
)
async def sample_thumbnail(
    name: NamePath,
    sample_id: IdPath,
    dataset: OwnedDataset,
    store: Store,
    settings: Settings,
    size: int = Query(256, ge=media.SIZES[0], le=media.SIZES[1]),
) -> Response:
    """A JPEG of an image sample whose longer edge is `size` pixels (the web UI's grid and sample
    view): decoded and re-encoded, never the file's bytes; only for a file the dataset holds, under
    the configured media roots, outside the hub's data dir."""
    filepath = await store.sample_filepath(name, sample_id)
    if filepath is None:
        raise NotFound(f"sample '{sample_id}' not found in dataset '{name}'")
    path = media.allowed_file(filepath, media.parse_roots(settings.media_roots), settings.data_dir)
    data = await asyncio.to_thread(media.picture, path, size, settings.data_dir / "cache" / "thumbnails")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})
