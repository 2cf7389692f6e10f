"""Dataset use cases on an in-memory store: ownership, names, adding samples."""

from datetime import UTC, datetime
from typing import cast

import pytest

from modelhub_contracts.documents import Dataset, Job, Sample, User
from modelhub_contracts.errors import Conflict, NotFound
from modelhub_gateway import datasets
from modelhub_gateway.schemas import DatasetCreate, SampleIn

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def user(name: str, is_admin: bool = False) -> User:
    return User(_id=name, username=name, is_admin=is_admin, token_hash="h", created_at=NOW)


class FakeStore:
    """datasets.DatasetStore in memory; `limit` stands in for MongoDB's document size limit."""

    def __init__(self, limit: int = 1000) -> None:
        self.datasets: dict[str, Dataset] = {}
        self.samples: list[Sample] = []
        self.jobs: dict[str, str] = {}  # job id -> dataset
        self.job_docs: dict[str, Job] = {}
        self.failed: dict[str, list[str]] = {}
        self.limit = limit

    async def dataset(self, name: str) -> Dataset | None:
        return self.datasets.get(name)

    async def datasets_of(self, owner: str | None) -> list[Dataset]:
        return [d for d in self.datasets.values() if owner in (None, d["owner"])]

    async def insert_dataset(self, doc: Dataset) -> bool:
        return self.datasets.setdefault(doc["_id"], doc) is doc

    async def add_samples(self, dataset: str, samples: list[Sample]) -> bool:
        if any(len(str(s)) > self.limit for s in samples):
            return False
        self.samples += samples
        self.datasets[dataset]["num_samples"] += len(samples)
        return True

    async def job(self, job_id: str) -> Job | None:
        return self.job_docs.get(job_id)

    async def has_job(self, dataset: str, job_id: str) -> bool:
        return self.jobs.get(job_id) == dataset

    async def failed_sample_ids(self, job_id: str) -> list[str]:
        return self.failed.get(job_id, [])


async def test_a_dataset_is_its_owners_and_the_admins_and_no_one_elses():
    store = FakeStore()
    created = await datasets.create_dataset(store, user("ann"), DatasetCreate(name="cats"))
    assert (created["owner"], created["num_samples"]) == ("ann", 0)
    assert await datasets.owned_dataset(store, user("ann"), "cats") is created
    assert await datasets.owned_dataset(store, user("root", is_admin=True), "cats") is created
    with pytest.raises(NotFound, match="dataset 'cats' not found"):
        await datasets.owned_dataset(store, user("bob"), "cats")


async def test_a_taken_name_is_a_conflict():
    store = FakeStore()
    await datasets.create_dataset(store, user("ann"), DatasetCreate(name="cats"))
    with pytest.raises(Conflict, match="a dataset named 'cats' already exists"):
        await datasets.create_dataset(store, user("bob"), DatasetCreate(name="cats"))


async def test_each_user_lists_their_own_datasets_and_the_admin_every_one():
    store = FakeStore()
    await datasets.create_dataset(store, user("ann"), DatasetCreate(name="a"))
    await datasets.create_dataset(store, user("bob"), DatasetCreate(name="b"))
    assert [d["_id"] for d in await datasets.list_datasets(store, user("bob"))] == ["b"]
    assert {d["_id"] for d in await datasets.list_datasets(store, user("root", is_admin=True))} == {"a", "b"}


async def test_added_samples_get_increasing_ids_and_are_counted():
    store = FakeStore()
    cats = await datasets.create_dataset(store, user("ann"), DatasetCreate(name="cats"))
    added = await datasets.add_samples(store, cats, [SampleIn(filepath="/a.jpg"), SampleIn(filepath="/b.jpg")])
    assert added == 2 and cats["num_samples"] == 2
    ids = [s["_id"] for s in store.samples]
    assert ids == sorted(ids) and len(set(ids)) == 2


async def test_a_sample_over_the_document_limit_adds_nothing_and_answers_413():
    store = FakeStore(limit=100)
    cats = await datasets.create_dataset(store, user("ann"), DatasetCreate(name="cats"))
    with pytest.raises(datasets.SampleTooLarge) as refused:
        await datasets.add_samples(store, cats, [SampleIn(filepath="/a.jpg", fields={"x": "y" * 200})])
    assert refused.value.status == 413 and store.samples == [] and cats["num_samples"] == 0


async def test_a_failed_job_filter_names_only_a_job_of_this_dataset():
    store = FakeStore()
    store.jobs, store.failed = {"j1": "cats"}, {"j1": ["s2"]}
    assert await datasets.failed_ids(store, "cats", "j1") == ("s2",)
    with pytest.raises(NotFound, match="job 'j1' not found on dataset 'dogs'"):
        await datasets.failed_ids(store, "dogs", "j1")


async def test_a_job_is_its_owners_and_the_admins_and_not_found_by_anyone_else():
    store = FakeStore()
    store.job_docs["j1"] = cast(Job, {"_id": "j1", "owner": "ann", "dataset": "cats"})
    assert (await datasets.owned_job(store, user("ann"), "j1"))["_id"] == "j1"
    assert (await datasets.owned_job(store, user("root", is_admin=True), "j1"))["_id"] == "j1"
    for who, job_id in (("bob", "j1"), ("ann", "j2")):
        with pytest.raises(NotFound, match=f"job '{job_id}' not found"):
            await datasets.owned_job(store, user(who), job_id)
