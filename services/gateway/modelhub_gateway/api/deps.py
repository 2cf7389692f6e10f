"""Shared route dependencies: the current user, the store, the broker, and the resources a route
works on as the caller may see them (`VisibleDeployment`, `OwnedDataset`, `OwnedJob`): declaring one is the
route's authorization, the lookup and its 404/403 happen before the route body runs."""

import collections
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi._compat import field_annotation_is_sequence
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_validation_alias
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from faststream.nats import NatsBroker
from starlette.types import Scope

from modelhub_contracts.documents import Dataset, Deployment, Job, User
from modelhub_gateway import auth, datasets, deployments
from modelhub_gateway.bus.sends import publisher
from modelhub_gateway.deployments import Publish
from modelhub_gateway.online import OnlinePredict
from modelhub_gateway.schemas import IdPath, NamePath
from modelhub_gateway.settings import GatewaySettings
from modelhub_gateway.store import GatewayStore

_bearer = HTTPBearer(auto_error=False)


# async on purpose: FastAPI runs a plain `def` dependency in its thread pool, two thread hops per
# request for an attribute lookup, on online predict's hot path.
async def get_store(request: Request) -> GatewayStore:
    return request.app.state.store


async def get_broker(request: Request) -> NatsBroker:
    return request.app.state.broker


async def get_settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


async def get_online(request: Request) -> OnlinePredict:
    return request.app.state.online


Store = Annotated[GatewayStore, Depends(get_store)]
Broker = Annotated[NatsBroker, Depends(get_broker)]


async def get_publisher(broker: Broker) -> Publish:
    return publisher(broker)


Publisher = Annotated[Publish, Depends(get_publisher)]
Settings = Annotated[GatewaySettings, Depends(get_settings)]
Online = Annotated[OnlinePredict, Depends(get_online)]


async def current_user(
    store: Store, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> User:
    """The authenticated caller; 401 without a valid bearer token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    user = await auth.authenticate(store, credentials.credentials)
    if user is None:
        raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    return user


async def request_user(store: GatewayStore, scope: Scope) -> User:
    """`current_user` for an ASGI layer in front of the routes (`gate.TokenGate`): the same header
    parsing (HTTPBearer's), lookup and 401s, from the request's headers alone (no body is read)."""
    return await current_user(store, await _bearer(Request(scope)))


async def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    """The caller, who must be an admin (403 otherwise)."""
    if not user.get("is_admin"):
        raise HTTPException(403, "only the admin may do this")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(admin_user)]


async def visible_deployment(name: NamePath, user: CurrentUser, store: Store) -> Deployment:
    """The deployment `{name}` if the caller may run its model (404 when it may not see it)."""
    return await deployments.visible_deployment(store, user, name)


async def owned_dataset(name: NamePath, user: CurrentUser, store: Store) -> Dataset:
    """The dataset `{name}` if the caller owns it or is the admin (404 otherwise)."""
    return await datasets.owned_dataset(store, user, name)


async def owned_job(job_id: IdPath, user: CurrentUser, store: Store) -> Job:
    """The job `{job_id}` if the caller owns it or is the admin (404 otherwise)."""
    return await datasets.owned_job(store, user, job_id)


VisibleDeployment = Annotated[Deployment, Depends(visible_deployment)]
OwnedDataset = Annotated[Dataset, Depends(owned_dataset)]
OwnedJob = Annotated[Job, Depends(owned_job)]


async def known_query(request: Request) -> None:
    """Refuse with 422 a query parameter the route does not take, and one it takes once given more
    than once: `?lable=cat` or `?failed_job=a&failed_job=b` would otherwise be read as no filter,
    or as the last value, and answer as if they were not there (docs/API.md section 2).

    A router's dependency, after `current_user` (a caller without a token gets its 401 first).
    What a route takes is read from its own dependencies, by the name and the rule FastAPI reads
    each query parameter with (`get_validation_alias`; a list when `field_annotation_is_sequence`):
    a route whose query parameters come from a dependency added only where its router is
    included, a query model or an API key in the query would need more here (no route has one;
    tests/unit/test_gateway_query.py checks every route's parameters)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    names, many = _query_parameters(route.dependant)  # a walk of a few dependencies: not worth a cache
    counts = collections.Counter(key for key, _ in request.query_params.multi_items())
    issues = [
        {"loc": ("query", key), "msg": "not a parameter of this operation", "type": "extra_forbidden"}
        for key in counts
        if key not in names
    ] + [
        {"loc": ("query", key), "msg": f"given {n} times; it takes one value", "type": "value_error"}
        for key, n in counts.items()
        if n > 1 and key in names and key not in many
    ]
    if issues:
        raise RequestValidationError(issues)


def _query_parameters(dependant: Dependant) -> tuple[frozenset[str], frozenset[str]]:
    # the query parameters a route takes (its own and its dependencies'), and those that may repeat
    names: set[str] = set()
    many: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        for field in current.query_params:
            name = get_validation_alias(field)
            names.add(name)
            if field_annotation_is_sequence(field.field_info.annotation):  # FastAPI then reads every value
                many.add(name)
        pending.extend(current.dependencies)
    return frozenset(names), frozenset(many)
