"""`modelhub up --gateways 2`: two gateway processes behind one port fold one job's progress
(counts exact), one of them is killed (SIGKILL) mid-job, the job completes with every sample and
the other serves it, SSE included. A stack of its own (module scope). Plus the race that several
folding gateways bring, against the real MongoDB: a recount taken before another gateway's newer
one must not overwrite it."""

import asyncio
import json
import os
import signal
import subprocess

import httpx
import pytest
from conftest import (
    MODELHUB,
    SCHEMA_TEXT_TO_CLASS,
    Stack,
    _stack_env,
    add_text_samples,
    all_samples,
    create_model,
    deploy,
    get_json,
    insert_job,
    make_zip,
    slow_model,
    start_stack,
    stop_stack,
    unique,
    wait_for,
)
from pymongo import AsyncMongoClient, MongoClient

from modelhub_contracts.events import SampleAnnotated, SampleOutcome
from modelhub_gateway.progress import fold
from modelhub_gateway.store import GatewayStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
TOTAL = 400


@pytest.fixture(scope="module")
def two_gateways(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("gateways-stack")
    try:
        yield start_stack(data_dir, "--gateways", "2")
    finally:
        stop_stack(data_dir)


def job_doc(stack: Stack, job_id: str) -> dict | None:
    with MongoClient(stack.mongo_url) as client:
        return client["modelhub"]["jobs"].find_one({"_id": job_id})


def sse_until_ended(stack: Stack, job_id: str) -> list[dict]:
    """Follow GET /jobs/{id}/events until the job ends; the job objects it sent."""
    seen = []
    with (
        httpx.Client(
            base_url=stack.url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=httpx.Timeout(10, read=120)
        ) as client,
        client.stream("GET", f"/jobs/{job_id}/events") as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[len("data: ") :]))
    return seen


def test_status_shows_both_gateways_on_one_port(two_gateways):
    status = two_gateways.status()
    assert status["gateways"] == ["gateway", "gateway-2"]
    pids = {status["services"][n]["pid"] for n in status["gateways"]}
    assert len(pids) == 2 and all(status["services"][n]["state"] == "running" for n in status["gateways"])
    text = subprocess.run(
        [*MODELHUB, "status", "--data-dir", str(two_gateways.data_dir)],
        env=_stack_env(),
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert text.count(f"http://127.0.0.1:{two_gateways.port}") == 2, text


def test_two_gateways_fold_one_job_and_one_killed_mid_job_loses_nothing(two_gateways, tmp_path):
    stack = two_gateways
    client, model, name = stack.client, unique("slow"), unique("slow-dep")
    create_model(client, model, make_zip(tmp_path / "slow.zip", {"model.py": slow_model(0.05)}), SCHEMA_TEXT_TO_CLASS)
    # mini_batch 1: many small tasks, so many outcome events for the two gateways to share
    assert deploy(client, model, name, mini_batch=1, num_replicas=2)["status"] == "running"
    dataset = unique("ds")
    add_text_samples(client, dataset, [f"s{i}" for i in range(TOTAL)])
    job_id = client.post(f"/datasets/{dataset}/jobs", json={"deployment": name, "outputs": {"label": "label"}}).json()[
        "id"
    ]

    # both gateways have folded some of this job's outcomes, and it is far from done
    doc = wait_for(
        lambda: (d := job_doc(stack, job_id)) and set(d.get("folded_by", [])) == {"gateway", "gateway-2"} and d,
        180,
        "both gateways to fold the job's progress",
        interval=0.1,
    )
    assert doc["status"] == "running" and doc["succeeded"] < TOTAL, doc
    victim = stack.status()["services"]["gateway-2"]["pid"]
    os.kill(victim, signal.SIGKILL)  # its unacked batches are redelivered to the other gateway

    # the port keeps answering (the survivor accepts while gateway-2 is dead or starting), SSE too.
    # New connections from here on: a kept-alive one to the killed gateway is gone with it (a
    # browser retries such a request on a new connection; httpx does not)
    client = httpx.Client(
        base_url=stack.url,
        headers={"Authorization": f"Bearer {stack.token}"},
        timeout=60,
        limits=httpx.Limits(max_keepalive_connections=0),
    )
    assert get_json(client, f"/jobs/{job_id}") is not None
    events = sse_until_ended(stack, job_id)
    final = events[-1]
    assert (final["status"], final["total"], final["succeeded"], final["failed"]) == ("completed", TOTAL, TOTAL, 0), (
        final
    )
    counts = [e["succeeded"] for e in events]
    assert counts == sorted(counts), "progress never goes back"
    job = get_json(client, f"/jobs/{job_id}")
    assert (job["status"], job["succeeded"], job["failed"]) == ("completed", TOTAL, 0), job
    samples = all_samples(client, dataset)
    assert len(samples) == TOTAL and all(s["fields"]["label"]["label"] == s["fields"]["text"] for s in samples)
    # the killed gateway came back (a process of its own, restarted alone)
    assert wait_for(
        lambda: (s := stack.status()["services"]["gateway-2"])["state"] == "running" and s["pid"] != victim,
        60,
        "gateway-2 to be restarted",
    )


class HeldCounts:
    """A collection whose find_one_and_update (a fold adding its counts) waits for `go`, announcing
    `reached` first: a gateway paused between its ledger records and its counts, as a slow or
    descheduled process is."""

    def __init__(self, collection, reached: asyncio.Event, go: asyncio.Event) -> None:
        self._collection, self._reached, self._go = collection, reached, go

    def __getattr__(self, name):
        return getattr(self._collection, name)

    async def find_one_and_update(self, filter, update, *args, **kwargs):
        # the fold also marks each job with a find_one_and_update (a plain update, before its records);
        # only the counts are a pipeline update, and only they are held
        if isinstance(update, list):
            self._reached.set()
            await self._go.wait()
        return await self._collection.find_one_and_update(filter, update, *args, **kwargs)


def outcomes(job: str, ids: list[str]) -> list[SampleAnnotated]:
    return [
        SampleAnnotated(job_id=job, attempt=1, task_id=f"t{i}", samples=[SampleOutcome(sample_id=i, ok=True)])
        for i in ids
    ]


async def test_two_gateways_folding_one_job_at_once_count_each_sample_once(two_gateways):
    clients = [AsyncMongoClient(two_gateways.mongo_url, tz_aware=True) for _ in range(2)]
    slow, fast = (GatewayStore(c["modelhub"]) for c in clients)
    job = await insert_job(fast.jobs, total=4)
    reached, go = asyncio.Event(), asyncio.Event()
    # a test double around the collection: it holds the counts update until told to go
    slow.jobs = HeldCounts(slow.jobs, reached, go)  # pyright: ignore[reportAttributeAccessIssue]
    try:
        held = asyncio.create_task(fold.record_annotations(slow, outcomes(job, ["a", "b"]), "gateway-a"))
        await asyncio.wait_for(reached.wait(), 30)  # its records are in, its +2 not yet
        await fold.record_annotations(fast, outcomes(job, ["c", "d"]), "gateway-b")
        await fold.record_annotations(fast, outcomes(job, ["a", "b", "c"]), "gateway-b")  # redelivered: nothing
        doc = await fast.jobs.find_one({"_id": job})
        assert (doc["status"], doc["succeeded"], doc["failed"]) == ("running", 2, 0), doc
        go.set()
        await asyncio.wait_for(held, 30)
        doc = await fast.jobs.find_one({"_id": job})
        assert (doc["status"], doc["succeeded"], doc["failed"], doc["progress"]) == ("completed", 4, 0, 1.0), doc
        assert sorted(doc["folded_by"]) == ["gateway-a", "gateway-b"]
    finally:
        await fast.jobs.delete_one({"_id": job})
        await fast.ledger.delete_many({"job_id": job})
        for c in clients:
            await c.close()
