"""Dataset use cases: create, see, list datasets and add samples, see the jobs run over them,
over a small store port.

A dataset (its samples, and the jobs run over it) belongs to its owner; the admin may use every one. Anyone else is
told it is not found, so names do not leak. Removals are in lifecycle.py, filters and exports in
samples.py. These functions raise domain errors and know nothing of HTTP;
`tests/unit/test_gateway_datasets.py` runs them on an in-memory store.
"""

from typing import Protocol

from bson import ObjectId

from modelhub_contracts.access import owns
from modelhub_contracts.documents import Dataset, Job, Sample, User
from modelhub_contracts.errors import Conflict, DomainError, NotFound
from modelhub_contracts.events import utcnow
from modelhub_gateway.schemas import DatasetCreate, SampleIn


class SampleTooLarge(DomainError):
    """A sample over MongoDB's document limit (413: a kind of its own, only adding samples meets it)."""

    status = 413


class DatasetStore(Protocol):
    """What these use cases read and write (`GatewayStore` in the app)."""

    async def dataset(self, name: str) -> Dataset | None: ...
    async def job(self, job_id: str) -> Job | None: ...
    async def datasets_of(self, owner: str | None) -> list[Dataset]: ...
    async def insert_dataset(self, doc: Dataset) -> bool: ...
    async def add_samples(self, dataset: str, samples: list[Sample]) -> bool: ...
    async def has_job(self, dataset: str, job_id: str) -> bool: ...
    async def failed_sample_ids(self, job_id: str) -> list[str]: ...


async def owned_dataset(store: DatasetStore, user: User, name: str) -> Dataset:
    """The dataset if the caller owns it (or is the admin); NotFound otherwise."""
    doc = await store.dataset(name)
    if doc is None or not owns(doc, user):
        raise NotFound(f"dataset '{name}' not found")
    return doc


async def owned_job(store: DatasetStore, user: User, job_id: str) -> Job:
    """The job if the caller owns it (or is the admin); NotFound otherwise."""
    doc = await store.job(job_id)
    if doc is None or not owns(doc, user):
        raise NotFound(f"job '{job_id}' not found")
    return doc


async def create_dataset(store: DatasetStore, user: User, body: DatasetCreate) -> Dataset:
    """An empty dataset owned by the caller; Conflict when the name is taken."""
    doc = Dataset(
        _id=body.name,
        name=body.name,
        description=body.description,
        owner=user["username"],
        num_samples=0,
        created_at=utcnow(),
    )
    if not await store.insert_dataset(doc):
        raise Conflict(f"a dataset named '{body.name}' already exists")
    return doc


async def list_datasets(store: DatasetStore, user: User) -> list[Dataset]:
    """The caller's datasets (every one for the admin)."""
    return await store.datasets_of(None if user.get("is_admin") else user["username"])


async def add_samples(store: DatasetStore, dataset: Dataset, samples: list[SampleIn]) -> int:
    """Add the samples to a dataset the caller owns, each with a fresh insertion-ordered id; all
    or none (SampleTooLarge when one is over MongoDB's 16 MiB document limit)."""
    docs = [Sample(_id=str(ObjectId()), dataset=dataset["_id"], filepath=s.filepath, fields=s.fields) for s in samples]
    if not await store.add_samples(dataset["_id"], docs):
        raise SampleTooLarge("a sample is over MongoDB's 16 MiB document limit; nothing was added")
    return len(docs)


async def failed_ids(store: DatasetStore, dataset: str, job_id: str) -> tuple[str, ...]:
    """The samples a job of this dataset failed (the `failed_job` filter); NotFound for a job of
    another dataset."""
    if not await store.has_job(dataset, job_id):
        raise NotFound(f"job '{job_id}' not found on dataset '{dataset}'")
    return tuple(await store.failed_sample_ids(job_id))
