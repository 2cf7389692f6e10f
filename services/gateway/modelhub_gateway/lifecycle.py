"""Removing what users made: datasets, fields a run wrote, samples, and people.

Each removal is refused while a job that could be hurt by it still runs (409, naming the job), and
deletes in an order that a crash can resume: the record users address (the dataset, the user) is
changed last, so repeating the call finishes the work; a second call on something gone answers 404.
"""

from modelhub_contracts.documents import TERMINAL
from modelhub_contracts.errors import Conflict, NotFound
from modelhub_contracts.events import utcnow
from modelhub_gateway import auth
from modelhub_gateway.store import GatewayStore

ADMIN = "admin"


async def running_job(store: GatewayStore, dataset: str, field: str | None = None) -> dict | None:
    """A job of `dataset` that has not ended (one that writes `field`, when given)."""
    query: dict = {"dataset": dataset, "status": {"$nin": list(TERMINAL)}}
    async for job in store.jobs.find(query, projection={"status": 1, "outputs": 1}):
        if field is None or field in (job.get("outputs") or {}).values():
            return job
    return None


def _busy(job: dict, what: str) -> Conflict:
    return Conflict(
        f"job {job['_id']} is {job['status']} on this dataset and {what}; cancel it or wait for it to end first"
    )


async def delete_dataset(store: GatewayStore, name: str) -> None:
    """The dataset, its samples, its jobs and their ledgers, its evaluations; the name is free again at once."""
    if job := await running_job(store, name):
        raise _busy(job, "would lose its samples")
    job_ids = [j["_id"] async for j in store.jobs.find({"dataset": name}, projection={"_id": 1})]
    await store.ledger.delete_many({"job_id": {"$in": job_ids}})
    await store.sample_rows.delete_many({"job_id": {"$in": job_ids}})  # an older hub's, not yet adopted
    await store.samples.delete_many({"dataset": name})
    await store.jobs.delete_many({"dataset": name})
    await store.evaluations.delete_many({"dataset": name})
    await store.datasets.delete_one({"_id": name})


async def remove_field(store: GatewayStore, dataset: str, field: str) -> int:
    """Take `field` (and its lineage) off every sample of the dataset: the undo of a run."""
    if job := await running_job(store, dataset, field):
        raise _busy(job, f"writes the field '{field}'")
    result = await store.samples.update_many(
        {"dataset": dataset, f"fields.{field}": {"$exists": True}},
        {"$unset": {f"fields.{field}": "", f"lineage.{field}": ""}},
    )
    return result.modified_count


async def delete_samples(store: GatewayStore, dataset: str, ids: list[str]) -> int:
    """Delete the dataset's samples with these ids (ids of other datasets are ignored)."""
    if job := await running_job(store, dataset):
        raise _busy(job, "runs over its samples")
    result = await store.samples.delete_many({"dataset": dataset, "_id": {"$in": ids}})
    if result.deleted_count:
        await store.datasets.update_one({"_id": dataset}, {"$inc": {"num_samples": -result.deleted_count}})
    return result.deleted_count


async def list_users(store: GatewayStore) -> list[dict]:
    return [
        {
            "username": u["username"],
            "is_admin": bool(u.get("is_admin")),
            "created_at": u.get("created_at"),
            "disabled": bool(u.get("disabled")),
        }
        async for u in store.users.find({}, sort=[("_id", 1)])
    ]


async def disable_user(store: GatewayStore, username: str) -> None:
    """Off-board a person: their tokens answer 401 from the next request on; the name stays taken
    (no one else can become them), and what they own stays for the admin to keep or delete."""
    user = await store.users.find_one({"_id": username.lower()})
    if user is None or user.get("disabled"):
        raise NotFound(f"user '{username}' not found")
    if user.get("is_admin"):
        raise Conflict("the admin cannot be disabled")
    # a fresh random hash: no token in anyone's hands matches it any more
    await store.users.update_one(
        {"_id": user["_id"]},
        {"$set": {"disabled": True, "disabled_at": utcnow(), "token_hash": auth.hash_token(auth.new_token())}},
    )
