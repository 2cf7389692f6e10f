"""Datasets and their samples. A dataset is visible to its owner and the admin."""

from fastapi import APIRouter, Depends, HTTPException, Query
from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from modelhub_contracts.events import utcnow

from modelhub_gateway import access
from modelhub_gateway.deps import CurrentUser, Store, current_user
from modelhub_gateway.schemas import (DatasetCreate, DatasetList, DatasetPublic, SamplePage, SamplePublic,
                                      SamplesAdded, SamplesIn)

router = APIRouter(prefix="/datasets", tags=["datasets"], dependencies=[Depends(current_user)])


async def owned_dataset(store: Store, user: dict, name: str) -> dict:
    """The dataset if the caller owns it (or is admin); 404 otherwise."""
    doc = await store.datasets.find_one({"_id": name})
    if doc is None or not access.owns(doc, user):
        raise HTTPException(404, f"dataset '{name}' not found")
    return doc


@router.post("", status_code=201, response_model=DatasetPublic)
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


@router.get("/{name}", response_model=DatasetPublic)
async def get_dataset(name: str, user: CurrentUser, store: Store) -> DatasetPublic:
    """One dataset."""
    return DatasetPublic.model_validate(await owned_dataset(store, user, name))


@router.post("/{name}/samples", status_code=201, response_model=SamplesAdded)
async def add_samples(name: str, body: SamplesIn, user: CurrentUser, store: Store) -> SamplesAdded:
    """Add up to 10,000 samples; each gets an id (insertion-ordered)."""
    await owned_dataset(store, user, name)
    docs = [{"_id": str(ObjectId()), "dataset": name, "filepath": s.filepath, "fields": s.fields}
            for s in body.samples]
    await store.samples.insert_many(docs, ordered=True)
    await store.datasets.update_one({"_id": name}, {"$inc": {"num_samples": len(docs)}})
    return SamplesAdded(added=len(docs))


@router.get("/{name}/samples", response_model=SamplePage)
async def list_samples(name: str, user: CurrentUser, store: Store, limit: int = Query(100, ge=1, le=10_000),
                       offset: int = Query(0, ge=0)) -> SamplePage:
    """A page of samples in insertion order, with their fields (model outputs included)."""
    await owned_dataset(store, user, name)
    cursor = store.samples.find({"dataset": name}, sort=[("_id", 1)], skip=offset, limit=limit)
    items = [SamplePublic(id=d["_id"], filepath=d["filepath"], fields=d.get("fields", {})) async for d in cursor]
    return SamplePage(items=items, total=await store.samples.count_documents({"dataset": name}))
