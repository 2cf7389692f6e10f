"""The `deployments` collection, as the deployer sees it.

The gateway inserts each document (`_id` = deployment name); the deployer only moves
`status` and sets `error`, `ready_replicas` and `updated_at`. Every move is a compare-and-set
on the current status, so a stop that lands while a deploy is finishing cannot be overwritten.
"""

from collections.abc import Iterable
from typing import Any, cast

from pymongo.asynchronous.database import AsyncDatabase

from modelhub_contracts.documents import Deployment, DeploymentStatus
from modelhub_contracts.events import utcnow

COLLECTION = "deployments"


class DeploymentStore:
    """Mongo-backed; `tests/unit/test_deployer.py` has an in-memory twin with the same methods."""

    def __init__(self, db: AsyncDatabase) -> None:
        self._col = db[COLLECTION]

    async def get(self, name: str) -> Deployment | None:
        return cast(Deployment | None, await self._col.find_one({"_id": name}))

    async def move(self, name: str, *, from_: Iterable[DeploymentStatus], to: DeploymentStatus, **fields: Any) -> bool:
        """Set status `to` (and `fields`) only if the status is one of `from_`; True if it moved."""
        result = await self._col.update_one(
            {"_id": name, "status": {"$in": list(from_)}},
            {"$set": {"status": to, "updated_at": utcnow(), **fields}},
        )
        return result.matched_count == 1

    async def note(self, name: str, *, status: DeploymentStatus, **fields: Any) -> bool:
        """Set `fields` (and `updated_at`) only while the status is still `status`; True if set."""
        result = await self._col.update_one(
            {"_id": name, "status": status}, {"$set": {"updated_at": utcnow(), **fields}}
        )
        return result.matched_count == 1

    async def with_status(self, statuses: Iterable[DeploymentStatus]) -> list[Deployment]:
        return cast(list[Deployment], await self._col.find({"status": {"$in": list(statuses)}}).to_list())
