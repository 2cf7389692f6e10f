"""Aliases: the gateway's side (which version `@alias` means at deploy, the history as shown) on
its in-memory stores, and the registry's use cases (who may change one, the history each change
leaves, and a set racing a version's delete) on a fake of the registry's store."""

from datetime import datetime
from typing import Any, cast

import pytest
from test_gateway_deployments import FakeStore, Sent, model, user, version

from modelhub_contracts import subjects
from modelhub_contracts.documents import AliasChange, Model
from modelhub_contracts.errors import NotFound
from modelhub_contracts.events import DeploymentRequested, RemoveAlias, SetAlias
from modelhub_gateway import aliases, deployments
from modelhub_gateway.schemas import DeploymentCreate
from modelhub_registry import aliases as registry
from modelhub_registry.store import ModelStore

# ---------------------------------------------------------------- the gateway's side


def digits(**aliases_: int) -> Model:
    doc = model("Digits", "ann", bob="run")
    doc["aliases"] = aliases_
    return doc


def test_a_number_is_the_version_and_an_alias_is_where_it_points_now():
    assert aliases.resolve(digits(prod=2), 1) == (1, None)
    assert aliases.resolve(digits(prod=2), None) == (None, None)
    assert aliases.resolve(digits(prod=2), "@prod") == (2, "prod")
    with pytest.raises(NotFound, match="model 'Digits' has no alias 'staging'"):
        aliases.resolve(digits(prod=2), "@staging")


async def test_a_deploy_by_alias_records_the_alias_and_the_version_it_resolved_to():
    store = FakeStore(digits(prod=1), versions=(version("digits", 1), version("digits", 2)))
    sent = Sent()
    doc = await deployments.create_deployment(
        store, sent, user("bob"), "digits", DeploymentCreate.model_validate({"name": "d", "version": "@prod"})
    )
    assert (doc["version"], doc.get("alias")) == (1, "prod")
    ((_, event),) = sent
    assert isinstance(event, DeploymentRequested) and (event.version, event.package_object) == (1, "obj1")


async def test_a_deploy_by_an_unknown_alias_is_not_found_and_nothing_is_stored_or_sent():
    store = FakeStore(digits(), versions=(version("digits", 1),))
    sent = Sent()
    with pytest.raises(NotFound, match="no alias 'prod'"):
        await deployments.create_deployment(
            store, sent, user("bob"), "digits", DeploymentCreate.model_validate({"name": "d", "version": "@prod"})
        )
    assert (store.deployments, sent) == ({}, [])


@pytest.mark.parametrize("version_", ["prod", "@", "@1x", "@a.b", "@" + "a" * 65])
def test_a_deploy_version_is_a_number_or_at_and_an_alias_name(version_):
    with pytest.raises(ValueError):
        DeploymentCreate.model_validate({"name": "d", "version": version_})


class HistoryStore:
    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    async def alias_history(self, model_id: str, alias: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if (r["model_id"], r["alias"]) == (model_id, alias)]


def change(seq: int, alias: str, version_: int | None) -> dict:
    return {"model_id": "digits", "seq": seq, "alias": alias, "version": version_, "set_by": "ann", "set_at": seq}


async def test_the_history_includes_changes_still_queued_on_the_model_oldest_first_once_each():
    doc = digits(prod=3)
    doc["alias_outbox"] = cast(list[AliasChange], [change(4, "prod", 3), change(3, "prod", None), change(5, "x", 1)])
    store = HistoryStore([change(1, "prod", 1), change(3, "prod", None), change(2, "other", 2)])
    got = await aliases.history(store, doc, "prod")
    assert [(c["seq"], c["version"]) for c in got] == [(1, 1), (3, None), (4, 3)]


async def test_the_history_of_an_alias_never_set_is_not_found():
    with pytest.raises(NotFound, match="has no alias 'prod'"):
        await aliases.history(HistoryStore([]), digits(), "prod")


def test_the_gateway_sends_every_command_the_registry_answers():
    from test_asyncapi import _generator, _operations

    ops = _operations(_generator().document())
    answered = {
        s for service, action, s in ops if (service, action) == ("registry", "receive") and ".rpc.registry." in s
    }
    sent = {s for service, action, s in ops if (service, action) == ("gateway", "send")}
    assert {subjects.RPC_SET_ALIAS, subjects.RPC_REMOVE_ALIAS} <= answered
    assert answered <= sent, answered - sent


# ---------------------------------------------------------------- the registry's use cases


class Users:
    def __init__(self, *names: str) -> None:
        self.names = names

    async def find_one(self, query: dict, projection: Any = None) -> dict | None:
        name = query["_id"]
        return {"username": name, "is_admin": False} if name in self.names else None


class RegistryStore:
    """ModelStore's alias operations in memory; `on_check` runs before each version check (a
    concurrent delete's moves)."""

    def __init__(self) -> None:
        self.db = {"users": Users("ann", "bob", "eve")}
        self.model: dict = {**model("Digits", "ann", bob="run", eve="edit"), "aliases": {}}
        self.versions = {1: False, 2: False}  # version -> a delete is under way
        self.history: list[dict] = []
        self.seq = 0
        self.on_check: list = []

    async def get_model(self, name: str) -> dict | None:
        return self.model if name.lower() == "digits" else None

    async def version_settled(self, name: str, version_: int) -> bool:
        if self.on_check:
            self.on_check.pop(0)()
        return self.versions.get(version_) is False

    async def mark_deleting(self, name: str, version_: int, deleting: bool) -> bool:
        if version_ not in self.versions:
            return False
        self.versions[version_] = deleting
        return True

    async def change_alias(self, name: str, alias: str, version_: int | None, user_: str, at: datetime):
        if version_ is None and alias not in self.model["aliases"]:
            return None
        before = {**self.model, "aliases": dict(self.model["aliases"])}
        if version_ is None:
            del self.model["aliases"][alias]
        else:
            self.model["aliases"][alias] = version_
        self.seq += 1
        self.history.append({"seq": self.seq, "alias": alias, "version": version_, "set_by": user_})
        return before, {"set_by": user_, "set_at": at, "seq": self.seq}

    async def flush_aliases(self, name: str) -> None:
        pass


def reg(store: RegistryStore) -> ModelStore:
    return cast(ModelStore, store)


async def test_an_editor_sets_moves_and_removes_an_alias_and_each_change_is_kept():
    store = RegistryStore()
    assert (
        await registry.set_alias(reg(store), SetAlias(name="digits", alias="prod", version=1, acting_user="eve"))
    ).status == 200
    await registry.set_alias(reg(store), SetAlias(name="digits", alias="prod", version=2, acting_user="ann"))
    assert (
        await registry.remove_alias(reg(store), RemoveAlias(name="digits", alias="prod", acting_user="eve"))
    ).status == 204
    assert store.model["aliases"] == {}
    assert [(h["version"], h["set_by"]) for h in store.history] == [(1, "eve"), (2, "ann"), (None, "eve")]


@pytest.mark.parametrize(
    "command, status, detail",
    [
        (SetAlias(name="digits", alias="prod", version=1, acting_user="bob"), 403, "may not change model 'digits'"),
        (SetAlias(name="digits", alias="prod", version=1, acting_user="mallory"), 404, "model 'digits' not found"),
        (SetAlias(name="digits", alias="prod", version=7, acting_user="eve"), 404, "model 'digits' has no version 7"),
        (SetAlias(name="digits", alias="1prod", version=1, acting_user="eve"), 422, "alias must be a letter"),
        (RemoveAlias(name="digits", alias="prod", acting_user="eve"), 404, "model 'digits' has no alias 'prod'"),
        (RemoveAlias(name="digits", alias="prod", acting_user="bob"), 403, "may not change"),
    ],
)
async def test_refused_changes_change_nothing(command, status, detail):
    store = RegistryStore()
    if isinstance(command, SetAlias):
        reply = await registry.set_alias(reg(store), command)
    else:
        reply = await registry.remove_alias(reg(store), command)
    assert reply.status == status and detail in (reply.detail or "")
    assert (store.model["aliases"], store.history) == ({}, [])


async def test_a_set_that_a_delete_of_its_version_overtook_is_undone_in_the_open():
    store = RegistryStore()
    await registry.set_alias(reg(store), SetAlias(name="digits", alias="prod", version=1, acting_user="eve"))
    # the delete of version 2 flags it after the set checked it, before the set looks again
    store.on_check = [lambda: None, lambda: store.versions.__setitem__(2, True)]
    reply = await registry.set_alias(reg(store), SetAlias(name="digits", alias="prod", version=2, acting_user="eve"))
    assert (reply.status, store.model["aliases"]) == (404, {"prod": 1})
    assert [h["version"] for h in store.history] == [1, 2, 1]  # the history says what happened


async def test_a_version_an_alias_points_to_is_held_and_its_delete_flag_cleared():
    store = RegistryStore()
    await registry.set_alias(reg(store), SetAlias(name="digits", alias="prod", version=2, acting_user="eve"))
    await registry.set_alias(reg(store), SetAlias(name="digits", alias="canary", version=2, acting_user="eve"))
    held = await registry.holding_aliases(reg(store), "digits", 2)
    assert held is not None and held.status == 409
    assert "aliases 'canary', 'prod' of model 'digits' point to version 2" in (held.detail or "")
    assert store.versions[2] is False
    assert await registry.holding_aliases(reg(store), "digits", 1) is None and store.versions[1] is True
    assert await registry.holding_aliases(reg(store), "digits", 9) is None  # no such version: the delete says 404
