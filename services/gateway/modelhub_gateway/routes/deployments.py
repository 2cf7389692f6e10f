"""Deployments (the seed's "Deploy" dialog). Online predict is in predict.py."""

from fastapi import APIRouter, Depends, HTTPException
from pymongo.errors import DuplicateKeyError

from modelhub_contracts import queue, subjects
from modelhub_contracts.events import DeploymentRequested, DeploymentStopRequested, utcnow
from modelhub_contracts.messaging import publish_event

from modelhub_gateway import access
from modelhub_gateway.errors import errors
from modelhub_gateway.deps import Broker, CurrentUser, Store, current_user
from modelhub_gateway.schemas import (NamePath, DeploymentCreate, DeploymentList, DeploymentPublic)

router = APIRouter(tags=["deployments"], dependencies=[Depends(current_user)], responses=errors(400, 401, 422))
REUSABLE = ("stopped", "failed")


@router.post("/models/{name}/deployments", status_code=202, response_model=DeploymentPublic, responses=errors(404, 409, 413))
async def create_deployment(name: NamePath, body: DeploymentCreate, user: CurrentUser, store: Store,
                            broker: Broker) -> DeploymentPublic:
    """Ask the deployer to start `num_replicas` Serve replicas of a version (needs run)."""
    model = access.require(await store.model(name), user, "run", name)
    if body.model_type != "inference":
        raise HTTPException(422, f"model_type '{body.model_type}' is not supported yet (only 'inference')")
    version = await store.version(name, body.version)
    if version is None:
        raise HTTPException(422, f"model '{name}' has no version {body.version}" if body.version
                            else f"model '{name}' has no versions yet; upload one first")
    if body.max_replicas is not None and body.min_replicas is None:
        body = body.model_copy(update={"min_replicas": 1})
    now = utcnow()
    doc = {**body.model_dump(), "_id": body.name, "model": model["name"], "version": version["version"],
           "status": "pending", "error": None, "ready_replicas": 0, "created_by": user["username"],
           "created_at": now, "updated_at": now, "package_object": version["package_object"],
           "package_sha256": version["sha256"]}
    # A stopped or failed deployment's name may be reused; a live one's may not.
    result = await store.deployments.replace_one({"_id": body.name, "status": {"$in": list(REUSABLE)}}, doc)
    if result.matched_count == 0 and await store.deployments.find_one({"_id": body.name}) is not None:
        raise HTTPException(409, f"a deployment named '{body.name}' already exists")
    if result.matched_count == 0:
        try:
            await store.deployments.insert_one(doc)
        except DuplicateKeyError as exc:  # another request took the name a moment ago
            raise HTTPException(409, f"a deployment named '{body.name}' already exists") from exc
    await publish_event(broker, subjects.DEPLOYMENT_REQUESTED, DeploymentRequested(
        deployment=body.name, model=model["name"], version=version["version"],
        package_object=version["package_object"], package_sha256=version["sha256"],
        mini_batch=body.mini_batch, num_replicas=body.num_replicas, num_gpus=body.num_gpus,
        custom_env=body.custom_env, requested_by=user["username"], batch_wait_ms=body.batch_wait_ms,
        min_replicas=body.min_replicas, max_replicas=body.max_replicas))
    return DeploymentPublic.model_validate(doc)


@router.get("/deployments", response_model=DeploymentList)
async def list_deployments(user: CurrentUser, store: Store) -> DeploymentList:
    """Deployments of every model the caller may see."""
    items = []
    async for doc in store.deployments.find(sort=[("created_at", -1)]):
        model = await store.model(doc["model"])
        if model is not None and access.level(model, user) > 0:
            items.append(DeploymentPublic.model_validate(doc))
    return DeploymentList(items=items)


async def visible_deployment(store: Store, user: dict, name: str, need: str = "run", recent: bool = False) -> dict:
    """The deployment if the caller may see its model (404 otherwise, 403 when `need` is missing).
    `recent`: read through the store's short-lived cache (online predict's hot path)."""
    if recent:
        doc = await store.recent_deployment(name)
        model = await store.recent_model(doc["model"]) if doc else None
    else:
        doc = await store.deployments.find_one({"_id": name})
        model = await store.model(doc["model"]) if doc else None
    if doc is None or model is None or access.level(model, user) == 0:
        raise HTTPException(404, f"deployment '{name}' not found")
    access.require(model, user, need, doc["model"])
    return doc


@router.get("/deployments/{name}", response_model=DeploymentPublic, responses=errors(404))
async def get_deployment(name: NamePath, user: CurrentUser, store: Store) -> DeploymentPublic:
    """One deployment with its live status and its queue (every job's tasks waiting and in flight)."""
    doc = await visible_deployment(store, user, name)
    return DeploymentPublic.model_validate({**doc, "queue": await queue.counts(store.db, {"deployment": name})})


@router.delete("/deployments/{name}", status_code=202, response_model=DeploymentPublic, responses=errors(403, 404))
async def delete_deployment(name: NamePath, user: CurrentUser, store: Store, broker: Broker) -> DeploymentPublic:
    """Stop a deployment; its status goes stopping → stopped (needs run and being its creator, or edit)."""
    doc = await visible_deployment(store, user, name)
    model = await store.model(doc["model"])
    if doc["created_by"] != user["username"] and (model is None or access.level(model, user) < access.RANK["edit"]):
        raise HTTPException(403, f"only its creator or an editor of '{doc['model']}' may stop '{name}'")
    if doc["status"] != "stopped":
        doc = await store.deployments.find_one_and_update(
            {"_id": name}, {"$set": {"status": "stopping", "updated_at": utcnow()}}, return_document=True)
        await publish_event(broker, subjects.DEPLOYMENT_STOP_REQUESTED,
                            DeploymentStopRequested(deployment=name, requested_by=user["username"]))
    return DeploymentPublic.model_validate(doc)
