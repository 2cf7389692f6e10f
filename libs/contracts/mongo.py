"""MongoDB connection helper shared by services (pymongo's async API)."""

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from modelhub_contracts.settings import ServiceSettings


def connect(settings: ServiceSettings) -> tuple[AsyncMongoClient, AsyncDatabase]:
    """A client and the modelhub database; tz_aware so datetimes come back as UTC."""
    client: AsyncMongoClient = AsyncMongoClient(settings.mongo_url, tz_aware=True,
                                                serverSelectionTimeoutMS=10_000)
    return client, client[settings.mongo_db]
