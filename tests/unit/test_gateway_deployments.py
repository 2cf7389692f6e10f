"""Deployment use cases on an in-memory store: who may deploy, see and stop, and what goes out."""

from datetime import UTC, datetime

import pytest

from modelhub_contracts import subjects
from modelhub_contracts.documents import Deployment, DeploymentStatus, Model, User, Version
from modelhub_contracts.errors import Conflict, Forbidden, Invalid, NotFound
from modelhub_contracts.events import DeploymentRequested, DeploymentStopRequested, Event
from modelhub_gateway import deployments
from modelhub_gateway.schemas import DeploymentCreate

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def user(name: str, is_admin: bool = False) -> User:
    return User(_id=name, username=name, is_admin=is_admin, token_hash="h", created_at=NOW)


def model(name: str, owner: str, **users: str) -> Model:
    return Model(
        _id=name.lower(),
        name=name,
        description="",
        tags=[],
        owner=owner,
        sharing={"everyone": "none", "users": users},
        version_count=1,
        created_at=NOW,
        updated_at=NOW,
    )


def version(model_id: str, number: int) -> Version:
    return Version(
        _id=f"{model_id}/{number}",
        model_id=model_id,
        version=number,
        sha256=f"sha{number}",
        size_bytes=1,
        schema={},
        package_object=f"obj{number}",
        created_at=NOW,
        created_by="ann",
    )


class FakeStore:
    """deployments.DeploymentStore in memory."""

    def __init__(self, *models: Model, versions: tuple[Version, ...] = ()) -> None:
        self.models = {m["_id"]: m for m in models}
        self.versions = list(versions)
        self.deployments: dict[str, Deployment] = {}

    async def model(self, name: str) -> Model | None:
        return self.models.get(name.lower())

    recent_model = model

    async def version(self, name: str, version: int | None) -> Version | None:
        found = sorted(
            (v for v in self.versions if v["model_id"] == name.lower() and version in (None, v["version"])),
            key=lambda v: v["version"],
        )
        return found[-1] if found else None

    async def deployment(self, name: str) -> Deployment | None:
        return self.deployments.get(name)

    recent_deployment = deployment

    async def deployments_newest_first(self) -> list[Deployment]:
        return sorted(self.deployments.values(), key=lambda d: d["created_at"], reverse=True)

    async def put_deployment(self, doc: Deployment) -> bool:
        held = self.deployments.get(doc["_id"])
        if held is not None and held["status"] not in (DeploymentStatus.STOPPED, DeploymentStatus.FAILED):
            return False
        self.deployments[doc["_id"]] = doc
        return True

    async def mark_stopping(self, name: str) -> Deployment | None:
        doc = self.deployments.get(name)
        if doc is not None:
            doc["status"] = DeploymentStatus.STOPPING
        return doc


class Sent(list):
    async def __call__(self, subject: str, event: Event) -> None:
        self.append((subject, event))


@pytest.fixture
def store() -> FakeStore:
    return FakeStore(
        model("Digits", "ann", bob="run", eve="edit"),
        model("secret", "ann"),
        versions=(version("digits", 1), version("digits", 2), version("secret", 1)),
    )


async def test_a_runner_deploys_the_latest_version_and_the_deployer_is_asked(store):
    sent = Sent()
    doc = await deployments.create_deployment(store, sent, user("bob"), "digits", DeploymentCreate(name="d1"))
    assert (doc["status"], doc["version"], doc["model"], doc["created_by"]) == ("pending", 2, "Digits", "bob")
    assert store.deployments["d1"] is doc
    ((subject, event),) = sent
    assert subject == subjects.DEPLOYMENT_REQUESTED and isinstance(event, DeploymentRequested)
    assert (event.deployment, event.version, event.package_object, event.requested_by) == ("d1", 2, "obj2", "bob")


async def test_a_model_the_caller_cannot_see_is_not_found_and_nothing_is_sent(store):
    sent = Sent()
    with pytest.raises(NotFound, match="model 'secret' not found"):
        await deployments.create_deployment(store, sent, user("bob"), "secret", DeploymentCreate(name="d1"))
    assert sent == [] and store.deployments == {}


async def test_a_missing_version_is_invalid(store):
    with pytest.raises(Invalid, match="model 'digits' has no version 7"):
        await deployments.create_deployment(store, Sent(), user("ann"), "digits", DeploymentCreate(name="d", version=7))


async def test_a_live_deployments_name_is_taken_but_a_stopped_ones_may_be_reused(store):
    await deployments.create_deployment(store, Sent(), user("ann"), "digits", DeploymentCreate(name="d"))
    with pytest.raises(Conflict, match="a deployment named 'd' already exists"):
        await deployments.create_deployment(store, Sent(), user("ann"), "digits", DeploymentCreate(name="d"))
    store.deployments["d"]["status"] = DeploymentStatus.STOPPED
    again = await deployments.create_deployment(
        store, Sent(), user("ann"), "digits", DeploymentCreate(name="d", version=1)
    )
    assert (again["status"], again["version"]) == ("pending", 1)


async def test_autoscaling_with_only_a_maximum_starts_from_one(store):
    doc = await deployments.create_deployment(
        store, Sent(), user("ann"), "digits", DeploymentCreate(name="d", max_replicas=4)
    )
    assert (doc["min_replicas"], doc["max_replicas"], doc.get("scale_down_delay_s")) == (1, 4, 600)


async def test_scale_to_zero_reaches_the_document_and_the_event(store):
    sent = Sent()
    body = DeploymentCreate(name="z", min_replicas=0, max_replicas=2, scale_down_delay_s=30)
    doc = await deployments.create_deployment(store, sent, user("ann"), "digits", body)
    assert (doc["min_replicas"], doc["max_replicas"], doc.get("scale_down_delay_s")) == (0, 2, 30)
    (event,) = [e for _, e in sent if isinstance(e, DeploymentRequested)]
    assert (event.min_replicas, event.max_replicas, event.scale_down_delay_s) == (0, 2, 30)
    fixed = await deployments.create_deployment(store, sent, user("ann"), "digits", DeploymentCreate(name="f"))
    assert fixed.get("scale_down_delay_s") is None


async def test_a_deployment_of_an_invisible_model_is_not_found_and_not_listed(store):
    await deployments.create_deployment(store, Sent(), user("ann"), "secret", DeploymentCreate(name="hidden"))
    await deployments.create_deployment(store, Sent(), user("ann"), "digits", DeploymentCreate(name="shown"))
    with pytest.raises(NotFound, match="deployment 'hidden' not found"):
        await deployments.visible_deployment(store, user("bob"), "hidden")
    assert [d["_id"] for d in await deployments.list_deployments(store, user("bob"))] == ["shown"]
    assert {d["_id"] for d in await deployments.list_deployments(store, user("root", is_admin=True))} == {
        "hidden",
        "shown",
    }


async def test_a_runner_who_did_not_create_it_may_not_stop_it_but_an_editor_may(store):
    doc = await deployments.create_deployment(store, Sent(), user("ann"), "digits", DeploymentCreate(name="d"))
    with pytest.raises(Forbidden, match="only its creator or an editor of 'Digits' may stop 'd'"):
        await deployments.stop_deployment(store, Sent(), user("bob"), doc)
    sent = Sent()
    stopped = await deployments.stop_deployment(store, sent, user("eve"), doc)
    assert stopped["status"] == "stopping"
    assert [(s, type(e)) for s, e in sent] == [(subjects.DEPLOYMENT_STOP_REQUESTED, DeploymentStopRequested)]


async def test_stopping_a_stopped_deployment_changes_nothing_and_sends_nothing(store):
    doc = await deployments.create_deployment(store, Sent(), user("bob"), "digits", DeploymentCreate(name="d"))
    doc["status"] = DeploymentStatus.STOPPED
    sent = Sent()
    assert (await deployments.stop_deployment(store, sent, user("bob"), doc))["status"] == "stopped"
    assert sent == []
