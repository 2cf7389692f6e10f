"""Thin request/reply subscribers: typed command in, one use case, typed reply out."""

from faststream.nats import NatsBroker

from modelhub_contracts import subjects
from modelhub_contracts.events import (
    AddVersion,
    CreateModel,
    DeleteModel,
    DeleteVersion,
    RemoveAlias,
    RpcReply,
    SetAlias,
    SetSharing,
    UpdateModel,
)
from modelhub_contracts.package import PackageLimits
from modelhub_registry import aliases, models
from modelhub_registry.store import ModelStore, PackageBlobs
from modelhub_runtime import bus


def register(broker: NatsBroker, store: ModelStore, blobs: PackageBlobs, limits: PackageLimits) -> None:
    """Wire the registry's commands to their use cases."""

    @broker.subscriber(
        subjects.RPC_CREATE_MODEL, queue="registry", title=bus.receiving("registry", subjects.RPC_CREATE_MODEL)
    )
    async def on_create(cmd: CreateModel) -> RpcReply:
        """Create a model."""
        return await models.create_model(store, cmd)

    @broker.subscriber(
        subjects.RPC_UPDATE_MODEL, queue="registry", title=bus.receiving("registry", subjects.RPC_UPDATE_MODEL)
    )
    async def on_update(cmd: UpdateModel) -> RpcReply:
        """Update a model's description/tags."""
        return await models.update_model(store, cmd)

    @broker.subscriber(
        subjects.RPC_SET_SHARING, queue="registry", title=bus.receiving("registry", subjects.RPC_SET_SHARING)
    )
    async def on_sharing(cmd: SetSharing) -> RpcReply:
        """Replace a model's sharing."""
        return await models.set_sharing(store, cmd)

    @broker.subscriber(
        subjects.RPC_DELETE_MODEL, queue="registry", title=bus.receiving("registry", subjects.RPC_DELETE_MODEL)
    )
    async def on_delete(cmd: DeleteModel) -> RpcReply:
        """Delete a model unless a deployment of it is active."""
        return await models.delete_model(store, blobs, cmd)

    @broker.subscriber(
        subjects.RPC_DELETE_VERSION, queue="registry", title=bus.receiving("registry", subjects.RPC_DELETE_VERSION)
    )
    async def on_delete_version(cmd: DeleteVersion) -> RpcReply:
        """Delete a version unless a deployment uses it."""
        return await models.delete_version(store, blobs, cmd)

    @broker.subscriber(
        subjects.RPC_ADD_VERSION, queue="registry", title=bus.receiving("registry", subjects.RPC_ADD_VERSION)
    )
    async def on_add_version(cmd: AddVersion) -> RpcReply:
        """Validate an uploaded package and record it as the next version."""
        return await models.add_version(store, blobs, limits, cmd)

    @broker.subscriber(
        subjects.RPC_SET_ALIAS, queue="registry", title=bus.receiving("registry", subjects.RPC_SET_ALIAS)
    )
    async def on_set_alias(cmd: SetAlias) -> RpcReply:
        """Point a model's alias at one of its versions."""
        return await aliases.set_alias(store, cmd)

    @broker.subscriber(
        subjects.RPC_REMOVE_ALIAS, queue="registry", title=bus.receiving("registry", subjects.RPC_REMOVE_ALIAS)
    )
    async def on_remove_alias(cmd: RemoveAlias) -> RpcReply:
        """Remove a model's alias."""
        return await aliases.remove_alias(store, cmd)
