"""MongoDB and object-store access for the registry: models, versions and package bytes."""

import hashlib
import re
import tempfile
from pathlib import Path

from nats.js.object_store import ObjectStore
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

ACTIVE_DEPLOYMENT_STATES = ("pending", "deploying", "running", "stopping")


class NameTaken(Exception):
    """A model of that name (case-insensitively) exists already."""


class ModelStore:
    """`models` and `versions` collections. A model's `_id` is its lower-cased name."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.models = db["models"]
        self.versions = db["versions"]
        self.deployments = db["deployments"]

    async def ensure_indexes(self) -> None:
        await self.versions.create_index([("model_id", 1), ("version", 1)], unique=True)

    async def insert_model(self, doc: dict) -> None:
        try:
            await self.models.insert_one(doc)
        except DuplicateKeyError as exc:
            raise NameTaken(doc["name"]) from exc

    async def get_model(self, name: str) -> dict | None:
        return await self.models.find_one({"_id": name.lower()})

    async def update_model(self, name: str, changes: dict) -> dict | None:
        return await self.models.find_one_and_update(
            {"_id": name.lower()}, {"$set": changes}, return_document=ReturnDocument.AFTER)

    async def next_version(self, name: str) -> int:
        """Reserve the next version number atomically, so concurrent uploads never share one."""
        doc = await self.models.find_one_and_update(
            {"_id": name.lower()}, {"$inc": {"version_count": 1}}, return_document=ReturnDocument.AFTER)
        return doc["version_count"]

    async def insert_version(self, doc: dict) -> None:
        await self.versions.insert_one(doc)

    async def has_active_deployment(self, name: str) -> bool:
        return await self.deployments.find_one(
            {"model": {"$regex": f"^{re.escape(name)}$", "$options": "i"},
             "status": {"$in": list(ACTIVE_DEPLOYMENT_STATES)}}) is not None

    async def delete_model(self, name: str) -> list[str]:
        """Remove the model and its versions; returns the package objects to delete."""
        objects = [v["package_object"] async for v in self.versions.find({"model_id": name.lower()})]
        await self.versions.delete_many({"model_id": name.lower()})
        await self.models.delete_one({"_id": name.lower()})
        return objects


class PackageBlobs:
    """Package zips in the NATS object store, streamed through temp files (never whole in memory)."""

    def __init__(self, store: ObjectStore, tmp_dir: Path) -> None:
        self.store = store
        self.tmp_dir = tmp_dir
        tmp_dir.mkdir(parents=True, exist_ok=True)

    async def download(self, name: str, filename: str) -> tuple[Path, str, int]:
        """Copy an object to `filename` in a fresh temp folder (so messages name the user's file);
        returns (path, sha256, size). The caller removes path.parent."""
        path = Path(tempfile.mkdtemp(dir=self.tmp_dir)) / (Path(filename).name or "package.zip")
        with path.open("wb") as handle:
            await self.store.get(name, writeinto=handle)
        return path, *_digest(path)

    async def delete(self, name: str) -> None:
        try:
            await self.store.delete(name)
        except Exception:  # already gone: deleting is idempotent
            pass


def _digest(path: Path) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size
