"""Registry use cases: create, update, delete and share models; add immutable versions."""

import asyncio
import logging
import shutil
from pathlib import Path

from modelhub_contracts import access
from modelhub_contracts.documents import Model, Version
from modelhub_contracts.errors import Conflict, Forbidden, Invalid, NotFound
from modelhub_contracts.events import (
    AddVersion,
    CreateModel,
    DeleteModel,
    DeleteVersion,
    RpcReply,
    SetSharing,
    UpdateModel,
    utcnow,
)
from modelhub_contracts.mlmodel import MLmodelError, model_schema, read_mlmodel
from modelhub_contracts.model_schema import SchemaError, validate_model_schema
from modelhub_contracts.names import NAME_RULE, is_valid_name
from modelhub_contracts.onnx_manifest import schema_problem
from modelhub_contracts.package import PackageError, PackageInfo, PackageLimits, inspect_package
from modelhub_registry import aliases
from modelhub_registry.onnx_check import check_isolated
from modelhub_registry.store import ModelStore, NameTaken, PackageBlobs
from modelhub_runtime.messaging import ok, refuse, refused

log = logging.getLogger(__name__)


def public_model(doc: Model) -> dict:
    """The API's model shape (without versions, which the gateway joins in)."""
    return {k: doc[k] for k in ("name", "description", "tags", "owner", "created_at", "updated_at", "sharing")}


async def authorize(store: ModelStore, name: str, username: str, need: str) -> RpcReply | None:
    """The same rule as over HTTP: None when allowed, else the refusal (404 hides the model)."""
    model, user = await store.get_model(name), await access.load_user(store.db, username)
    refusal = access.refusal(model, user, need, name)
    return refused(refusal) if refusal else None


async def create_model(store: ModelStore, cmd: CreateModel) -> RpcReply:
    """Create a model owned by `cmd.owner`; names are unique case-insensitively (409)."""
    if await access.load_user(store.db, cmd.owner) is None:
        return refused(Forbidden(f"unknown user '{cmd.owner}'"))
    if not is_valid_name(cmd.name):
        return refused(Invalid(f"name must be {NAME_RULE}"))
    now = utcnow()
    doc: Model = {
        "_id": cmd.name.lower(),
        "name": cmd.name,
        "description": cmd.description,
        "tags": cmd.tags,
        "owner": cmd.owner,
        "created_at": now,
        "updated_at": now,
        "sharing": {"everyone": "none", "users": {}},
        "version_count": 0,
    }
    try:
        await store.insert_model(doc)
    except NameTaken:
        return refused(Conflict(f"a model named '{cmd.name}' already exists"))
    return ok(public_model(doc), status=201)


async def update_model(store: ModelStore, cmd: UpdateModel) -> RpcReply:
    """Change description and/or tags (needs edit)."""
    if refusal := await authorize(store, cmd.name, cmd.acting_user, "edit"):
        return refusal
    changes = {k: v for k, v in (("description", cmd.description), ("tags", cmd.tags)) if v is not None}
    doc = await store.update_model(cmd.name, {**changes, "updated_at": utcnow()})
    return ok(public_model(doc)) if doc else refused(NotFound(f"model '{cmd.name}' not found"))


async def set_sharing(store: ModelStore, cmd: SetSharing) -> RpcReply:
    """Replace the model's sharing settings (owner only)."""
    if refusal := await authorize(store, cmd.name, cmd.acting_user, "owner"):
        return refusal
    sharing = {"everyone": cmd.everyone, "users": cmd.users}
    doc = await store.update_model(cmd.name, {"sharing": sharing, "updated_at": utcnow()})
    return ok(sharing) if doc else refused(NotFound(f"model '{cmd.name}' not found"))


async def delete_model(store: ModelStore, blobs: PackageBlobs, cmd: DeleteModel) -> RpcReply:
    """Delete a model, its versions and packages (owner only); refused while a deployment of it is active."""
    if refusal := await authorize(store, cmd.name, cmd.acting_user, "owner"):
        return refusal
    if await store.has_active_deployment(cmd.name):
        return refused(Conflict(f"model '{cmd.name}' has an active deployment; delete the deployment first"))
    for name in await store.delete_model(cmd.name):
        await blobs.delete(name)
    return ok(status=204)


async def delete_version(store: ModelStore, blobs: PackageBlobs, cmd: DeleteVersion) -> RpcReply:
    """Delete a version and its package (needs edit); refused (409, naming them) while deployments use it
    or aliases point to it.
    Version numbers are never reused: the next upload still gets the next number."""
    if refusal := await authorize(store, cmd.name, cmd.acting_user, "edit"):
        return refusal
    if using := await store.deployments_using(cmd.name, cmd.version):
        return refused(
            Conflict(
                f"version {cmd.version} of model '{cmd.name}' is used by deployment(s) "
                f"{', '.join(using)}; stop them first"
            )
        )
    if held := await aliases.holding_aliases(store, cmd.name, cmd.version):
        return held
    package = await store.delete_version(cmd.name, cmd.version)
    if package is None:
        return refused(NotFound(f"model '{cmd.name}' has no version {cmd.version}"))
    await blobs.delete(package)
    return ok(status=204)


async def add_version(store: ModelStore, blobs: PackageBlobs, limits: PackageLimits, cmd: AddVersion) -> RpcReply:
    """Validate the uploaded zip and schema, then record the next version.

    Nothing is imported from the package. On refusal the uploaded object is deleted, so
    nothing is stored.
    """
    if refusal := await authorize(store, cmd.name, cmd.acting_user, "edit"):
        await blobs.delete(cmd.upload_object)
        return refusal
    try:
        return await _store_version(store, blobs, limits, cmd)
    except Exception:
        log.exception("storing a version of %s failed", cmd.name)
        await blobs.delete(cmd.upload_object)
        return refuse(500, "the package could not be stored; nothing was kept, try again")


async def _store_version(store: ModelStore, blobs: PackageBlobs, limits: PackageLimits, cmd: AddVersion) -> RpcReply:
    path, sha256, size = await blobs.download(cmd.upload_object, cmd.filename)
    try:
        checked = await _checked(path, limits, cmd)
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
    if isinstance(checked, RpcReply):
        await blobs.delete(cmd.upload_object)
        return checked
    schema, info = checked
    version = await store.next_version(cmd.name)
    if version is None:  # the model was deleted while its package was being checked
        await blobs.delete(cmd.upload_object)
        return refused(NotFound(f"model '{cmd.name}' not found"))
    doc: Version = {
        "_id": f"{cmd.name.lower()}/{version}",
        "model_id": cmd.name.lower(),
        "version": version,
        "sha256": sha256,
        "size_bytes": size,
        "schema": schema,
        "format": info.format,
        "created_at": utcnow(),
        "created_by": cmd.acting_user,
        "package_object": cmd.upload_object,
        "environment_files": environment_files(info),
    }
    await store.insert_version(doc)
    return ok({k: v for k, v in doc.items() if k not in ("_id", "model_id", "package_object")}, status=201)


def environment_files(info: PackageInfo) -> list[str]:
    """The files a custom_env deploy builds the replicas' environment from, as the package has them
    (the deploy dialog says what ticking custom env will do with this version)."""
    present = (("environment.yml", info.has_environment), ("requirements.txt", info.has_requirements))
    return [name for name, has in present if has]


async def _checked(path: Path, limits: PackageLimits, cmd: AddVersion) -> tuple[dict, PackageInfo] | RpcReply:
    """The version's schema and package format, or the refusal. A schema that was sent is checked
    first (cheap); an MLflow model's comes from, or is checked against, its signature."""
    if cmd.model_schema is not None:
        try:
            validate_model_schema(cmd.model_schema)
        except SchemaError as exc:
            return refused(Invalid(f"invalid model schema: {exc}"))
    try:
        # zip inspection streams the whole archive: keep it off the event loop
        info = await asyncio.to_thread(inspect_package, path, limits)
        schema = await asyncio.to_thread(_schema, path, info, cmd)
        if info.onnx is not None:
            if problem := schema_problem(info.onnx, schema):
                return refuse(400, f"the schema does not fit manifest.json: {problem}")
            await check_isolated(path, info)
    except PackageError as exc:
        return refuse(400, f"invalid model package: {exc}")
    except MLmodelError as exc:  # its messages name the MLmodel, the signature or the schema
        return refuse(400, str(exc))
    try:
        validate_model_schema(schema)  # a derived one too: the same rules as one sent
    except SchemaError as exc:
        return refused(Invalid(f"invalid model schema: {exc}"))
    return schema, info


def _schema(path: Path, info: PackageInfo, cmd: AddVersion) -> dict:
    """The schema that was sent, or (MLflow) the one the signature gives; reads MLmodel as data."""
    if info.format == "mlflow":
        return model_schema(read_mlmodel(path, info), cmd.model_schema, cmd.local_inputs, cmd.output_types)
    if cmd.local_inputs or cmd.output_types:
        raise MLmodelError("local_inputs and output_types apply only to an MLflow model without a schema")
    if cmd.model_schema is None:
        raise MLmodelError("a schema is needed (only an MLflow model with a signature can go without one)")
    return cmd.model_schema
