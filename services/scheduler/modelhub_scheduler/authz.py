"""Authorising JobSubmitted by its acting user, with the same rule as the HTTP API: the user must
own the dataset (or be the admin) and may run the deployment's model."""

import asyncio

from pymongo.asynchronous.database import AsyncDatabase

from modelhub_contracts import access
from modelhub_contracts.events import JobSubmitted


async def job_refusal(db: AsyncDatabase, job: JobSubmitted) -> str | None:
    """None when `submitted_by` could have submitted this job over HTTP, else why not."""
    # read at once: each is a round trip on a job's way to its first task
    user, dataset, deployment = await asyncio.gather(
        access.load_user(db, job.submitted_by),
        db["datasets"].find_one({"_id": job.dataset}, projection={"owner": 1}),
        db["deployments"].find_one({"_id": job.deployment}, projection={"model": 1}),
    )
    if dataset is None or not access.owns(dataset, user):
        return f"user '{job.submitted_by}' may not annotate dataset '{job.dataset}'"
    model = await access.load_model(db, deployment["model"]) if deployment else None
    if not access.may(model, user, "run"):
        return f"user '{job.submitted_by}' may not run deployment '{job.deployment}'"
    return None
