"""MongoDB connection helper shared by services (pymongo's async API)."""

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from modelhub_runtime.settings import ServiceSettings


def connect(settings: ServiceSettings) -> tuple[AsyncMongoClient, AsyncDatabase]:
    """A client and the modelhub database; tz_aware so datetimes come back as UTC.

    Writes wait for the journal (j=true): with the default, mongod acknowledges a write it may still
    lose to a crash (kill -9), and a sample counted as annotated would have no field. A URL that
    sets its own write concern (w=majority on a replica set) keeps it.
    """
    client: AsyncMongoClient = AsyncMongoClient(
        settings.mongo_url, tz_aware=True, journal=True, serverSelectionTimeoutMS=10_000
    )
    return client, client[settings.mongo_db]
