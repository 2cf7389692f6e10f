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
from modelhub_contracts.model_schema import SchemaError, validate_model_schema
from modelhub_contracts.names import NAME_RULE, is_valid_name
from modelhub_contracts.onnx_manifest import schema_problem
from modelhub_contracts.package import PackageError, PackageInfo, PackageLimits, inspect_package
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
    """Delete a version and its package (needs edit); refused (409, naming them) while deployments use it.
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
        checked = await _checked(path, limits, cmd.model_schema)
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
    if not isinstance(checked, PackageInfo):
        await blobs.delete(cmd.upload_object)
        return checked
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
        "schema": cmd.model_schema,
        "format": checked.format,
        "created_at": utcnow(),
        "created_by": cmd.acting_user,
        "package_object": cmd.upload_object,
    }
    await store.insert_version(doc)
    return ok({k: v for k, v in doc.items() if k not in ("_id", "model_id", "package_object")}, status=201)


async def _checked(path: Path, limits: PackageLimits, schema: dict) -> PackageInfo | RpcReply:
    """The package described when it and its schema are acceptable, else the refusal."""
    try:
        validate_model_schema(schema)
    except SchemaError as exc:
        return refused(Invalid(f"invalid model schema: {exc}"))
    try:
        # zip inspection streams the whole archive: keep it off the event loop
        info = await asyncio.to_thread(inspect_package, path, limits)
        if info.onnx is not None:
            if problem := schema_problem(info.onnx, schema):
                return refuse(400, f"the schema does not fit manifest.json: {problem}")
            await check_isolated(path, info)
    except PackageError as exc:
        return refuse(400, f"invalid model package: {exc}")
    return info
