"""Gateway service: the public HTTP API (FastAPI) and the job-progress aggregator."""

import asyncio
import re
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from faststream.nats import NatsBroker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from modelhub_contracts import subjects
from modelhub_contracts.errors import DomainError
from modelhub_gateway import auth, observability
from modelhub_gateway.api import errors, listen
from modelhub_gateway.api.gate import TokenGate
from modelhub_gateway.api.limits import UPLOAD_OVERHEAD_BYTES, BodyCap, BodySizeLimit, ConcurrencyLimit
from modelhub_gateway.api.predict_asgi import LeanPredict
from modelhub_gateway.api.routes import (
    aliases,
    bus,
    datasets,
    deployments,
    evaluations,
    health,
    jobs,
    models,
    oip,
    predict,
    users,
)
from modelhub_gateway.bus import external, handlers, sends
from modelhub_gateway.online import OnlinePredict
from modelhub_gateway.progress import history, ledger
from modelhub_gateway.progress.fold import recount_cut_folds
from modelhub_gateway.recent import ForgetOnWrite, Recent
from modelhub_gateway.settings import GatewaySettings
from modelhub_gateway.store import GatewayStore
from modelhub_runtime import cluster, mongo, ops, telemetry
from modelhub_runtime.messaging import EVENTS_STREAM

API_PREFIX = "/api/v1"
# Online predict, and OIP's infer: one body cap, one bound on requests in progress, no cache clearing
PREDICT_PATH = re.compile(rf"^{API_PREFIX}/deployments/[^/]+/predict$|^/v2/models/[^/]+(/versions/[^/]+)?/infer$")
UPLOAD_PATH = re.compile(rf"^{API_PREFIX}/models/[^/]+/versions$")
SAMPLES_PATH = re.compile(rf"^{API_PREFIX}/datasets/[^/]+/samples(/delete)?$")
# What answers without a token: the routes whose docstring says "Public:", FastAPI's docs, and
# everything outside the API and OIP's models (the web UI's files, `/`, /metrics, OIP's server
# metadata and health); a unit test checks it against the routes.
PUBLIC_PATH = re.compile(
    rf"^(?!{API_PREFIX}/|/v2/models(/|$))"
    rf"|^{API_PREFIX}/(health|asyncapi|asyncapi\.json|openapi\.json|docs|docs/oauth2-redirect)$"
)
STATIC_DIR = Path(__file__).parent / "static"  # the web UI: static files calling the API with a token


def build_app(settings: GatewaySettings, tel: telemetry.Telemetry | None = None) -> FastAPI:
    """Wire broker, store, subscribers and routers; the one place configuration enters."""
    tel = tel or telemetry.setup("gateway", settings.telemetry_dir)
    broker: NatsBroker = ops.make_broker(settings, tel)
    client, db = mongo.connect(settings)
    store = GatewayStore(db, Recent(settings.read_cache_seconds))
    handlers.register(broker, store, tel, settings.gateway_instance)
    sends.declare(broker)
    external.register(broker, store)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await store.ensure_indexes()
        await auth.bootstrap_admin(store, auth.admin_token(settings.admin_token, settings.data_dir))
        # an older hub's per-sample ledger rows become ledger records (a hub upgraded in place)
        await ledger.adopt_sample_rows(store)
        # folds this gateway's previous run left cut, before its consumers start
        await recount_cut_folds(store, settings.gateway_instance)
        await cluster.join(broker, settings.nats_replicas, streams=[EVENTS_STREAM], buckets=[subjects.PACKAGES_BUCKET])
        await broker.start()
        background = [
            asyncio.create_task(history.sweep_forever(store, settle_seconds=settings.history_settle_seconds)),
            *(asyncio.create_task(poll) for poll in observability.polls(db, tel)),
        ]
        yield
        for task in background:
            task.cancel()
        await broker.stop()
        await client.close()
        tel.shutdown()

    app = FastAPI(
        title="modelhub",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=f"{API_PREFIX}/docs",
        openapi_url=f"{API_PREFIX}/openapi.json",
        generate_unique_id_function=operation_id,
    )
    app.state.store, app.state.broker, app.state.settings = store, broker, settings
    app.state.telemetry = tel
    app.state.online = OnlinePredict()
    # The routes that carry load first, predict and OIP's (at the root: OIP clients ask for
    # /v2/...): a request's route is looked up by walking the routes in order, by FastAPI and
    # again by the tracing middleware for the span's name.
    app.include_router(predict.router, prefix=API_PREFIX)
    app.include_router(oip.router)
    api = APIRouter(prefix=API_PREFIX)
    for module in (health, bus, users, models, aliases, deployments, datasets, evaluations, jobs):
        api.include_router(module.router)
    app.include_router(api)
    app.mount("/ui", StaticFiles(directory=STATIC_DIR, html=True, check_dir=False), name="ui")
    app.add_api_route("/", open_ui, include_in_schema=False)
    app.add_api_route("/metrics", observability.metrics, include_in_schema=False)
    app.openapi = _closed_openapi(app.openapi)
    map_errors(app)
    # From the inside out (each added one wraps the ones before): online predict's lean path, so
    # that the others apply to it; the read cache's clearing; the body caps; the token before any
    # body; the concurrency bound, before any work.
    app.add_middleware(LeanPredict, prefix=API_PREFIX, store=store, broker=broker, online=lambda: app.state.online)
    app.add_middleware(ForgetOnWrite, recent=store.recent, reads_also=PREDICT_PATH)
    app.add_middleware(BodySizeLimit, max_bytes=settings.json_max_body_bytes, caps=body_caps(settings))
    app.add_middleware(TokenGate, store=store, public=PUBLIC_PATH)
    app.add_middleware(ConcurrencyLimit, max_requests=settings.predict_max_requests, paths=PREDICT_PATH)
    observability.instrument(app, tel)
    return app


def body_caps(settings: GatewaySettings) -> list[BodyCap]:
    """The routes whose body cap is not `json_max_body_bytes` (docs/API.md section 2 lists them)."""
    fewer = "send fewer samples per request"
    return [
        BodyCap("POST", PREDICT_PATH, settings.predict_max_body_bytes, fewer),  # one NATS message
        BodyCap("POST", UPLOAD_PATH, settings.max_upload_bytes + UPLOAD_OVERHEAD_BYTES),
        BodyCap("POST", SAMPLES_PATH, settings.samples_max_body_bytes, fewer),
    ]


async def open_ui() -> RedirectResponse:
    """Public: the web UI (its pages ask for a token before calling the API)."""
    return RedirectResponse("/ui/")


def map_errors(app: FastAPI) -> None:
    """Every error answer's one source: domain errors, HTTP errors and refused requests, each in
    the shape docs/API.md promises (`{"detail"}`; a 422 also carries `errors`)."""
    # Starlette types a handler as taking any Exception; each of these takes the one it is registered for.
    app.add_exception_handler(RequestValidationError, _validation_error)  # pyright: ignore[reportArgumentType]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # pyright: ignore[reportArgumentType]
    app.add_exception_handler(DomainError, _refused)


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """A 422 that a route raised with a sentence gets the validation shape (one shape per status);
    under /v2 every error is OIP's (`errors.answer`)."""
    headers = exc.headers
    if exc.status_code == 405:
        # Starlette lists only the first matching route's methods; a path served by several routes
        # (GET and DELETE /datasets/{name}) must name them all
        # (FastAPI keeps included routers nested: walked through their route contexts)
        # A literal route wins over a template that also matches (GET /users/me, not DELETE
        # /users/{username} with "me"), as the router tries them: the fewest parameters count.
        matching = [
            r
            for r in iter_route_contexts(request.app.router.routes)
            if r.methods and r.matches(request.scope)[0] == Match.PARTIAL
        ]
        fewest = min(((r.path or "").count("{") for r in matching), default=0)
        allowed = sorted({m for r in matching if (r.path or "").count("{") == fewest for m in r.methods or ()})
        if allowed:  # else Starlette's own (the first matching route's), which exc carries
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
    elif not (exc.status_code == 422 or errors.OIP_PATH.match(request.url.path)):
        return await http_exception_handler(request, exc)
    status, content = errors.answer(request.url.path, exc.status_code, exc.detail)
    return JSONResponse(status_code=status, content=content, headers=headers)


async def _refused(request: Request, exc: Exception) -> Response:
    """The one place domain errors become HTTP: use cases raise NotFound, Forbidden, Conflict,
    Invalid (or a service's refusal of another code, through rpc.call) and know nothing of HTTP;
    the answer goes through the same path as a route's HTTPException (a 422 gets the validation
    shape), with Retry-After when the refusal said when to retry."""
    assert isinstance(exc, DomainError)
    return await _http_error(request, errors.as_http(exc))


def _closed_openapi(generate):
    """FastAPI's document, where an object whose keys follow a pattern (pydantic writes
    `patternProperties`, which lets any other key through) says that every key must, as
    validation does; and the OIP routes' own declarations (`oip.complete_openapi`)."""

    def openapi() -> dict:
        schema = generate()  # built once and kept by FastAPI; closing and completing again change nothing
        _closed_pattern_objects(schema)
        _dependent_parameters(schema)
        oip.complete_openapi(schema)
        return schema

    return openapi


def _closed_pattern_objects(node: object) -> None:
    # {"patternProperties": {P: S}} becomes {"propertyNames": {"pattern": P}, "additionalProperties": S}:
    # the same rule, closed, and in the form client generators read (they skip patternProperties)
    if isinstance(node, dict):
        patterns = node.get("patternProperties")
        if isinstance(patterns, dict) and len(patterns) == 1 and "additionalProperties" not in node:
            ((pattern, schema),) = patterns.items()
            del node["patternProperties"]
            node["propertyNames"] = {"pattern": pattern}
            node["additionalProperties"] = schema
        for value in node.values():
            _closed_pattern_objects(value)
    elif isinstance(node, list):
        for value in node:
            _closed_pattern_objects(value)


# The one query parameter that holds the parameters a `x-dependentRequired` rule ties together
DEPENDENT_GROUP = "filters"


def _dependent_parameters(document: dict) -> None:
    """An operation's `x-dependentRequired` (which query parameter needs which) said in a form that
    generated clients and fuzzers read: OpenAPI cannot make one parameter require another, but a
    query parameter may be an object in form style, exploded (each property its own `name=value`:
    the same URL), whose schema carries JSON Schema's `dependentRequired`. The parameters the rule
    names become that object's properties; the rest stay as they are."""
    for path in document.get("paths", {}).values():
        for operation in path.values():
            rule = operation.pop("x-dependentRequired", None) if isinstance(operation, dict) else None
            if not rule:
                continue
            named = set(rule) | {needed for needs in rule.values() for needed in needs}
            parameters = operation.get("parameters", [])
            tied = [p for p in parameters if p["in"] == "query" and p["name"] in named]
            group = {
                "name": DEPENDENT_GROUP,
                "in": "query",
                "required": False,
                "style": "form",
                "explode": True,
                "description": "; ".join(f"`{k}` needs `{'`, `'.join(v)}`" for k, v in rule.items()),
                "schema": {
                    "type": "object",
                    "properties": {p["name"]: _present(p) for p in tied},
                    "additionalProperties": False,
                    "dependentRequired": rule,
                },
            }
            at = parameters.index(tied[0])
            operation["parameters"] = [p for p in parameters[:at] if p not in tied] + [group]
            operation["parameters"] += [p for p in parameters[at:] if p not in tied]


def _present(parameter: dict) -> dict:
    # a query parameter's schema as a property of the group: a query cannot carry null (a left-out
    # parameter is the None the route sees), so `anyOf: [S, {"type": "null"}]` is S
    schema = dict(parameter["schema"])
    branches = [b for b in schema.pop("anyOf", []) if b != {"type": "null"}]
    if len(branches) == 1:
        schema.update(branches[0])
    elif branches:
        schema["anyOf"] = branches
    if "description" in parameter:
        schema["description"] = parameter["description"]
    return schema


def operation_id(route: APIRoute) -> str:
    """Readable operation ids for generated clients: `models-create`, `jobs-cancel`,
    `datasets-list-samples` (the route's tag, then its function name without the resource word)."""
    tag = str(route.tags[0]) if route.tags else "api"
    resource = {tag, tag.rstrip("s")}
    words = [w for w in route.name.split("_") if w not in resource] or ["get"]
    return f"{tag}-{'-'.join(words)}"


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422: a readable line naming each bad field, and FastAPI's issues one by one in `errors`."""
    issues = exc.errors()
    message = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in issues)
    if errors.OIP_PATH.match(request.url.path):
        status, content = errors.answer(request.url.path, 422, message)
        return JSONResponse(status_code=status, content=content)
    return JSONResponse(
        status_code=422,
        content=errors.validation_body(
            message, [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in issues]
        ),
    )


def main() -> None:
    from modelhub_runtime.runtime import configure_logging, tune_gc

    configure_logging("gateway")
    settings = GatewaySettings()
    app = build_app(settings)
    tune_gc()
    listen.serve(app, settings)
