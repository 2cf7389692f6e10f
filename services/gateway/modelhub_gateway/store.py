"""The gateway's MongoDB collections.

Writes here are the gateway's own documents (users, datasets, samples, jobs, the job ledger,
deployment specs). Models and versions are the registry's: the gateway only reads them and
sends the registry commands to change them. A deployment document is split like a Kubernetes
object: the gateway writes its spec, the deployer writes its status.
"""

import asyncio
import logging
from typing import Any, cast

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DocumentTooLarge, DuplicateKeyError

from modelhub_contracts import queue
from modelhub_contracts.documents import (
    REUSABLE,
    Dataset,
    Deployment,
    DeploymentStatus,
    Job,
    Model,
    Sample,
    User,
    Version,
)
from modelhub_contracts.events import utcnow
from modelhub_gateway.recent import Recent

log = logging.getLogger(__name__)
# One index per output field that jobs write (incremental.py's ranges), named after the field. The
# samples of every dataset share one collection, and MongoDB keeps at most 64 indexes on one: past
# this many fields, incremental runs over the others read their dataset's samples instead.
WRITER_INDEX_PREFIX = "writer:"
WRITER_INDEX_LIMIT = 48


class GatewayStore:
    def __init__(self, db: AsyncDatabase, recent: Recent | None = None) -> None:
        self.db = db
        self.recent = recent or Recent(ttl_s=0)
        self.users = db["users"]
        self.models = db["models"]
        self.versions = db["versions"]
        self.deployments = db["deployments"]
        self.datasets = db["datasets"]
        self.samples = db["samples"]
        self.jobs = db["jobs"]
        self.ledger = db["job_chunks"]  # progress/ledger.py: a record per job, task and chunk
        self.sample_rows = db["job_samples"]  # an older hub's ledger, adopted at start (ledger.adopt_sample_rows)
        self.alias_changes = db["alias_history"]
        self._indexed_writers: set[str] = set()  # fields whose index this process built or found
        self._index_builds: set[asyncio.Task] = set()
        self.evaluations = db["evaluations"]  # evaluation/evaluations.py

    async def ensure_indexes(self) -> None:
        await self.users.create_index("token_hash", unique=True)
        await self.samples.create_index([("dataset", ASCENDING), ("_id", ASCENDING)])
        await self.jobs.create_index([("dataset", ASCENDING), ("created_at", DESCENDING)])
        await self.ledger.create_index("job_id")
        await self.evaluations.create_index([("dataset", ASCENDING), ("name", ASCENDING)], unique=True)

    async def model(self, name: str) -> Model | None:
        return cast(Model | None, await self.models.find_one({"_id": name.lower()}))

    # The hot path of online predict reads through `recent` (see recent.py for what that costs).
    async def user_by_token_hash(self, digest: str) -> User | None:
        return await self.recent.get(("token", digest), lambda: self.users.find_one({"token_hash": digest}))

    async def recent_deployment(self, name: str) -> Deployment | None:
        return await self.recent.get(("deployment", name), lambda: self.deployments.find_one({"_id": name}))

    async def recent_model(self, name: str) -> Model | None:
        return await self.recent.get(("model", name.lower()), lambda: self.model(name))

    async def versions_of(self, name: str) -> list[Version]:
        cursor = self.versions.find({"model_id": name.lower()}, sort=[("version", ASCENDING)])
        return [cast(Version, doc) async for doc in cursor]

    async def version(self, name: str, version: int | None) -> Version | None:
        query: dict[str, object] = {"model_id": name.lower()}
        if version is not None:
            query["version"] = version
        return cast(Version | None, await self.versions.find_one(query, sort=[("version", DESCENDING)]))

    # --- deployments (deployments.py's DeploymentStore) ---

    async def deployment(self, name: str) -> Deployment | None:
        return cast(Deployment | None, await self.deployments.find_one({"_id": name}))

    async def deployments_newest_first(self) -> list[Deployment]:
        return cast(list[Deployment], await self.deployments.find(sort=[("created_at", -1)]).to_list())

    async def put_deployment(self, doc: Deployment) -> bool:
        """Store a new deployment under its name, replacing a stopped or failed one of that name;
        False when a live one holds the name."""
        result = await self.deployments.replace_one({"_id": doc["_id"], "status": {"$in": list(REUSABLE)}}, doc)
        if result.matched_count:
            return True
        try:
            await self.deployments.insert_one(doc)
        except DuplicateKeyError:  # a live one, or another request took the name a moment ago
            return False
        return True

    async def mark_stopping(self, name: str) -> Deployment | None:
        return cast(
            Deployment | None,
            await self.deployments.find_one_and_update(
                {"_id": name},
                {"$set": {"status": DeploymentStatus.STOPPING, "updated_at": utcnow()}},
                return_document=ReturnDocument.AFTER,
            ),
        )

    async def deployment_queue(self, name: str) -> dict[str, int]:
        """The deployment's tasks waiting and in flight (every job's)."""
        return await queue.counts(self.db, {"deployment": name})

    # --- datasets (datasets.py's DatasetStore) ---

    async def dataset(self, name: str) -> Dataset | None:
        return cast(Dataset | None, await self.datasets.find_one({"_id": name}))

    async def datasets_of(self, owner: str | None) -> list[Dataset]:
        """The datasets of `owner`, or every one (None)."""
        return cast(list[Dataset], await self.datasets.find({} if owner is None else {"owner": owner}).to_list())

    async def insert_dataset(self, doc: Dataset) -> bool:
        """False when the name is taken."""
        try:
            await self.datasets.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def add_samples(self, dataset: str, samples: list[Sample]) -> bool:
        """False when a sample is over MongoDB's document limit."""
        try:
            await self.samples.insert_many(samples, ordered=True)
        except DocumentTooLarge:
            return False
        await self.datasets.update_one({"_id": dataset}, {"$inc": {"num_samples": len(samples)}})
        return True

    async def job(self, job_id: str) -> Job | None:
        return cast(Job | None, await self.jobs.find_one({"_id": job_id}))

    async def has_job(self, dataset: str, job_id: str) -> bool:
        return await self.jobs.find_one({"_id": job_id, "dataset": dataset}, {"_id": 1}) is not None

    async def sample_page(self, query: dict[str, Any], offset: int, limit: int) -> list[Sample]:
        """Samples matching `query` in insertion order, a page of them."""
        return cast(list[Sample], await self.samples.find(query, sort=[("_id", 1)], skip=offset, limit=limit).to_list())

    async def count_samples(self, query: dict[str, Any]) -> int:
        return await self.samples.count_documents(query)

    async def sample_filepath(self, dataset: str, sample_id: str) -> str | None:
        """The file of one of the dataset's samples (only that: a sample may hold megabytes of fields)."""
        doc = await self.samples.find_one({"_id": sample_id, "dataset": dataset}, {"filepath": 1})
        return None if doc is None else doc["filepath"]

    # --- jobs (the gateway writes them; jobs.py holds their logic) ---

    async def samples_now(self, dataset: str) -> tuple[str | None, int]:
        """The dataset's last sample id and how many samples there are up to it: what a job
        submitted now covers (later additions are not counted in, nor run)."""
        last = await self.samples.find_one({"dataset": dataset}, projection={"_id": 1}, sort=[("_id", -1)])
        if last is None:
            return None, 0
        return last["_id"], await self.samples.count_documents({"dataset": dataset, "_id": {"$lte": last["_id"]}})

    async def insert_job(self, job: Job) -> None:
        await self.jobs.insert_one(job)

    async def jobs_of(self, dataset: str) -> list[Job]:
        """The dataset's jobs, newest first."""
        return cast(list[Job], await self.jobs.find({"dataset": dataset}, sort=[("created_at", -1)]).to_list())

    async def failures(self, job_id: str) -> list[dict[str, Any]]:
        """The job's failed samples ({sample_id, error}), by sample id: the failures its ledger
        records hold (progress/ledger.py)."""
        pipeline = [
            {"$match": {"job_id": job_id, "failed": {"$gt": 0}}},
            {"$unwind": "$failures"},
            {"$replaceWith": "$failures"},
            {"$sort": {"sample_id": 1}},
        ]
        return await (await self.ledger.aggregate(pipeline, allowDiskUse=True)).to_list()

    async def failed_sample_ids(self, job_id: str) -> list[str]:
        """The job's failed samples, by sample id."""
        return [d["sample_id"] for d in await self.failures(job_id)]

    # --- incremental runs (incremental.py's SelectionStore) ---

    async def sample_ids(self, query: dict[str, Any]) -> list[str]:
        return [doc["_id"] async for doc in self.samples.find(query, projection={"_id": 1}, batch_size=10_000)]

    async def writer_indexes(self) -> set[str]:
        """The output fields whose writer index exists."""
        names = [ix["name"] async for ix in await self.samples.list_indexes()]
        return {n.removeprefix(WRITER_INDEX_PREFIX) for n in names if n.startswith(WRITER_INDEX_PREFIX)}

    def index_writers(self, fields: list[str]) -> None:
        """Build, in the background, the writer index of each field not indexed yet: the job being
        submitted writes them, so a later incremental run over them is an index query. Building
        reads the whole collection (about 2 s per million samples on a 2-core machine), which a
        submit must not wait for; until it is there, incremental runs read their samples instead."""
        for field in fields:
            if field not in self._indexed_writers:
                self._indexed_writers.add(field)
                task = asyncio.create_task(self._build_writer_index(field))
                self._index_builds.add(task)
                task.add_done_callback(self._index_builds.discard)

    async def _build_writer_index(self, field: str) -> None:
        try:
            present = await self.writer_indexes()
            if field in present:
                return
            if len(present) >= WRITER_INDEX_LIMIT:
                log.warning("no writer index for field %r: %d fields have one already", field, len(present))
                return
            keys = [("dataset", ASCENDING), (f"lineage.{field}.model", ASCENDING)]
            keys += [(f"lineage.{field}.version", ASCENDING), ("_id", ASCENDING)]
            await self.samples.create_index(keys, name=WRITER_INDEX_PREFIX + field)
        except Exception:
            self._indexed_writers.discard(field)  # the next submit tries again
            log.exception("building the writer index of field %r failed", field)

    # --- models (models.py's ModelStore; the registry writes them) ---

    async def all_models(self) -> list[Model]:
        return cast(list[Model], await self.models.find(sort=[("_id", 1)]).to_list())

    async def alias_history(self, model_id: str, alias: str) -> list[dict[str, Any]]:
        """An alias's changes (aliases.py), in the registry's order."""
        return await self.alias_changes.find({"model_id": model_id, "alias": alias}, sort=[("seq", 1)]).to_list()

    async def username_as_spelled(self, username: str) -> str | None:
        found = await self.users.find_one({"_id": username.lower()}, projection={"username": 1})
        return None if found is None else found["username"]
