"""Job use cases on an in-memory store: what submit, retry and cancel check before anything is
stored or sent, and what goes out when they pass."""

from typing import cast

import pytest
from test_gateway_deployments import NOW, FakeStore, Sent, model, user, version

from modelhub_contracts import subjects
from modelhub_contracts.documents import Dataset, DeploymentStatus, Job, JobStatus
from modelhub_contracts.errors import Conflict, Invalid, NotFound
from modelhub_contracts.events import JobSubmitted
from modelhub_gateway import deployments, jobs
from modelhub_gateway.schemas import DeploymentCreate, JobCreate
from modelhub_gateway.store import GatewayStore

SCHEMA = {
    "inputs": {"type": "object", "properties": {"image": {"type": "local"}}},
    "outputs": {"type": "object", "properties": {"label": {"type": "classification"}}},
}


class JobStore(FakeStore):
    """FakeStore plus what the job use cases read and write before the fold."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.jobs: list[Job] = []
        self.samples = 3

    async def samples_now(self, dataset: str) -> tuple[str | None, int]:
        return ("s3" if self.samples else None), self.samples

    async def insert_job(self, job: Job) -> None:
        self.jobs.append(job)

    def index_writers(self, fields: list[str]) -> None:
        self.indexing = fields


@pytest.fixture
async def store() -> JobStore:
    digits = version("digits", 1)
    digits["schema"] = SCHEMA
    store = JobStore(model("Digits", "ann", bob="run"), model("secret", "ann"), versions=(digits,))
    await deployments.create_deployment(store, Sent(), user("ann"), "digits", DeploymentCreate(name="d"))
    return store


def running(store: JobStore) -> None:
    store.deployments["d"]["status"] = DeploymentStatus.RUNNING


DATASET = cast(Dataset, {"_id": "photos", "owner": "bob", "created_at": NOW})


def submit(store: JobStore, sent: Sent, body: JobCreate, who: str = "bob"):
    return jobs.submit_job(cast(GatewayStore, store), sent, user(who), DATASET, body)


async def test_a_job_on_a_running_deployment_is_stored_queued_and_handed_to_the_scheduler(store):
    running(store)
    sent = Sent()
    job = await submit(store, sent, JobCreate(deployment="d", outputs={"label": "pred"}))
    assert store.jobs == [job]
    assert (job["status"], job["total"], job["owner"], job["inputs"]) == (
        JobStatus.QUEUED,
        3,
        "bob",
        {"image": "filepath"},
    )
    ((subject, event),) = sent
    assert subject == subjects.JOB_SUBMITTED and isinstance(event, JobSubmitted)
    assert (event.job_id, event.output_types, event.attempt) == (job["_id"], {"label": "classification"}, 1)


async def test_a_job_over_an_empty_dataset_completes_at_once_and_sends_nothing(store):
    running(store)
    store.samples = 0
    sent = Sent()
    job = await submit(store, sent, JobCreate(deployment="d", outputs={"label": "pred"}))
    assert (job["status"], job["progress"], sent) == (JobStatus.COMPLETED, 1.0, [])


@pytest.mark.parametrize(
    "body, refusal, message",
    [
        (JobCreate(deployment="d", outputs={"label": "pred"}), Invalid, "deployment 'd' is pending, not running"),
        (JobCreate(deployment="gone", outputs={"label": "pred"}), NotFound, "deployment 'gone' not found"),
    ],
)
async def test_a_deployment_that_cannot_run_the_job_refuses_it_and_nothing_is_stored_or_sent(
    store, body, refusal, message
):
    sent = Sent()
    with pytest.raises(refusal, match=message):
        await submit(store, sent, body)
    assert (store.jobs, sent) == ([], [])


@pytest.mark.parametrize(
    "outputs, message",
    [
        ({"score": "s"}, "outputs not in the model schema: score"),
        ({"label": "$bad"}, "output field '\\$bad'"),
    ],
)
async def test_a_wrong_output_mapping_is_invalid_before_anything_is_stored_or_sent(store, outputs, message):
    running(store)
    sent = Sent()
    with pytest.raises(Invalid, match=message):
        await submit(store, sent, JobCreate(deployment="d", outputs=outputs))
    assert (store.jobs, sent) == ([], [])


async def test_a_stranger_cannot_run_a_job_on_a_deployment_of_a_model_it_cannot_see(store):
    running(store)
    with pytest.raises(NotFound):
        await submit(store, Sent(), JobCreate(deployment="d", outputs={"label": "pred"}), who="mallory")
    assert store.jobs == []


async def test_a_completed_job_cannot_be_cancelled_and_nothing_is_announced(store):
    running(store)
    job = await submit(store, Sent(), JobCreate(deployment="d", outputs={"label": "pred"}))
    job["status"] = JobStatus.COMPLETED
    sent = Sent()
    with pytest.raises(Conflict, match="already completed"):
        await jobs.cancel_job(cast(GatewayStore, store), sent, user("bob"), job)
    assert sent == []


async def test_a_job_still_running_cannot_be_retried_and_nothing_is_sent(store):
    running(store)
    job = await submit(store, Sent(), JobCreate(deployment="d", outputs={"label": "pred"}))
    job["status"] = JobStatus.RUNNING
    sent = Sent()
    with pytest.raises(Conflict, match="retry it once it has ended"):
        await jobs.retry_job(cast(GatewayStore, store), sent, user("bob"), job)
    assert sent == []
