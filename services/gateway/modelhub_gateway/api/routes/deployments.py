"""Deployments (the seed's "Deploy" dialog). Online predict is in predict.py; the use cases are in
modelhub_gateway/deployments.py."""

from fastapi import APIRouter, Depends

from modelhub_gateway import deployments
from modelhub_gateway.api.deps import CurrentUser, Publisher, Store, VisibleDeployment, current_user, known_query
from modelhub_gateway.api.errors import errors
from modelhub_gateway.schemas import DeploymentCreate, DeploymentList, DeploymentPublic, NamePath

router = APIRouter(
    tags=["deployments"], dependencies=[Depends(current_user), Depends(known_query)], responses=errors(400, 401, 422)
)


@router.post(
    "/models/{name}/deployments", status_code=202, response_model=DeploymentPublic, responses=errors(404, 409, 413)
)
async def create_deployment(
    name: NamePath, body: DeploymentCreate, user: CurrentUser, store: Store, publish: Publisher
) -> DeploymentPublic:
    """Ask the deployer to start `num_replicas` Serve replicas of a version (needs run)."""
    doc = await deployments.create_deployment(store, publish, user, name, body)
    return DeploymentPublic.model_validate(doc)


@router.get("/deployments", response_model=DeploymentList)
async def list_deployments(user: CurrentUser, store: Store) -> DeploymentList:
    """Deployments of every model the caller may see."""
    docs = await deployments.list_deployments(store, user)
    return DeploymentList(items=[DeploymentPublic.model_validate(d) for d in docs])


@router.get("/deployments/{name}", response_model=DeploymentPublic, responses=errors(404))
async def get_deployment(deployment: VisibleDeployment, store: Store) -> DeploymentPublic:
    """One deployment with its live status and its queue (every job's tasks waiting and in flight)."""
    return DeploymentPublic.model_validate({**deployment, "queue": await store.deployment_queue(deployment["_id"])})


@router.delete("/deployments/{name}", status_code=202, response_model=DeploymentPublic, responses=errors(403, 404))
async def delete_deployment(
    deployment: VisibleDeployment, user: CurrentUser, store: Store, publish: Publisher
) -> DeploymentPublic:
    """Stop a deployment; its status goes stopping → stopped (needs run and being its creator, or edit)."""
    return DeploymentPublic.model_validate(await deployments.stop_deployment(store, publish, user, deployment))
