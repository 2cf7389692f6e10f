"""MongoDB connection helper shared by services (pymongo's async API)."""

from typing import Any

from pymongo import AsyncMongoClient, ReadPreference
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure
from pymongo.uri_parser import parse_uri

from modelhub_runtime.settings import ServiceSettings

NO_REPLICATION_ENABLED = 76  # replSetGetStatus on a standalone mongod


def names_replica_set(url: str) -> bool:
    """A URL that names a replica set (`replicaSet=`) or several hosts: writes must reach a majority."""
    parsed = parse_uri(url, validate=False, warn=True)
    return any(k.lower() == "replicaset" for k in parsed["options"]) or len(parsed["nodelist"]) > 1


def client_options(url: str, majority: bool | None) -> dict[str, Any]:
    """The client's options. Writes wait for the journal (j=true): with the default, mongod
    acknowledges a write it may still lose to a crash (kill -9), and a sample counted as annotated
    would have no field. On a replica set (or MODELHUB_MONGO_MAJORITY) they also wait for a majority
    (w=majority): a write only the primary holds is rolled back when that primary is lost, and a
    ledger row counted once would vanish. Reads that decide (the ledger fold, a lease) read the
    primary; retryable writes and reads stay on (the driver's default, said here because the fold's
    exactness under a primary election rests on them: a retried write carries its transaction
    number and the server applies it once). A URL that sets its own write concern keeps it."""
    options: dict[str, Any] = {
        "tz_aware": True,
        "serverSelectionTimeoutMS": 10_000,
        "retryWrites": True,
        "retryReads": True,
        "read_preference": ReadPreference.PRIMARY,
    }
    own = {k.lower() for k in parse_uri(url, validate=False, warn=True)["options"]}
    if own & {"w", "journal"}:
        return options
    options["journal"] = True
    if majority if majority is not None else names_replica_set(url):
        options["w"] = "majority"
    return options


def connect(settings: ServiceSettings) -> tuple[AsyncMongoClient, AsyncDatabase]:
    """A client and the modelhub database; tz_aware so datetimes come back as UTC."""
    client: AsyncMongoClient = AsyncMongoClient(
        settings.mongo_url, **client_options(settings.mongo_url, settings.mongo_majority)
    )
    return client, client[settings.mongo_db]


async def missing_members(db: AsyncDatabase) -> list[str]:
    """The replica set's members that are down or unreachable ("host:port"), as the primary sees
    them: what /health names while a set runs on fewer members. Empty on a standalone mongod."""
    try:
        status = await db.client.admin.command("replSetGetStatus")
    except OperationFailure as exc:
        if exc.code == NO_REPLICATION_ENABLED:
            return []
        raise
    return sorted(m["name"] for m in status.get("members", []) if m.get("health") != 1)
