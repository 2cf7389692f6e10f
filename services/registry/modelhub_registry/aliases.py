"""Registry use cases: a model's aliases (`prod` -> version 3), with a history that is never rewritten.

The model document holds the aliases (`aliases: {alias: version}`); each change is appended to
`alias_history` (`model_id`, `alias`, `version` or None for a removal, `set_by`, `set_at`, `seq`).
Both are written by one update of the model document, which also queues the change
(`alias_outbox`): `ModelStore.change_alias`; `flush_aliases` then copies it to the history, once,
and the registry flushes whatever a crash left queued when it starts. So the history has every
change, in the order the model document took them (`seq`), and nothing else.

An alias never points at a version that is gone: setting one and deleting a version each write
first and check the other after (`version_settled` after the alias is set; `holding_aliases`
flags the version before it reads the aliases), so of a set and a delete racing on one version at
least one sees the other and backs off. A set that lost is undone by a further change (the history
keeps both), and answers 404 as if the version had been gone already.
"""

from modelhub_contracts import access
from modelhub_contracts.errors import Conflict, Invalid, NotFound
from modelhub_contracts.events import RemoveAlias, RpcReply, SetAlias, utcnow
from modelhub_contracts.names import ALIAS_RULE, is_valid_alias
from modelhub_registry.store import ModelStore
from modelhub_runtime.messaging import ok, refused


async def _may_edit(store: ModelStore, name: str, username: str) -> RpcReply | None:
    """The access rule, as for every model command (models.authorize; that module imports this one)."""
    model, user = await store.get_model(name), await access.load_user(store.db, username)
    refusal = access.refusal(model, user, "edit", name)
    return refused(refusal) if refusal else None


def _no_version(name: str, version: int) -> RpcReply:
    return refused(NotFound(f"model '{name}' has no version {version}"))


async def set_alias(store: ModelStore, cmd: SetAlias) -> RpcReply:
    """Point the alias at a version of the model (needs edit); 404 naming a version that does not exist."""
    if refusal := await _may_edit(store, cmd.name, cmd.acting_user):
        return refusal
    if not is_valid_alias(cmd.alias):
        return refused(Invalid(f"alias must be {ALIAS_RULE}"))
    if not await store.version_settled(cmd.name, cmd.version):
        return _no_version(cmd.name, cmd.version)
    changed = await store.change_alias(cmd.name, cmd.alias, cmd.version, cmd.acting_user, utcnow())
    if changed is None:
        return refused(NotFound(f"model '{cmd.name}' not found"))
    before, change = changed
    if not await store.version_settled(cmd.name, cmd.version):  # a delete of it came in between
        previous = (before.get("aliases") or {}).get(cmd.alias)
        await store.change_alias(cmd.name, cmd.alias, previous, cmd.acting_user, utcnow())
        await store.flush_aliases(cmd.name)
        return _no_version(cmd.name, cmd.version)
    await store.flush_aliases(cmd.name)
    return ok({"alias": cmd.alias, "version": cmd.version, "set_by": change["set_by"], "set_at": change["set_at"]})


async def remove_alias(store: ModelStore, cmd: RemoveAlias) -> RpcReply:
    """Remove the alias (needs edit); its history stays, ending in a removal. 404 when it is not set."""
    if refusal := await _may_edit(store, cmd.name, cmd.acting_user):
        return refusal
    if await store.change_alias(cmd.name, cmd.alias, None, cmd.acting_user, utcnow()) is None:
        return refused(NotFound(f"model '{cmd.name}' has no alias '{cmd.alias}'"))
    await store.flush_aliases(cmd.name)
    return ok(status=204)


async def holding_aliases(store: ModelStore, name: str, version: int) -> RpcReply | None:
    """Before a version is deleted: the refusal (409 naming them) when aliases point at it, else
    None with the version flagged, so that no alias is set to it while it goes."""
    if not await store.mark_deleting(name, version, True):
        return None  # no such version: the delete answers 404
    model = await store.get_model(name)
    held = sorted(a for a, v in ((model or {}).get("aliases") or {}).items() if v == version)
    if not held:
        return None
    await store.mark_deleting(name, version, False)
    many = len(held) > 1
    named = ", ".join(f"'{a}'" for a in held)
    return refused(
        Conflict(
            f"alias{'es' if many else ''} {named} of model '{name}' point{'' if many else 's'} to version "
            f"{version}; move or remove {'them' if many else 'it'} first"
        )
    )


async def flush_queued(store: ModelStore) -> None:
    """At start: the alias changes a crash left queued on their models go into the history."""
    for name in await store.models_with_queued_aliases():
        await store.flush_aliases(name)
