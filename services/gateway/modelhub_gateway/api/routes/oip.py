"""The Open Inference Protocol v2 (REST) at the gateway's root, `/v2/...`, where OIP clients
(tritonclient, the kserve SDK) look for it: a deployment the caller may run is a model.

The server's metadata and health answer without a token (probes carry none); every model route
needs one, and a deployment the caller may not run is 404, as online predict. Errors are
`{"error": "..."}` (api/errors.py). Infer's hot path is the lean ASGI layer (api/predict_asgi.py);
this route answers what that layer hands on (no or a bad token, a name that is no name) and
declares the operation, with both of its bodies: JSON, and JSON followed by binary tensor data.
"""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic.json_schema import models_json_schema

from modelhub_gateway import readiness
from modelhub_gateway.api.deps import Broker, CurrentUser, Online, Store
from modelhub_gateway.api.errors import OIP_PATH, oip_errors
from modelhub_gateway.oip import codec, models
from modelhub_gateway.oip.protocol import (
    EXTENSIONS,
    HEADER_LENGTH,
    SERVER_NAME,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ModelReady,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from modelhub_gateway.schemas import NamePath

router = APIRouter(prefix="/v2", tags=["oip"])

VersionPath = Annotated[str, Path(description="the model version the deployment serves (metadata's `versions`)")]
MODEL_ERRORS = oip_errors(400, 401, 404, 503)
INFER_ERRORS = oip_errors(400, 401, 404, 413, 429, 502, 503, 504)

_BINARY = {"type": "string", "format": "binary"}
_HEADER_LENGTH_RULE = (
    "the length in bytes of the JSON object at the start of the body, when binary tensor data "
    "follows it (Triton's binary tensor data extension)"
)
INFER_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": HEADER_LENGTH,
            "in": "header",
            "required": False,
            "schema": {"type": "integer", "minimum": 0},
            "description": _HEADER_LENGTH_RULE,
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}},
            "application/octet-stream": {
                "schema": _BINARY,
                "description": f"an InferenceRequest's JSON, then each binary input's bytes in order ({HEADER_LENGTH})",
            },
        },
    },
}
INFER_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": f"The outputs; binary ones after the JSON object, whose length {HEADER_LENGTH} gives.",
        "content": {"application/octet-stream": {"schema": _BINARY}},
        "headers": {HEADER_LENGTH: {"schema": {"type": "integer"}, "description": _HEADER_LENGTH_RULE}},
    },
    **INFER_ERRORS,
}


# infer first: the routes are walked in order to find a request's (bench/README.md)
@router.post(
    "/models/{name}/infer", response_model=InferenceResponse, responses=INFER_ANSWERS, openapi_extra=INFER_OPENAPI
)
async def infer(
    name: NamePath, request: Request, user: CurrentUser, store: Store, broker: Broker, online: Online
) -> Response:
    """Online inference on a running deployment (needs run), one sample per tensor element:
    the same checks, bounds and batching as `POST /api/v1/deployments/{name}/predict`."""
    return await _infer(request, user, store, broker, online, name, None)


@router.post(
    "/models/{name}/versions/{version}/infer",
    response_model=InferenceResponse,
    responses=INFER_ANSWERS,
    openapi_extra=INFER_OPENAPI,
)
async def infer_version(
    name: NamePath,
    version: VersionPath,
    request: Request,
    user: CurrentUser,
    store: Store,
    broker: Broker,
    online: Online,
) -> Response:
    """As `POST /v2/models/{name}/infer`; 404 when the deployment serves another version."""
    return await _infer(request, user, store, broker, online, name, version)


async def _infer(request: Request, user, store, broker, online, name: str, version: str | None) -> Response:
    headers = request.headers
    encoded = await models.infer(
        online,
        store,
        broker,
        user,
        name,
        version,
        await request.body(),
        headers.get(HEADER_LENGTH),
        headers.get("content-encoding"),
    )
    return Response(encoded.body, headers=codec.content_headers(encoded))


@router.get("", response_model=ServerMetadata)
async def server_metadata(request: Request) -> ServerMetadata:
    """Public: the server's name and version and the extensions it supports."""
    return ServerMetadata(name=SERVER_NAME, version=request.app.version, extensions=EXTENSIONS)


@router.get("/health/live", response_model=ServerLive)
async def server_live() -> ServerLive:
    """Public: `{"live": true}` while the gateway answers."""
    return ServerLive(live=True)


@router.get("/health/ready", response_model=ServerReady, responses=oip_errors(503))
async def server_ready(broker: Broker, store: Store) -> Response:
    """Public: `{"ready": true}` when every service, NATS and MongoDB answer (as
    `GET /api/v1/health`); 503 naming what did not otherwise."""
    missing = (await readiness.check(broker, store)).missing
    if missing:
        return JSONResponse({"error": f"not ready: {', '.join(missing)} did not answer"}, status_code=503)
    return JSONResponse(ServerReady(ready=True).model_dump())


@router.get("/models/{name}", response_model=ModelMetadata, responses=MODEL_ERRORS)
async def model_metadata(name: NamePath, user: CurrentUser, store: Store, online: Online) -> ModelMetadata:
    """A deployment as an OIP model: its version, and a tensor per input and output (needs run)."""
    return await models.metadata(online, store, user, name, None)


@router.get("/models/{name}/versions/{version}", response_model=ModelMetadata, responses=MODEL_ERRORS)
async def model_version_metadata(
    name: NamePath, version: VersionPath, user: CurrentUser, store: Store, online: Online
) -> ModelMetadata:
    """As `GET /v2/models/{name}`; 404 when the deployment serves another version."""
    return await models.metadata(online, store, user, name, version)


@router.get("/models/{name}/ready", response_model=ModelReady, responses=MODEL_ERRORS)
async def model_ready(name: NamePath, user: CurrentUser, store: Store) -> ModelReady:
    """200 when the deployment is running, 503 when it is not (needs run)."""
    return await models.ready(store, user, name, None)


@router.get("/models/{name}/versions/{version}/ready", response_model=ModelReady, responses=MODEL_ERRORS)
async def model_version_ready(name: NamePath, version: VersionPath, user: CurrentUser, store: Store) -> ModelReady:
    """As `GET /v2/models/{name}/ready`; 404 when the deployment serves another version."""
    return await models.ready(store, user, name, version)


def complete_openapi(document: dict[str, Any]) -> None:
    """What FastAPI cannot say of these routes by itself: infer's request body reads its own
    schema (the routes read the body raw, binary or not), and no OIP route answers 422 (a
    request FastAPI refuses is a 400 here, declared)."""
    _, top = models_json_schema([(InferenceRequest, "validation")], ref_template="#/components/schemas/{model}")
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(top["$defs"])
    for path, operations in document.get("paths", {}).items():
        if OIP_PATH.match(path):
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
    if "#/components/schemas/HTTPValidationError" not in json.dumps(document):  # FastAPI's, only for those 422s
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
