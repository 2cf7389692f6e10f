"""Authorising deployment events by their acting user, with the same rule as the HTTP API.

Anything on NATS could publish a DeploymentRequested: the deployer acts on it only if the user
it names could have asked for it over HTTP.
"""

from pymongo.asynchronous.database import AsyncDatabase

from modelhub_contracts import access
from modelhub_contracts.events import DeploymentRequested, DeploymentStopRequested


class EventAuthorizer:
    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db

    async def deploy_refusal(self, event: DeploymentRequested) -> str | None:
        """None when `requested_by` may run the model, else why not."""
        model = await access.load_model(self.db, event.model)
        user = await access.load_user(self.db, event.requested_by)
        if access.may(model, user, "run"):
            return None
        return f"user '{event.requested_by}' may not run model '{event.model}'"

    async def stop_refusal(self, event: DeploymentStopRequested) -> str | None:
        """None when `requested_by` created the deployment or may edit its model."""
        doc = await self.db["deployments"].find_one({"_id": event.deployment}, projection={"model": 1, "created_by": 1})
        user = await access.load_user(self.db, event.requested_by)
        if doc is None or user is None:
            return f"unknown deployment or user in stop of '{event.deployment}'"
        if doc["created_by"] == user["username"] or access.may(
            await access.load_model(self.db, doc["model"]), user, "edit"
        ):
            return None
        return f"user '{event.requested_by}' may not stop deployment '{event.deployment}'"
