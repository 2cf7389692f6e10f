"""Every route makes an authorization decision: it depends on the current user, or is public."""

from fastapi.routing import APIRoute

from modelhub_gateway import observability
from modelhub_gateway.api.deps import current_user
from modelhub_gateway.api.routes import bus, health, oip
from modelhub_gateway.app import build_app, open_ui
from modelhub_gateway.settings import GatewaySettings

PUBLIC = {
    health.health,
    open_ui,
    observability.metrics,
    bus.asyncapi_json,
    bus.asyncapi_html,
    oip.server_metadata,
    oip.server_live,
    oip.server_ready,
}


def _routes(routes) -> list[APIRoute]:
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):  # FastAPI keeps included routers nested
            found += _routes(route.original_router.routes)
    return found


def _dependencies(dependant) -> set:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= _dependencies(sub)
    return found


def test_every_route_requires_a_user_unless_public(tmp_path):
    app = build_app(GatewaySettings(data_dir=tmp_path, admin_token="x"))
    routes = _routes(app.routes)
    assert len(routes) > 20
    for route in routes:
        if route.endpoint in PUBLIC:
            assert current_user not in _dependencies(route.dependant), route.path
        else:
            assert current_user in _dependencies(route.dependant), f"{route.methods} {route.path} has no auth"
