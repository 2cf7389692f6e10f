"""Another system on the bus (examples/integration/publish_as_user.py, run as a user would run it):
it adds samples and runs a job as a user through the `integration` NATS user, is refused what that
user may not do, and cannot publish the services' events. Afterwards every service's log file is
JSON lines, with no INFO line for health pings."""

import asyncio
import json
import os
import subprocess
import sys

import nats
import pytest
from conftest import ROOT, SCHEMA_LOCAL_TO_CLASS, create_model, deploy, make_zip, unique, wait_for
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

pytestmark = pytest.mark.integration
EXAMPLE = ROOT / "examples" / "integration" / "publish_as_user.py"
SERVICES = ("registry", "deployer", "scheduler", "inference-worker", "gateway")

NAME_LENGTH_MODEL = """
import os

class Model:
    def __init__(self, model_dir):
        pass

    def predict(self, batch):
        return {"predictions": [{"label": str(len(os.path.basename(p))), "confidence": 1.0}
                                for p in batch["image_paths"]]}
"""


def example(stack, token: str, dataset: str, deployment: str, files) -> subprocess.CompletedProcess:
    # the token through the environment, as docs/integration.md shows: a token may begin with "-", which
    # argparse would read as an option after "--token" (and argv is visible to every local user)
    return subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--data-dir",
            str(stack.data_dir),
            "--dataset",
            dataset,
            "--deployment",
            deployment,
            "--output",
            "predictions=guess",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "MODELHUB_TOKEN": token},
    )


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("other-systems")
    bob, carol = unique("bob"), unique("carol")
    tokens = {u: stack.client.post("/users", json={"username": u}).json()["token"] for u in (bob, carol)}
    client = stack.user_client(tokens[bob])
    model, deployment, dataset = unique("namelen"), unique("namelen"), unique("inbox")
    create_model(client, model, make_zip(tmp / "m.zip", {"model.py": NAME_LENGTH_MODEL}), SCHEMA_LOCAL_TO_CLASS)
    assert deploy(client, model, deployment, mini_batch=4)["status"] == "running"
    assert client.post("/datasets", json={"name": dataset}).status_code == 201
    files = [tmp / f"{'x' * i}.png" for i in range(1, 8)]
    for f in files:
        f.write_bytes(b"not really a png")
    return {
        "bob": bob,
        "carol": carol,
        "tokens": tokens,
        "client": client,
        "deployment": deployment,
        "dataset": dataset,
        "files": files,
    }


def test_a_system_adds_samples_and_runs_a_job_as_a_user(stack, world):
    run = example(stack, world["tokens"][world["bob"]], world["dataset"], world["deployment"], world["files"])
    assert run.returncode == 0, run.stdout + run.stderr + stack.logs()
    assert f"added 7 samples to {world['dataset']}" in run.stdout
    assert "completed 7+0/7" in run.stdout
    items = world["client"].get(f"/datasets/{world['dataset']}/samples").json()["items"]
    assert sorted(int(s["fields"]["guess"]["label"]) for s in items) == [i + 4 for i in range(1, 8)]  # "x.png" is 5
    jobs = world["client"].get(f"/datasets/{world['dataset']}/jobs").json()["items"]
    assert jobs[0]["status"] == "completed" and jobs[0]["total"] == 7  # a job like any other, bob's


def test_a_user_without_the_right_is_refused_with_the_reason(stack, world):
    carol = world["tokens"][world["carol"]]
    # bob's dataset is not carol's: it does not exist for her (404, as over HTTP), nothing is added
    run = example(stack, carol, world["dataset"], world["deployment"], world["files"][:1])
    assert run.returncode == 1
    assert f"refused: modelhub.ext.cmd.samples.add: 404 dataset '{world['dataset']}' not found" in run.stderr
    assert world["client"].get(f"/datasets/{world['dataset']}").json()["num_samples"] == 7
    # her own dataset, but bob's deployment of a model not shared with her: the job is refused
    mine = unique("carols")
    assert stack.user_client(carol).post("/datasets", json={"name": mine}).status_code == 201
    run = example(stack, carol, mine, world["deployment"], world["files"][:1])
    assert run.returncode == 1, run.stdout
    assert f"refused: modelhub.ext.cmd.jobs.submit: 404 deployment '{world['deployment']}' not found" in run.stderr
    assert stack.user_client(carol).get(f"/datasets/{mine}/jobs").json()["items"] == []
    run = example(stack, "not-a-token", mine, world["deployment"], world["files"][:1])
    assert run.returncode == 1 and "401 missing or invalid token" in run.stderr


def test_the_integration_user_can_only_send_commands_and_read_its_own_inbox(stack):
    url = stack.credentials()["integration_nats_url"]

    async def probe() -> list[str]:
        errors: list[str] = []

        async def on_error(exc):
            errors.append(str(exc))

        nc = await nats.connect(url, inbox_prefix="_INBOX_ext.integration", error_cb=on_error)
        await nc.publish("modelhub.evt.jobs.submitted", b"{}")
        await nc.subscribe("modelhub.>")
        await nc.subscribe("_INBOX.>")  # the services' own replies
        with pytest.raises((NoRespondersError, NatsTimeout)):
            await nc.request("modelhub.rpc.registry.create_model", b"{}", timeout=2)
        # a command whose reply subject is an internal one: the gateway must not answer there
        await nc.publish(
            "modelhub.ext.cmd.jobs.get",
            b'{"job_id": "x"}',
            reply="modelhub.evt.jobs.refused",
            headers={"Authorization": f"Bearer {stack.token}"},
        )
        await nc.flush()
        await asyncio.sleep(0.5)
        await nc.close()
        return errors

    errors = " | ".join(asyncio.run(probe())).lower()  # nats-py lower-cases the server's message
    assert 'permissions violation for publish to "modelhub.evt.jobs.submitted"' in errors, errors
    assert 'permissions violation for subscription to "modelhub.>"' in errors, errors
    assert 'permissions violation for subscription to "_inbox.>"' in errors, errors
    wait_for(
        lambda: (
            "'modelhub.evt.jobs.refused' is not under _INBOX_ext"
            in (stack.data_dir / "logs" / "gateway.log").read_text()
        ),
        10,
        "the gateway to drop the command",
    )


def test_service_logs_are_json_lines_with_no_info_for_health_pings(stack, world):
    # runs after the job of the first test (pytest keeps the file's order): its tasks are in the logs
    for _ in range(3):
        assert stack.client.get("/health").status_code == 200
    for service in SERVICES:
        path = stack.data_dir / "logs" / f"{service}.log"
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        records = []
        for number, line in enumerate(lines, 1):
            try:
                records.append(json.loads(line))
            except ValueError:
                pytest.fail(f"{path.name} line {number} is not JSON: {line[:300]}")
        assert all({"timestamp", "level", "service", "logger", "message"} <= r.keys() for r in records), service
        assert not any("\x1b[" in line for line in lines), service
        pings = [r for r in records if str(r.get("subject", "")).startswith("modelhub.rpc.ping.")]
        assert all(r["level"] == "DEBUG" for r in pings), pings[:2]
    gateway = [
        json.loads(line) for line in (stack.data_dir / "logs" / "gateway.log").read_text().splitlines() if line.strip()
    ]
    assert not [r for r in gateway if r["level"] == "INFO" and "/health" in r["message"]]
    worker = [
        json.loads(line)
        for line in (stack.data_dir / "logs" / "inference-worker.log").read_text().splitlines()
        if line.strip()
    ]
    assert any(r.get("subject") == "modelhub.evt.tasks.scheduled" for r in worker)  # the job's tasks were logged
