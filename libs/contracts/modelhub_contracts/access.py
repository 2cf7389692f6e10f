"""Who may do what with a model — one rule for the gateway (HTTP) and for every service that
consumes a command or event carrying an acting user (so an event cannot do what the user
could not do over HTTP).

Levels: none < run < edit < owner. `edit` includes `run`; the owner and the admin can do everything.
"""

from collections.abc import Mapping
from typing import Any, cast

from pymongo.asynchronous.database import AsyncDatabase

from modelhub_contracts.documents import Actor, Model
from modelhub_contracts.errors import DomainError, Forbidden, NotFound

RANK = {"none": 0, "run": 1, "edit": 2, "owner": 3}


def level(model: Model, user: Actor) -> int:
    """The user's rank on a model document (users: {"username", "is_admin"})."""
    if user.get("is_admin") or model["owner"] == user["username"]:
        return RANK["owner"]
    sharing = model.get("sharing") or {}
    personal = (sharing.get("users") or {}).get(user["username"], "none")
    return max(RANK[sharing.get("everyone", "none")], RANK[personal])


def refusal(model: Model | None, user: Actor | None, need: str, name: str) -> DomainError | None:
    """None when allowed; else NotFound when the model is invisible to the user (so names do not
    leak) or Forbidden when it is visible but `need` is missing."""
    if model is None or user is None or level(model, user) == 0:
        return NotFound(f"model '{name}' not found")
    if level(model, user) < RANK[need]:
        return Forbidden(f"you may not {'run' if need == 'run' else 'change'} model '{name}'")
    return None


def may(model: Model | None, user: Actor | None, need: str) -> bool:
    return model is not None and user is not None and level(model, user) >= RANK[need]


def owns(doc: Mapping[str, Any], user: Actor | None) -> bool:
    """Datasets and jobs belong to their owner; the admin may use them too."""
    return user is not None and (bool(user.get("is_admin")) or doc.get("owner") == user["username"])


async def load_user(db: AsyncDatabase, username: str) -> Actor | None:
    """The acting user as the rule needs it, or None if no such user exists (any more)."""
    return cast(
        Actor | None, await db["users"].find_one({"_id": username.lower()}, projection={"username": 1, "is_admin": 1})
    )


async def load_model(db: AsyncDatabase, name: str) -> Model | None:
    # a projection: just what the rule reads (owner, sharing, name)
    return cast(
        Model | None,
        await db["models"].find_one({"_id": name.lower()}, projection={"owner": 1, "sharing": 1, "name": 1}),
    )
