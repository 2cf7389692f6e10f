"""Datasets and their samples. A dataset is visible to its owner and the admin."""

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.responses import StreamingResponse
from bson import ObjectId
from pymongo.errors import DocumentTooLarge, DuplicateKeyError

from modelhub_contracts.events import utcnow

from modelhub_gateway import access, lifecycle, media, samples
from modelhub_gateway.errors import errors
from modelhub_gateway.deps import CurrentUser, Settings, Store, current_user
from modelhub_gateway.schemas import (FIELD_NAME_PATTERN, NamePath, IdPath, FieldPath, DatasetCreate, DatasetList, DatasetPublic, FieldRemoved, FieldSummaryList,
                                      SampleIds, SamplePage, SamplePublic, SamplesAdded, SamplesDeleted, SamplesIn)

router = APIRouter(prefix="/datasets", tags=["datasets"], dependencies=[Depends(current_user)], responses=errors(400, 401, 422))


async def owned_dataset(store: Store, user: dict, name: str) -> dict:
    """The dataset if the caller owns it (or is admin); 404 otherwise."""
    doc = await store.datasets.find_one({"_id": name})
    if doc is None or not access.owns(doc, user):
        raise HTTPException(404, f"dataset '{name}' not found")
    return doc


@router.post("", status_code=201, response_model=DatasetPublic, responses=errors(409, 413))
async def create_dataset(body: DatasetCreate, user: CurrentUser, store: Store) -> DatasetPublic:
    """Create an empty dataset owned by the caller (409 if the name is taken)."""
    doc = {"_id": body.name, **body.model_dump(), "owner": user["username"], "num_samples": 0,
           "created_at": utcnow()}
    try:
        await store.datasets.insert_one(doc)
    except DuplicateKeyError as exc:
        raise HTTPException(409, f"a dataset named '{body.name}' already exists") from exc
    return DatasetPublic.model_validate(doc)


@router.get("", response_model=DatasetList)
async def list_datasets(user: CurrentUser, store: Store) -> DatasetList:
    """The caller's datasets (all of them for the admin)."""
    query = {} if user.get("is_admin") else {"owner": user["username"]}
    return DatasetList(items=[DatasetPublic.model_validate(d) async for d in store.datasets.find(query)])


@router.get("/{name}", response_model=DatasetPublic, responses=errors(404))
async def get_dataset(name: NamePath, user: CurrentUser, store: Store) -> DatasetPublic:
    """One dataset."""
    return DatasetPublic.model_validate(await owned_dataset(store, user, name))


@router.delete("/{name}", status_code=204, response_class=Response, responses=errors(404, 409))
async def delete_dataset(name: NamePath, user: CurrentUser, store: Store) -> Response:
    """Delete the dataset with its samples, jobs and their ledgers (owner or admin); 409 naming the
    job while one runs on it. The name can be used again at once."""
    await owned_dataset(store, user, name)
    await lifecycle.delete_dataset(store, name)
    return Response(status_code=204)


@router.delete("/{name}/fields/{field}", response_model=FieldRemoved, responses=errors(404, 409))
async def remove_field(name: NamePath, field: FieldPath, user: CurrentUser, store: Store) -> FieldRemoved:
    """Take a field and its lineage off every sample (undo a run); 409 while a running job writes it."""
    await owned_dataset(store, user, name)
    return FieldRemoved(removed=await lifecycle.remove_field(store, name, field))


@router.post("/{name}/samples/delete", response_model=SamplesDeleted, responses=errors(404, 409, 413))
async def delete_samples(name: NamePath, body: SampleIds, user: CurrentUser, store: Store) -> SamplesDeleted:
    """Delete samples by id (ids not in this dataset are ignored); 409 while a job runs on the dataset."""
    await owned_dataset(store, user, name)
    return SamplesDeleted(deleted=await lifecycle.delete_samples(store, name, body.ids))


@router.post("/{name}/samples", status_code=201, response_model=SamplesAdded, responses=errors(404, 413))
async def add_samples(name: NamePath, body: SamplesIn, user: CurrentUser, store: Store) -> SamplesAdded:
    """Add up to 10,000 samples; each gets an id (insertion-ordered)."""
    await owned_dataset(store, user, name)
    docs = [{"_id": str(ObjectId()), "dataset": name, "filepath": s.filepath, "fields": s.fields}
            for s in body.samples]
    try:
        await store.samples.insert_many(docs, ordered=True)
    except DocumentTooLarge as exc:
        raise HTTPException(413, "a sample is over MongoDB's 16 MiB document limit; nothing was added") from exc
    await store.datasets.update_one({"_id": name}, {"$inc": {"num_samples": len(docs)}})
    return SamplesAdded(added=len(docs))


@router.get("/{name}/samples", response_model=SamplePage, responses=errors(404))
async def list_samples(name: NamePath, user: CurrentUser, store: Store, limit: int = Query(100, ge=1, le=10_000),
                       offset: int = Query(0, ge=0, le=10**12),
                       field: Annotated[str | None, Query(pattern=FIELD_NAME_PATTERN,
                                                          description="the field a label/confidence filter reads")] = None,
                       label: Annotated[str | None, Query(description="samples whose `field` has this label "
                                                                       "(classification, or any detection)")] = None,
                       min_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
                       max_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
                       missing: Annotated[str | None, Query(pattern=FIELD_NAME_PATTERN,
                                                            description="samples without this field")] = None,
                       failed_job: Annotated[str | None, Query(max_length=64, description="the samples this job failed")] = None,
                       ) -> SamplePage:
    """A page of samples in insertion order, with their fields (model outputs included), optionally
    filtered by a field's label and confidence, by a missing field, or by a job's failed samples;
    `total` counts the samples that pass the filter."""
    await owned_dataset(store, user, name)
    failed = await _failed_ids(store, name, failed_job) if failed_job else None
    query = samples.SampleFilter(field, label, min_confidence, max_confidence, missing, failed).query(name)
    cursor = store.samples.find(query, sort=[("_id", 1)], skip=offset, limit=limit)
    items = [SamplePublic(id=d["_id"], filepath=d["filepath"], fields=d.get("fields", {}),
                          lineage=d.get("lineage", {})) async for d in cursor]
    return SamplePage(items=items, total=await store.samples.count_documents(query))


async def _failed_ids(store: Store, dataset: str, job_id: str) -> tuple[str, ...]:
    job = await store.jobs.find_one({"_id": job_id, "dataset": dataset}, {"_id": 1})
    if job is None:
        raise HTTPException(404, f"job '{job_id}' not found on dataset '{dataset}'")
    return tuple([d["sample_id"] async for d in store.ledger.find({"job_id": job_id, "ok": False}, {"sample_id": 1})])


@router.get("/{name}/fields", response_model=FieldSummaryList, responses=errors(404))
async def list_fields(name: NamePath, user: CurrentUser, store: Store) -> FieldSummaryList:
    """Each field on the dataset's samples: how many samples have it, its most frequent labels with
    their counts, and the jobs that wrote it (which model, version and deployment, when)."""
    await owned_dataset(store, user, name)
    return FieldSummaryList.model_validate({"items": await samples.field_summary(store, name)})


@router.get("/{name}/export", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}},
                                         "text/csv": {"schema": {"type": "string"}}},
                             "description": "one line per sample, streamed"}, **errors(404)})
async def export_dataset(name: NamePath, user: CurrentUser, store: Store,
                         format: Literal["jsonl", "csv"] = "jsonl",
                         fields: Annotated[str | None, Query(description="comma-separated field names; "
                                                                          "default: every field")] = None,
                         ) -> StreamingResponse:
    """The dataset's samples, streamed in insertion order: JSON Lines (`id`, `filepath`, `fields`)
    or CSV (a header row; `id`, `filepath`, one column per field, objects as JSON)."""
    await owned_dataset(store, user, name)
    chosen = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
    media_type = "text/csv" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(samples.export_lines(store, name, format, chosen), media_type=media_type,
                             headers={"Content-Disposition": f'attachment; filename="{name}.{format}"'})


@router.get("/{name}/samples/{sample_id}/thumbnail", response_class=Response,
            responses={200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "the sample's image, re-encoded"},
                       **errors(403, 404, 413, 415)})
async def sample_thumbnail(name: NamePath, sample_id: IdPath, user: CurrentUser, store: Store, settings: Settings,
                           size: int = Query(256, ge=media.SIZES[0], le=media.SIZES[1])) -> Response:
    """A JPEG of an image sample whose longer edge is `size` pixels (the web UI's grid and sample
    view): decoded and re-encoded, never the file's bytes; only for a file the dataset holds, under
    the configured media roots, outside the hub's data dir."""
    await owned_dataset(store, user, name)
    sample = await store.samples.find_one({"_id": sample_id, "dataset": name}, {"filepath": 1})
    if sample is None:
        raise HTTPException(404, f"sample '{sample_id}' not found in dataset '{name}'")
    path = media.allowed_file(sample["filepath"], media.parse_roots(settings.media_roots), settings.data_dir)
    data = await asyncio.to_thread(media.picture, path, size, settings.data_dir / "cache" / "thumbnails")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})
