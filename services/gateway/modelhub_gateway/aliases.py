"""Alias use cases on the gateway's side: which version `@alias` means at deploy, and an alias's
history as the API shows it. The registry owns aliases (models' `aliases`, `alias_history`) and
changes them; see `modelhub_registry.aliases` for how the history is kept."""

from typing import Any, Protocol

from modelhub_contracts.documents import Model
from modelhub_contracts.errors import NotFound


class AliasStore(Protocol):
    """What these use cases read (`GatewayStore` in the app)."""

    async def alias_history(self, model_id: str, alias: str) -> list[dict[str, Any]]: ...


def resolve(model: Model, requested: int | str | None) -> tuple[int | None, str | None]:
    """The version a deploy asks for, and the alias it was named by: a number as it is, `@alias`
    as the alias points now (NotFound naming an alias the model does not have), None: the latest."""
    if not isinstance(requested, str):
        return requested, None
    alias = requested.removeprefix("@")
    version = (model.get("aliases") or {}).get(alias)
    if version is None:
        raise NotFound(f"model '{model['name']}' has no alias '{alias}'")
    return version, alias


async def history(store: AliasStore, model: Model, alias: str) -> list[dict[str, Any]]:
    """Every change of the alias, oldest first: those in `alias_history` and any the registry has
    made but not yet copied there (still queued on the model). NotFound for an alias never set."""
    changes = {c["seq"]: c for c in await store.alias_history(model["_id"], alias)}
    for queued in model.get("alias_outbox") or []:
        if queued["alias"] == alias:
            changes.setdefault(queued["seq"], dict(queued))
    if not changes:
        raise NotFound(f"model '{model['name']}' has no alias '{alias}'")
    return [changes[seq] for seq in sorted(changes)]
