"""Model use cases on the gateway's side: what the caller may see of models and versions, and the
checks made before a command goes to the registry (which owns models and versions, and re-checks
the same access rule). These functions raise domain errors and know nothing of HTTP;
`tests/unit/test_gateway_models.py` runs them on an in-memory store.
"""

from collections.abc import Mapping
from typing import Protocol, TypeVar

from modelhub_contracts.access import level, refusal
from modelhub_contracts.documents import Model, User, Version
from modelhub_contracts.errors import Invalid, NotFound


class ModelStore(Protocol):
    """What these use cases read (`GatewayStore` in the app)."""

    async def model(self, name: str) -> Model | None: ...
    async def all_models(self) -> list[Model]: ...
    async def version(self, name: str, version: int | None) -> Version | None: ...
    async def username_as_spelled(self, username: str) -> str | None: ...


async def visible_model(store: ModelStore, user: User, name: str, need: str = "run") -> Model:
    """The model if the caller has `need` on it: NotFound when it may not see it, Forbidden when
    it may see it but `need` is more than it has."""
    model = await store.model(name)
    if refused := refusal(model, user, need, name):
        raise refused
    assert model is not None
    return model


async def list_models(store: ModelStore, user: User) -> list[Model]:
    """Every model the caller may see, by name."""
    return [m for m in await store.all_models() if level(m, user) > 0]


async def version_of(store: ModelStore, user: User, name: str, number: int) -> Version:
    """One version of a model the caller may run; NotFound when there is no such version."""
    await visible_model(store, user, name)
    doc = await store.version(name, number)
    if doc is None or doc["version"] != number:
        raise NotFound(f"model '{name}' has no version {number}")
    return doc


Grant = TypeVar("Grant", bound=str)


async def shares(store: ModelStore, grants: Mapping[str, Grant]) -> dict[str, Grant]:
    """The grants keyed by each user's own spelling (usernames are case-insensitive); NotFound
    naming every user that does not exist."""
    spelled: dict[str, Grant] = {}
    unknown: list[str] = []
    for username, grant in grants.items():
        found = await store.username_as_spelled(username)
        if found is None:
            unknown.append(username)
        else:
            spelled[found] = grant
    if unknown:
        names = ", ".join(f"'{u}'" for u in sorted(unknown))
        raise NotFound(f"user {names} not found" if len(unknown) == 1 else f"users {names} not found")
    return spelled


def name_list(text: str | None) -> list[str]:
    """A form field of comma-separated names (`image, mask`) as a list; the registry checks them."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def name_types(text: str | None) -> dict[str, str]:
    """A form field of comma-separated `name=type` pairs as a mapping; Invalid when a pair is not
    one. The registry checks the names and the types against the model."""
    pairs: dict[str, str] = {}
    for item in name_list(text):
        name, sep, kind = (part.strip() for part in item.partition("="))
        if not sep or not name or not kind:
            raise Invalid(f"output_types: {item!r} is not name=type (e.g. predictions=number)")
        pairs[name] = kind
    return pairs
