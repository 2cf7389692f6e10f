"""Models, versions and sharing (the seed's "Models" menu). Changes go to the registry."""

import json
import os
import tempfile
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from modelhub_contracts import subjects
from modelhub_contracts.documents import Model
from modelhub_contracts.errors import DomainError, Invalid, NotFound, TooLarge
from modelhub_contracts.events import AddVersion, CreateModel, DeleteModel, DeleteVersion, SetSharing, UpdateModel
from modelhub_gateway import models
from modelhub_gateway.api.deps import Broker, CurrentUser, Settings, Store, current_user, known_query
from modelhub_gateway.api.errors import ErrorOut, errors
from modelhub_gateway.bus.rpc import call
from modelhub_gateway.schemas import (
    MODEL_SCHEMA_FIELD,
    ModelCreate,
    ModelList,
    ModelPatch,
    ModelPublic,
    NamePath,
    Sharing,
    VersionPath,
    VersionPublic,
    valid_unicode,
)

router = APIRouter(
    prefix="/models",
    tags=["models"],
    dependencies=[Depends(current_user), Depends(known_query)],
    responses=errors(400, 401, 422, 503),
)


async def _public(store: Store, doc: Model) -> ModelPublic:
    versions = [VersionPublic.model_validate(v) for v in await store.versions_of(doc["name"])]
    return ModelPublic.model_validate({**doc, "versions": versions})


@router.post("", status_code=201, response_model=ModelPublic, responses=errors(409, 413))
async def create_model(body: ModelCreate, user: CurrentUser, store: Store, broker: Broker) -> ModelPublic:
    """Create a model owned by the caller; names are unique case-insensitively."""
    await call(broker, subjects.RPC_CREATE_MODEL, CreateModel(**body.model_dump(), owner=user["username"]))
    return await _public(store, await models.visible_model(store, user, body.name))


@router.get("", response_model=ModelList)
async def list_models(user: CurrentUser, store: Store) -> ModelList:
    """Every model the caller may see."""
    return ModelList(items=[await _public(store, d) for d in await models.list_models(store, user)])


@router.get("/{name}", response_model=ModelPublic, responses=errors(404))
async def get_model(name: NamePath, user: CurrentUser, store: Store) -> ModelPublic:
    """One model with its versions (404 if the caller may not see it)."""
    return await _public(store, await models.visible_model(store, user, name))


@router.patch("/{name}", response_model=ModelPublic, responses=errors(403, 404, 413))
async def update_model(
    name: NamePath, body: ModelPatch, user: CurrentUser, store: Store, broker: Broker
) -> ModelPublic:
    """Change description/tags (needs edit)."""
    await models.visible_model(store, user, name, "edit")
    await call(
        broker, subjects.RPC_UPDATE_MODEL, UpdateModel(name=name, **body.model_dump(), acting_user=user["username"])
    )
    return await _public(store, await models.visible_model(store, user, name))


@router.delete("/{name}", status_code=204, responses=errors(403, 404, 409))
async def delete_model(name: NamePath, user: CurrentUser, store: Store, broker: Broker) -> Response:
    """Delete a model (owner only; 409 while a deployment of it is active)."""
    await models.visible_model(store, user, name, "owner")
    await call(broker, subjects.RPC_DELETE_MODEL, DeleteModel(name=name, acting_user=user["username"]))
    return Response(status_code=204)


@router.put(
    "/{name}/sharing",
    response_model=Sharing,
    responses={
        **errors(403, 413),
        404: {
            "model": ErrorOut,
            "description": "No such model, or you may not see it; or a user named in `users` does not exist "
            "(the detail names each such user).",
        },
    },
)
async def set_sharing(name: NamePath, body: Sharing, user: CurrentUser, store: Store, broker: Broker) -> Sharing:
    """Replace who may run/edit the model (owner only). A user in `users` that does not exist is
    a 404 naming them; nothing changes."""
    await models.visible_model(store, user, name, "owner")
    users = await models.shares(store, body.users)
    data = await call(
        broker,
        subjects.RPC_SET_SHARING,
        SetSharing(name=name, everyone=body.everyone, users=users, acting_user=user["username"]),
    )
    return Sharing.model_validate(data)


@router.post(
    "/{name}/versions", status_code=201, response_model=VersionPublic, responses=errors(400, 403, 404, 413, 500)
)
async def upload_version(
    name: NamePath,
    user: CurrentUser,
    store: Store,
    broker: Broker,
    settings: Settings,
    file: Annotated[UploadFile, File(description="the packed model .zip", json_schema_extra={"format": "binary"})],
    # Optional fields are plain strings, "" when left out: a multipart field is text, never null.
    # The form field `schema` is read into `schema_text`: a field named `schema` on the body model
    # FastAPI builds would shadow pydantic's BaseModel.schema (a UserWarning at every start).
    schema_text: Annotated[
        str,
        Form(
            alias="schema",
            min_length=2,
            description="the model schema, as JSON; may be left out for an MLflow model with a signature",
            json_schema_extra=MODEL_SCHEMA_FIELD,
        ),
    ] = "",
    local_inputs: Annotated[
        str,
        Form(
            max_length=10_000,
            description="without a schema: the MLflow signature's string inputs that are `local` (file paths), "
            "comma-separated, e.g. `image`",
        ),
    ] = "",
    output_types: Annotated[
        str,
        Form(
            max_length=10_000,
            description="without a schema: types of the MLflow signature's outputs, comma-separated "
            "`name=type` (e.g. `predictions=number`); the others are `json`",
        ),
    ] = "",
) -> VersionPublic:
    """Upload the next immutable version: a zip plus its schema (an MLflow model with a signature
    may go without one: it is derived). Refusals store nothing."""
    await models.visible_model(store, user, name, "edit")
    parsed = _parsed_schema(schema_text) if schema_text else None
    locals_, outputs = models.name_list(local_inputs), models.name_types(output_types)
    if file.size is not None and file.size > settings.max_upload_bytes:
        raise TooLarge(f"package is {file.size} bytes; the limit is {settings.max_upload_bytes}")
    # Starlette spooled the upload to disk; stream it on into the object store in chunks.
    object_name = f"upload-{uuid.uuid4().hex}"
    packages = await broker.object_storage(subjects.PACKAGES_BUCKET)
    # nats-py types `data` as BufferedIOBase but only calls read(): Starlette's spooled file does.
    await packages.put(object_name, file.file)  # pyright: ignore[reportArgumentType]
    try:
        data = await call(
            broker,
            subjects.RPC_ADD_VERSION,
            timeout=300,
            command=AddVersion(
                name=name,
                upload_object=object_name,
                filename=file.filename or "package.zip",
                model_schema=parsed,
                local_inputs=locals_,
                output_types=outputs,
                acting_user=user["username"],
            ),
        )
    except DomainError as exc:
        if exc.status == 503:  # the registry never answered: do not leave the bytes behind
            await packages.delete(object_name)
        raise
    return VersionPublic.model_validate(data)


def _parsed_schema(schema: str) -> dict:
    try:
        parsed = valid_unicode(json.loads(schema))
    except json.JSONDecodeError as exc:
        raise Invalid(f"schema is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise Invalid("invalid model schema: schema must be a JSON object")
    return parsed


@router.get("/{name}/versions/{version}", response_model=VersionPublic, responses=errors(404))
async def get_version(name: NamePath, version: VersionPath, user: CurrentUser, store: Store) -> VersionPublic:
    """One version's metadata and schema."""
    return VersionPublic.model_validate(await models.version_of(store, user, name, version))


@router.delete("/{name}/versions/{version}", status_code=204, responses=errors(403, 404, 409))
async def delete_version(
    name: NamePath, version: VersionPath, user: CurrentUser, store: Store, broker: Broker
) -> Response:
    """Delete a version and its package (needs edit); 409 naming the deployments that use it, or
    the aliases that point to it. Version numbers are not reused."""
    await models.visible_model(store, user, name, "edit")
    await call(
        broker, subjects.RPC_DELETE_VERSION, DeleteVersion(name=name, version=version, acting_user=user["username"])
    )
    return Response(status_code=204)


@router.get(
    "/{name}/versions/{version}/archive",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            "description": "the version's package",
        },
        **errors(404),
    },
)
async def get_archive(
    name: NamePath, version: VersionPath, user: CurrentUser, store: Store, broker: Broker
) -> FileResponse:
    """The version's zip, copied from the object store through a temp file (never whole in memory)."""
    doc = await models.version_of(store, user, name, version)
    fd, path = tempfile.mkstemp(suffix=".zip")
    try:
        with os.fdopen(fd, "wb") as handle:
            await (await broker.object_storage(subjects.PACKAGES_BUCKET)).get(doc["package_object"], writeinto=handle)
    except Exception as exc:
        os.unlink(path)
        raise NotFound(f"model '{name}' version {version} is no longer stored") from exc
    return FileResponse(
        path,
        media_type="application/zip",
        filename=f"{name}-v{version}.zip",
        background=BackgroundTask(os.unlink, path),
    )
