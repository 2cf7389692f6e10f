"""Deployment use cases: create, see, list and stop deployments, over a small store port.

A deployment document is split like a Kubernetes object: the gateway writes its spec (and the
`pending` and `stopping` statuses that ask for a change), the deployer every other status move.
Who may see one follows its model: a deployment of a model the caller cannot see is not found.
These functions raise domain errors and know nothing of HTTP; `tests/unit/test_gateway_deployments.py`
runs them on an in-memory store.
"""

from collections.abc import Awaitable, Callable
from typing import Protocol, cast

from modelhub_contracts import subjects
from modelhub_contracts.access import RANK, level, refusal
from modelhub_contracts.documents import Deployment, DeploymentStatus, Model, User, Version
from modelhub_contracts.errors import Conflict, Forbidden, Invalid, NotFound
from modelhub_contracts.events import (
    DEFAULT_SCALE_DOWN_DELAY_S,
    DeploymentRequested,
    DeploymentStopRequested,
    Event,
    utcnow,
)
from modelhub_gateway import aliases
from modelhub_gateway.schemas import DeploymentCreate

Publish = Callable[[str, Event], Awaitable[None]]
"""Send an event on a subject (the broker in the app, a list in tests)."""


class DeploymentStore(Protocol):
    """What these use cases read and write (`GatewayStore` in the app)."""

    async def model(self, name: str) -> Model | None: ...
    async def version(self, name: str, version: int | None) -> Version | None: ...
    async def deployment(self, name: str) -> Deployment | None: ...
    async def recent_deployment(self, name: str) -> Deployment | None: ...
    async def recent_model(self, name: str) -> Model | None: ...
    async def deployments_newest_first(self) -> list[Deployment]: ...
    async def put_deployment(self, doc: Deployment) -> bool: ...
    async def mark_stopping(self, name: str) -> Deployment | None: ...


async def visible_deployment(
    store: DeploymentStore, user: User, name: str, need: str = "run", recent: bool = False
) -> Deployment:
    """The deployment if the caller may see its model (NotFound otherwise, Forbidden when `need`
    is missing). `recent`: read through the store's short-lived cache (online predict's hot path)."""
    if recent:
        doc = await store.recent_deployment(name)
        model = await store.recent_model(doc["model"]) if doc else None
    else:
        doc = await store.deployment(name)
        model = await store.model(doc["model"]) if doc else None
    if doc is None or model is None or level(model, user) == 0:
        raise NotFound(f"deployment '{name}' not found")
    if refused := refusal(model, user, need, doc["model"]):
        raise refused
    return doc


async def create_deployment(
    store: DeploymentStore, publish: Publish, user: User, model_name: str, body: DeploymentCreate
) -> Deployment:
    """Record a pending deployment of a version (needs run on the model) and ask the deployer to
    start it. A stopped or failed deployment's name may be reused; a live one's may not (Conflict)."""
    model = await store.model(model_name)
    if refused := refusal(model, user, "run", model_name):
        raise refused
    assert model is not None
    if body.model_type != "inference":
        raise Invalid(f"model_type '{body.model_type}' is not supported yet (only 'inference')")
    number, alias = aliases.resolve(model, body.version)  # "@prod": the version it points to now
    version = await store.version(model_name, number)
    if version is None:
        raise Invalid(
            f"model '{model_name}' has no version {number}"
            if number
            else f"model '{model_name}' has no versions yet; upload one first"
        )
    if body.max_replicas is not None and body.min_replicas is None:
        body = body.model_copy(update={"min_replicas": 1})
    if body.max_replicas is not None and body.scale_down_delay_s is None:
        body = body.model_copy(update={"scale_down_delay_s": DEFAULT_SCALE_DOWN_DELAY_S})
    doc = new_deployment(body, model, version, user, alias)
    if not await store.put_deployment(doc):
        raise Conflict(f"a deployment named '{body.name}' already exists")
    await publish(
        subjects.DEPLOYMENT_REQUESTED,
        DeploymentRequested(
            deployment=body.name,
            model=model["name"],
            version=version["version"],
            package_object=version["package_object"],
            package_sha256=version["sha256"],
            mini_batch=body.mini_batch,
            num_replicas=body.num_replicas,
            num_gpus=body.num_gpus,
            custom_env=body.custom_env,
            requested_by=user["username"],
            batch_wait_ms=body.batch_wait_ms,
            min_replicas=body.min_replicas,
            max_replicas=body.max_replicas,
            scale_down_delay_s=body.scale_down_delay_s,
        ),
    )
    return doc


def new_deployment(
    body: DeploymentCreate, model: Model, version: Version, user: User, alias: str | None = None
) -> Deployment:
    """The document of a deployment the gateway has just been asked for: its spec, pending (with
    the alias its version was named by, if any)."""
    now = utcnow()
    return cast(
        Deployment,
        {
            **body.model_dump(),
            "_id": body.name,
            "model": model["name"],
            "version": version["version"],
            "alias": alias,
            "status": DeploymentStatus.PENDING,
            "error": None,
            "ready_replicas": 0,
            "created_by": user["username"],
            "created_at": now,
            "updated_at": now,
            "package_object": version["package_object"],
            "package_sha256": version["sha256"],
        },
    )


async def list_deployments(store: DeploymentStore, user: User) -> list[Deployment]:
    """Deployments of every model the caller may see, newest first."""
    visible = []
    for doc in await store.deployments_newest_first():
        model = await store.model(doc["model"])
        if model is not None and level(model, user) > 0:
            visible.append(doc)
    return visible


async def stop_deployment(store: DeploymentStore, publish: Publish, user: User, doc: Deployment) -> Deployment:
    """Ask the deployer to stop a deployment the caller can see: its status goes stopping -> stopped.
    Only its creator or an editor of its model may (Forbidden otherwise); stopping a stopped one
    changes nothing."""
    name = doc["_id"]
    model = await store.model(doc["model"])
    if doc["created_by"] != user["username"] and (model is None or level(model, user) < RANK["edit"]):
        raise Forbidden(f"only its creator or an editor of '{doc['model']}' may stop '{name}'")
    if doc["status"] == DeploymentStatus.STOPPED:
        return doc
    stopping = await store.mark_stopping(name)
    if stopping is None:  # deleted a moment ago (its model was deleted)
        raise NotFound(f"deployment '{name}' not found")
    await publish(
        subjects.DEPLOYMENT_STOP_REQUESTED, DeploymentStopRequested(deployment=name, requested_by=user["username"])
    )
    return stopping
