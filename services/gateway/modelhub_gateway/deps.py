"""Shared route dependencies: the current user, the store, the broker."""

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from faststream.nats import NatsBroker

from modelhub_gateway import auth
from modelhub_gateway.settings import GatewaySettings
from modelhub_gateway.store import GatewayStore

_bearer = HTTPBearer(auto_error=False)


def get_store(request: Request) -> GatewayStore:
    return request.app.state.store


def get_broker(request: Request) -> NatsBroker:
    return request.app.state.broker


def get_settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


Store = Annotated[GatewayStore, Depends(get_store)]
Broker = Annotated[NatsBroker, Depends(get_broker)]
Settings = Annotated[GatewaySettings, Depends(get_settings)]


async def current_user(store: Store,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> dict:
    """The authenticated caller; 401 without a valid bearer token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    user = await auth.authenticate(store, credentials.credentials)
    if user is None:
        raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    return user


def admin_user(user: Annotated[dict, Depends(current_user)]) -> dict:
    """The caller, who must be an admin (403 otherwise)."""
    if not user.get("is_admin"):
        raise HTTPException(403, "only the admin may do this")
    return user


CurrentUser = Annotated[dict, Depends(current_user)]
AdminUser = Annotated[dict, Depends(admin_user)]
