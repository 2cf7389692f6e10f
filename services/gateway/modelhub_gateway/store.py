"""The gateway's MongoDB collections.

Writes here are the gateway's own documents (users, datasets, samples, jobs, the job ledger,
deployment specs). Models and versions are the registry's: the gateway only reads them and
sends the registry commands to change them. A deployment document is split like a Kubernetes
object: the gateway writes its spec, the deployer writes its status.
"""

from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from modelhub_gateway.recent import Recent


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
        self.ledger = db["job_samples"]

    async def ensure_indexes(self) -> None:
        await self.users.create_index("token_hash", unique=True)
        await self.samples.create_index([("dataset", ASCENDING), ("_id", ASCENDING)])
        await self.jobs.create_index([("dataset", ASCENDING), ("created_at", DESCENDING)])
        await self.ledger.create_index([("job_id", ASCENDING), ("ok", ASCENDING)])

    async def model(self, name: str) -> dict | None:
        return await self.models.find_one({"_id": name.lower()})

    # The hot path of online predict reads through `recent` (see recent.py for what that costs).
    async def user_by_token_hash(self, digest: str) -> dict | None:
        return await self.recent.get(("token", digest), lambda: self.users.find_one({"token_hash": digest}))

    async def recent_deployment(self, name: str) -> dict | None:
        return await self.recent.get(("deployment", name), lambda: self.deployments.find_one({"_id": name}))

    async def recent_model(self, name: str) -> dict | None:
        return await self.recent.get(("model", name.lower()), lambda: self.model(name))

    async def versions_of(self, name: str) -> list[dict]:
        cursor = self.versions.find({"model_id": name.lower()}, sort=[("version", ASCENDING)])
        return [doc async for doc in cursor]

    async def version(self, name: str, version: int | None) -> dict | None:
        query: dict[str, Any] = {"model_id": name.lower()}
        if version is not None:
            query["version"] = version
        return await self.versions.find_one(query, sort=[("version", DESCENDING)])
