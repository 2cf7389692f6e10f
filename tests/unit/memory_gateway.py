"""The gateway's app with its store's reads answered from memory: what the predict-path tests
(lean ASGI layer against the FastAPI route, OIP's infer) drive through a TestClient."""

from collections.abc import Mapping

import pytest
from fastapi import FastAPI

from modelhub_contracts.documents import Deployment, Model, User, Version
from modelhub_gateway.api.predict_asgi import LeanPredict
from modelhub_gateway.app import build_app
from modelhub_gateway.settings import GatewaySettings


def memory_gateway(
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    users: Mapping[str, User],
    deployments: Mapping[str, Deployment],
    model: Model,
    version: Version,
    lean: bool = True,
    **settings,
) -> FastAPI:
    """The app; `users` by token hash, one model and its version; without the lean layer when
    not `lean`."""
    app = build_app(GatewaySettings(data_dir=tmp_path, admin_token="x", read_cache_seconds=0, **settings))
    store = app.state.store

    async def user_by_token_hash(digest: str) -> User | None:
        return users.get(digest)

    async def recent_deployment(name: str) -> Deployment | None:
        return deployments.get(name)

    async def recent_model(name: str) -> Model | None:
        return model if name == model["_id"] else None

    async def find_version(name: str, number: int | None) -> Version | None:
        return version

    for name, fake in [
        ("user_by_token_hash", user_by_token_hash),
        ("recent_deployment", recent_deployment),
        ("recent_model", recent_model),
        ("version", find_version),
    ]:
        monkeypatch.setattr(store, name, fake)
    if not lean:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not LeanPredict]
    return app
