"""Ops see one trace per job and metrics that match it (issue 8, parts 1-3), on the real stack.

A job on a model that fails some samples: its spans are found in ONE trace across the gateway,
the scheduler, the inference worker and the replica, with the job id on the root span;
`modelhub jobs trace` prints that tree; the worker's /metrics counts exactly the job's successes
and failures for its deployment; every service answers its liveness and readiness probes."""

import json
import os
import re
import subprocess

import httpx
import pytest
from conftest import (
    MODELHUB,
    SCHEMA_TEXT_TO_CLASS,
    add_text_samples,
    create_model,
    deploy,
    make_zip,
    run_job,
    unique,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

PICKY_MODEL = """
class Model:
    def __init__(self, model_dir):
        pass

    def predict(self, batch):
        if any(t.startswith("bad") for t in batch["text"]):
            raise ValueError("bad input")
        return {"label": [{"label": t, "confidence": 0.5} for t in batch["text"]]}
"""
FOUR_SERVICES = {"modelhub-gateway", "modelhub-scheduler", "modelhub-inference-worker", "modelhub-replica"}


@pytest.fixture(scope="module")
def job(stack, tmp_path_factory):
    """A finished job of 12 samples, 3 of them failing, on a deployment of its own."""
    client = stack.client
    model, deployment, dataset = unique("picky"), unique("dep"), unique("ds")
    package = make_zip(tmp_path_factory.mktemp("picky") / "picky.zip", {"model.py": PICKY_MODEL})
    create_model(client, model, package, SCHEMA_TEXT_TO_CLASS)
    assert deploy(client, model, deployment, mini_batch=4)["status"] == "running"
    add_text_samples(client, dataset, [f"bad-{i}" if i % 4 == 1 else f"ok-{i}" for i in range(12)])
    done = run_job(client, dataset, deployment, {"label": "label"})
    assert (done["status"], done["succeeded"], done["failed"]) == ("completed", 9, 3), done
    yield done
    client.delete(f"/deployments/{deployment}")


def trace_cli(stack, job_id: str, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MODELHUB_DATA_DIR": str(stack.data_dir)}
    env.pop("MODELHUB_URL", None)
    env.pop("MODELHUB_TOKEN", None)
    return subprocess.run(
        [*MODELHUB, "jobs", "trace", job_id, *extra], env=env, capture_output=True, text=True, timeout=60
    )


def job_trace(stack, job_id: str) -> list[dict] | None:
    """The job's spans once every part of the chain has exported its own (they flush every few s)
    and the tree is closed: each process exports its spans in batches as they end, so a handler's
    span can come a batch after the database calls made inside it; until then those look like
    roots. A parent that never comes fails the wait."""
    out = trace_cli(stack, job_id, "--json")
    if out.returncode != 0:
        return None
    spans = json.loads(out.stdout)
    services = {s["service"] for s in spans}
    tasks_folded = [s for s in spans if s["name"] == "fold progress"]
    ids = {s["span_id"] for s in spans}
    closed = len([s for s in spans if s["parent_id"] not in ids]) == 1
    return spans if services >= FOUR_SERVICES and tasks_folded and closed else None


def test_one_job_is_one_trace_across_four_services(stack, job):
    spans = wait_for(lambda: job_trace(stack, job["id"]), 60, "the job's spans from every service")
    assert len({s["trace_id"] for s in spans}) == 1, "the job's spans are not in one trace"
    by_id = {s["span_id"]: s for s in spans}
    roots = [s for s in spans if s["parent_id"] not in by_id]
    assert len(roots) == 1, [r["name"] for r in roots]
    root = roots[0]
    assert root["service"] == "modelhub-gateway" and root["name"].startswith("POST /api/v1/datasets/")
    assert root["attributes"]["modelhub.job_id"] == job["id"]
    assert root["attributes"]["modelhub.deployment"] == job["deployment"]

    def ancestry(span: dict | None) -> list[str]:
        chain = []
        while span is not None:
            chain.append(span["service"])
            span = by_id.get(span["parent_id"])
        return chain

    # each replica span descends from a worker's task, which descends from the scheduler and the submit
    replica_spans = [s for s in spans if s["service"] == "modelhub-replica"]
    assert replica_spans
    for span in replica_spans:
        chain = ancestry(span)
        assert chain[-1] == "modelhub-gateway" and "modelhub-scheduler" in chain
        assert "modelhub-inference-worker" in chain
        assert span["attributes"]["modelhub.deployment"] == job["deployment"]
        assert 1 <= span["attributes"]["modelhub.batch_size"] <= 4
    # the task spans carry their outcome counts, which add up to the job's
    tasks = [
        s for s in spans if s["service"] == "modelhub-inference-worker" and "modelhub.samples_ok" in s["attributes"]
    ]
    assert sum(s["attributes"]["modelhub.samples_ok"] for s in tasks) == 9
    assert sum(s["attributes"]["modelhub.samples_failed"] for s in tasks) == 3
    assert all(s["attributes"]["modelhub.job_id"] == job["id"] for s in tasks)
    # the progress fold in the gateway and the worker's MongoDB writes are in the same trace
    assert [s for s in spans if s["name"] == "fold progress" and s["service"] == "modelhub-gateway"]
    assert [s for s in spans if s["name"].startswith("mongodb ") and s["service"] == "modelhub-inference-worker"]

    printed = trace_cli(stack, job["id"])
    assert printed.returncode == 0, printed.stderr
    text = printed.stdout
    assert text.startswith(f"trace {root['trace_id']}: {len(spans)} spans")
    assert re.search(r"ms\s+└─ POST /api/v1/datasets/\S+/jobs \[gateway\].*job_id=" + job["id"], text), text
    assert "[replica]" in text and "[scheduler]" in text and "[inference-worker]" in text
    assert "│  " in text  # nested


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name` whose labels include `labels` (None when there is none)."""
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
        if not labels and line.startswith(f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_count_the_jobs_samples_and_every_service_has_probes(stack, job):
    services = stack.status()["services"]
    worker = httpx.get(services["inference-worker"]["metrics_url"], timeout=10)
    assert worker.status_code == 200 and worker.headers["content-type"].startswith("text/plain")
    labels = {"deployment": job["deployment"]}
    assert metric(worker.text, "modelhub_samples_annotated_total", **labels) == job["succeeded"] == 9
    assert metric(worker.text, "modelhub_samples_failed_total", **labels) == job["failed"] == 3
    assert metric(worker.text, "modelhub_task_duration_seconds_count", **labels) >= 1  # one task of 3 mini-batches
    assert metric(worker.text, "modelhub_serve_call_duration_seconds_count", **labels) >= 3
    assert "faststream_received_messages_total" in worker.text  # FastStream's own

    gateway = httpx.get(services["gateway"]["metrics_url"], timeout=10).text
    assert (
        wait_for(
            lambda: metric(
                httpx.get(services["gateway"]["metrics_url"], timeout=10).text, "modelhub_jobs", status="completed"
            ),
            30,
            "the jobs gauge",
        )
        >= 1
    )
    assert stack.token not in gateway and "password" not in gateway

    # docs/API.md section 6: the annotated-samples counter on the gateway's own port, from the stored
    # jobs (other jobs on the deployment may add to it: at least this job's count)
    def annotated_on_gateway() -> float:
        text = httpx.get(services["gateway"]["metrics_url"], timeout=10).text
        return metric(text, "modelhub_jobs_samples_annotated_total", **labels) or 0

    wait_for(lambda: annotated_on_gateway() >= job["succeeded"], 30, "the gateway's annotated-samples counter")

    def scrape(service: str) -> str:
        return httpx.get(services[service]["metrics_url"], timeout=10).text

    assert (
        wait_for(
            lambda: metric(scrape("deployer"), "modelhub_replicas_ready", **labels), 30, "the ready replicas gauge"
        )
        == 1
    )
    # the queue gauges read 0 for the deployment once its job is done (if a sweep saw it queued at all)
    scheduler = wait_for(
        lambda: metric(scrape("scheduler"), "modelhub_tasks_waiting", **labels) in (None, 0) and scrape("scheduler"),
        30,
        "the queue gauges to empty",
    )
    assert metric(scheduler, "modelhub_tasks_in_flight", **labels) in (None, 0)

    for name in ("registry", "deployer", "scheduler", "inference-worker"):
        assert httpx.get(services[name]["live_url"], timeout=10).status_code == 204, name
        assert httpx.get(services[name]["ready_url"], timeout=10).status_code == 204, name
