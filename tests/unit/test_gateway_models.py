"""Model use cases on an in-memory store: what the caller may see, and shares by each user's spelling."""

from datetime import UTC, datetime

import pytest

from modelhub_contracts.documents import Model, User, Version
from modelhub_contracts.errors import Forbidden, NotFound
from modelhub_gateway import models

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def user(name: str, is_admin: bool = False) -> User:
    return User(_id=name.lower(), username=name, is_admin=is_admin, token_hash="h", created_at=NOW)


def model(name: str, owner: str, everyone: str = "none", **users: str) -> Model:
    return Model(
        _id=name.lower(),
        name=name,
        description="",
        tags=[],
        owner=owner,
        sharing={"everyone": everyone, "users": users},
        version_count=1,
        created_at=NOW,
        updated_at=NOW,
    )


class FakeStore:
    """models.ModelStore in memory."""

    def __init__(self, *docs: Model, versions: tuple[Version, ...] = (), users: tuple[str, ...] = ()) -> None:
        self.models = {m["_id"]: m for m in docs}
        self.versions = versions
        self.users = {u.lower(): u for u in users}

    async def model(self, name: str) -> Model | None:
        return self.models.get(name.lower())

    async def all_models(self) -> list[Model]:
        return [self.models[k] for k in sorted(self.models)]

    async def version(self, name: str, version: int | None) -> Version | None:
        found = [v for v in self.versions if v["model_id"] == name.lower() and version in (None, v["version"])]
        return found[-1] if found else None

    async def username_as_spelled(self, username: str) -> str | None:
        return self.users.get(username.lower())


STORE = FakeStore(
    model("Digits", "ann", bob="run"),
    model("open", "ann", everyone="run"),
    model("secret", "ann"),
    versions=(
        Version(
            _id="digits/1",
            model_id="digits",
            version=1,
            sha256="s",
            size_bytes=1,
            schema={},
            package_object="o",
            created_at=NOW,
            created_by="ann",
        ),
    ),
    users=("Bob", "carol"),
)


async def test_a_model_shared_with_nobody_is_not_found_by_others_so_its_name_does_not_leak():
    with pytest.raises(NotFound, match="model 'secret' not found"):
        await models.visible_model(STORE, user("bob"), "secret")


async def test_a_runner_sees_the_model_but_may_not_change_it():
    assert (await models.visible_model(STORE, user("bob"), "DIGITS"))["name"] == "Digits"
    with pytest.raises(Forbidden, match="you may not change model 'digits'"):
        await models.visible_model(STORE, user("bob"), "digits", "edit")


async def test_each_caller_lists_the_models_it_may_see():
    assert [m["name"] for m in await models.list_models(STORE, user("bob"))] == ["Digits", "open"]
    assert [m["name"] for m in await models.list_models(STORE, user("root", is_admin=True))] == [
        "Digits",
        "open",
        "secret",
    ]


async def test_a_version_that_does_not_exist_is_not_found():
    assert (await models.version_of(STORE, user("bob"), "digits", 1))["version"] == 1
    with pytest.raises(NotFound, match="model 'digits' has no version 2"):
        await models.version_of(STORE, user("bob"), "digits", 2)


async def test_shares_are_kept_under_each_users_own_spelling_and_unknown_users_are_named():
    assert await models.shares(STORE, {"bob": "run", "CAROL": "edit"}) == {"Bob": "run", "carol": "edit"}
    with pytest.raises(NotFound, match="users 'dave', 'zed' not found"):
        await models.shares(STORE, {"zed": "run", "bob": "run", "dave": "edit"})
    with pytest.raises(NotFound, match="user 'dave' not found"):
        await models.shares(STORE, {"dave": "run"})
