"""MongoDB and object-store access for the registry: models, versions and package bytes."""

import contextlib
import hashlib
import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import cast

from nats.js.object_store import ObjectStore
from pymongo import InsertOne, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from modelhub_contracts.documents import ACTIVE_DEPLOYMENT_STATES, AliasChange, Model, Version

DUPLICATE_KEY = 11000


class NameTaken(Exception):
    """A model of that name (case-insensitively) exists already."""


class ModelStore:
    """`models`, `versions` and `alias_history` collections. A model's `_id` is its lower-cased name."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.models = db["models"]
        self.versions = db["versions"]
        self.deployments = db["deployments"]
        self.alias_history = db["alias_history"]

    async def ensure_indexes(self) -> None:
        await self.versions.create_index([("model_id", 1), ("version", 1)], unique=True)
        await self.alias_history.create_index([("model_id", 1), ("alias", 1), ("seq", 1)])

    async def insert_model(self, doc: Model) -> None:
        try:
            await self.models.insert_one(doc)
        except DuplicateKeyError as exc:
            raise NameTaken(doc["name"]) from exc

    async def get_model(self, name: str) -> Model | None:
        return cast(Model | None, await self.models.find_one({"_id": name.lower()}))

    async def update_model(self, name: str, changes: dict) -> Model | None:
        return cast(
            Model | None,
            await self.models.find_one_and_update(
                {"_id": name.lower()}, {"$set": changes}, return_document=ReturnDocument.AFTER
            ),
        )

    async def next_version(self, name: str) -> int | None:
        """Reserve the next version number atomically, so concurrent uploads never share one."""
        doc = await self.models.find_one_and_update(
            {"_id": name.lower()}, {"$inc": {"version_count": 1}}, return_document=ReturnDocument.AFTER
        )
        return doc["version_count"] if doc else None

    async def insert_version(self, doc: Version) -> None:
        await self.versions.insert_one(doc)

    async def has_active_deployment(self, name: str) -> bool:
        return (
            await self.deployments.find_one(
                {
                    "model": {"$regex": f"^{re.escape(name)}$", "$options": "i"},
                    "status": {"$in": list(ACTIVE_DEPLOYMENT_STATES)},
                }
            )
            is not None
        )

    async def deployments_using(self, name: str, version: int) -> list[str]:
        """The active deployments of this model version, by name."""
        cursor = self.deployments.find(
            {
                "model": {"$regex": f"^{re.escape(name)}$", "$options": "i"},
                "version": version,
                "status": {"$in": list(ACTIVE_DEPLOYMENT_STATES)},
            },
            projection={"name": 1},
        )
        return sorted([d.get("name") or d["_id"] async for d in cursor])

    async def delete_version(self, name: str, version: int) -> str | None:
        """Remove one version; returns its package object (None if there was no such version)."""
        doc = await self.versions.find_one_and_delete({"model_id": name.lower(), "version": version})
        return doc["package_object"] if doc else None

    async def delete_model(self, name: str) -> list[str]:
        """Remove the model and its versions; returns the package objects to delete."""
        objects = [v["package_object"] async for v in self.versions.find({"model_id": name.lower()})]
        await self.versions.delete_many({"model_id": name.lower()})
        # ended deployments of it would otherwise show up under a new model of the same name
        await self.deployments.delete_many(
            {
                "model": {"$regex": f"^{re.escape(name)}$", "$options": "i"},
                "status": {"$nin": list(ACTIVE_DEPLOYMENT_STATES)},
            }
        )
        await self.models.delete_one({"_id": name.lower()})
        await self.alias_history.delete_many({"model_id": name.lower()})  # a new model of the name starts afresh
        return objects

    # --- aliases (aliases.py) ---

    async def version_settled(self, name: str, version: int) -> bool:
        """The version exists and no delete of it is under way."""
        query = {"model_id": name.lower(), "version": version, "deleting": {"$ne": True}}
        return await self.versions.find_one(query, projection={"_id": 1}) is not None

    async def mark_deleting(self, name: str, version: int, deleting: bool) -> bool:
        """Flag (or unflag) a version a delete is checking; False when there is no such version."""
        found = await self.versions.update_one(
            {"model_id": name.lower(), "version": version}, {"$set": {"deleting": deleting}}
        )
        return found.matched_count == 1

    async def change_alias(
        self, name: str, alias: str, version: int | None, user: str, at: datetime
    ) -> tuple[Model, AliasChange] | None:
        """Point `alias` at `version` (None: remove it) and queue the change for the history, in one
        update of the model document (so a crash cannot apply one without the other; `flush_aliases`
        moves it to `alias_history`). Returns the model as it was before, and the change; None when
        there is no such model (or, for a removal, no such alias)."""
        query: dict = {"_id": name.lower()}
        if version is None:
            query[f"aliases.{alias}"] = {"$exists": True}
        path = f"aliases.{alias}"  # the alias pattern keeps '.' and '$' out of it
        entry = {"seq": "$alias_seq", **{k: {"$literal": v} for k, v in (("alias", alias), ("version", version))}}
        entry |= {"set_by": {"$literal": user}, "set_at": at}
        before = await self.models.find_one_and_update(
            query,
            [
                {"$set": {"alias_seq": {"$add": [{"$ifNull": ["$alias_seq", 0]}, 1]}}},
                {"$set": {path: {"$literal": version}}} if version is not None else {"$unset": path},
                {"$set": {"alias_outbox": {"$concatArrays": [{"$ifNull": ["$alias_outbox", []]}, [entry]]}}},
            ],
            return_document=ReturnDocument.BEFORE,
        )
        if before is None:
            return None
        model_id = name.lower()
        seq = before.get("alias_seq", 0) + 1
        change = AliasChange(
            _id=f"{model_id}/{seq}", model_id=model_id, alias=alias, version=version, set_by=user, set_at=at, seq=seq
        )
        return cast(Model, before), change

    async def flush_aliases(self, name: str) -> None:
        """Move the model's queued alias changes into `alias_history` (each once: its id is the
        model and its sequence number), then off the model."""
        model = await self.models.find_one({"_id": name.lower()}, projection={"alias_outbox": 1})
        queued = (model or {}).get("alias_outbox") or []
        if not queued:
            return
        model_id = name.lower()
        docs = [{"_id": f"{model_id}/{c['seq']}", "model_id": model_id, **c} for c in queued]
        try:
            await self.alias_history.bulk_write([InsertOne(d) for d in docs], ordered=False)
        except BulkWriteError as exc:  # written already by a flush that was cut before its $pull
            if any(e["code"] != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise
        await self.models.update_one(
            {"_id": model_id}, {"$pull": {"alias_outbox": {"seq": {"$in": [c["seq"] for c in queued]}}}}
        )

    async def models_with_queued_aliases(self) -> list[str]:
        return [m["_id"] async for m in self.models.find({"alias_outbox.0": {"$exists": True}}, projection={"_id": 1})]


class PackageBlobs:
    """Package zips in the NATS object store, streamed through temp files (never whole in memory)."""

    def __init__(self, store: ObjectStore | None, tmp_dir: Path) -> None:
        self.store = store
        self.tmp_dir = tmp_dir
        tmp_dir.mkdir(parents=True, exist_ok=True)

    async def download(self, name: str, filename: str) -> tuple[Path, str, int]:
        """Copy an object to `filename` in a fresh temp folder (so messages name the user's file);
        returns (path, sha256, size). The caller removes path.parent."""
        safe = Path(filename).name
        path = Path(tempfile.mkdtemp(dir=self.tmp_dir)) / (safe if safe not in ("", ".", "..") else "package.zip")
        bucket = self._bucket()
        with path.open("wb") as handle:
            await bucket.get(name, writeinto=handle)
        return path, *file_digest(path)

    async def delete(self, name: str) -> None:
        bucket = self._bucket()
        with contextlib.suppress(Exception):  # already gone: deleting is idempotent
            await bucket.delete(name)

    def _bucket(self) -> ObjectStore:
        if self.store is None:
            raise RuntimeError("the package bucket is attached when the broker starts (build_app's startup)")
        return self.store


def file_digest(path: Path) -> tuple[str, int]:
    """(sha256 hex, size) of a file, read in chunks."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest(), path.stat().st_size
