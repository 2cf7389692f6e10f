"""A model's aliases (`prod` -> version 3) and their history. Changes go to the registry; a deploy
names one as `"version": "@prod"` (deployments.py resolves it)."""

from fastapi import APIRouter, Depends, Response

from modelhub_contracts import subjects
from modelhub_contracts.events import RemoveAlias, SetAlias
from modelhub_gateway import aliases, models
from modelhub_gateway.api.deps import Broker, CurrentUser, Store, current_user, known_query
from modelhub_gateway.api.errors import errors
from modelhub_gateway.bus.rpc import call
from modelhub_gateway.schemas import AliasChange, AliasHistory, AliasPath, AliasPublic, AliasSet, NamePath

router = APIRouter(
    prefix="/models",
    tags=["models"],
    dependencies=[Depends(current_user), Depends(known_query)],
    responses=errors(400, 401, 422, 503),
)


@router.put("/{name}/aliases/{alias}", response_model=AliasPublic, responses=errors(403, 404, 413))
async def set_alias(
    name: NamePath, alias: AliasPath, body: AliasSet, user: CurrentUser, store: Store, broker: Broker
) -> AliasPublic:
    """Point the alias at a version (needs edit), creating or moving it; 404 naming a version the
    model does not have. Each change is added to the alias's history."""
    await models.visible_model(store, user, name, "edit")
    command = SetAlias(name=name, alias=alias, version=body.version, acting_user=user["username"])
    return AliasPublic.model_validate(await call(broker, subjects.RPC_SET_ALIAS, command))


@router.delete("/{name}/aliases/{alias}", status_code=204, responses=errors(403, 404))
async def remove_alias(name: NamePath, alias: AliasPath, user: CurrentUser, store: Store, broker: Broker) -> Response:
    """Remove the alias (needs edit); its history keeps the removal. 404 when it is not set."""
    await models.visible_model(store, user, name, "edit")
    await call(broker, subjects.RPC_REMOVE_ALIAS, RemoveAlias(name=name, alias=alias, acting_user=user["username"]))
    return Response(status_code=204)


@router.get("/{name}/aliases/{alias}/history", response_model=AliasHistory, responses=errors(404))
async def alias_history(name: NamePath, alias: AliasPath, user: CurrentUser, store: Store) -> AliasHistory:
    """Every change of the alias, oldest first, removals included (`version: null`); never
    rewritten. 404 for an alias the model never had."""
    model = await models.visible_model(store, user, name)
    changes = await aliases.history(store, model, alias)
    return AliasHistory(items=[AliasChange.model_validate(c) for c in changes])
