"""Replicas run on a sealed replica node, never next to the control plane.

A model's code runs with whatever its replica can reach. These tests deploy models that look around
from inside their replica and report what they found as their outputs: one reports where it runs
(which Ray node, what it sees of the hub's data dir and processes); a hostile one tries to read
the data dir and admin-token, other processes' environments, to write to MongoDB and publish
on NATS, and to read the admin-token through a Ray task on the head node. Every attempt must fail, and the jobs still complete with every sample.
"""

import json
from pathlib import Path

import pytest
from conftest import (
    SCHEMA_TEXT_TO_CLASS,
    add_text_samples,
    all_samples,
    create_model,
    deploy,
    make_zip,
    run_job,
    unique,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

# Reports where the replica runs, as one JSON text per sample (the label of a classification).
WHEREAMI = '''
import json, os
import ray

DATA_DIR = {data_dir!r}

def look():
    ctx = ray.get_runtime_context()
    me = ctx.get_node_id()
    node = next(n for n in ray.nodes() if n["NodeID"] == me)
    mounts = [line.split(" - ")[1].split()[0] for line in open("/proc/self/mountinfo")
              if line.split()[4] == DATA_DIR]
    try:
        listing = sorted(os.listdir(DATA_DIR))
    except OSError as exc:
        listing = type(exc).__name__
    return {{"node_id": me, "head": bool(node.get("Resources", {{}}).get("node:__internal_head__")),
             "replica_resource": node.get("Resources", {{}}).get("modelhub_replica", 0),
             "data_dir_mounts": mounts, "data_dir_listing": listing,
             "hub_processes": hub_processes()}}

HUB = ("mongod", "nats-server", "gcs_server", "modelhub.stack", "modelhub_registry", "modelhub_deployer",
       "modelhub_scheduler", "modelhub_worker", "modelhub_gateway")

def hub_processes():
    """Visible processes of the control plane (servers and services)."""
    seen = []
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            cmd = open(f"/proc/{{pid}}/cmdline", "rb").read().replace(b"\\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(k in cmd for k in HUB):
            seen.append(cmd[:120])
    return seen

class Model:
    def __init__(self, model_dir):
        self.report = json.dumps(look(), sort_keys=True)

    def predict(self, batch):
        return {{"label": [{{"label": self.report, "confidence": 1.0}} for _ in batch["text"]]}}
'''

# Tries, from inside its replica, everything the issue lists; reports each attempt's outcome.
HOSTILE = '''
import asyncio, json, os

DATA_DIR, MONGO_PORT, NATS_PORT = {data_dir!r}, {mongo_port!r}, {nats_port!r}

def attempt(fn):
    try:
        return "OK: " + str(fn())[:200]
    except BaseException as exc:
        return "FAILED: " + type(exc).__name__ + ": " + str(exc)[:160]

def read_token():
    return open(os.path.join(DATA_DIR, "admin-token")).read().strip()

def list_data_dir():
    names = os.listdir(DATA_DIR)
    if not names:
        raise FileNotFoundError("the data dir is empty here")
    return names

def read_logs():
    return os.listdir(os.path.join(DATA_DIR, "logs"))

def other_environments():
    found = []
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            env = open(f"/proc/{{pid}}/environ", "rb").read()
        except OSError:
            continue
        found += [v.decode(errors="replace") for v in env.split(b"\\0") if v.startswith(b"MODELHUB_")]
    if not found:
        raise LookupError("no MODELHUB_ variable in any visible process")
    return sorted(set(found))

def mongo_insert():
    from pymongo import MongoClient
    client = MongoClient(f"mongodb://127.0.0.1:{{MONGO_PORT}}", serverSelectionTimeoutMS=5000)
    try:
        return client["modelhub"]["hacked"].insert_one({{"by": "a model"}}).inserted_id
    finally:
        client.close()

def nats_publish():
    import nats

    async def go():
        nc = await nats.connect(f"nats://127.0.0.1:{{NATS_PORT}}", allow_reconnect=False,
                                max_reconnect_attempts=0, connect_timeout=5)
        try:
            await nc.publish("modelhub.x", b"from a model")
            await nc.flush(timeout=5)
            return "published on modelhub.x"
        finally:
            await nc.close()

    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as pool:  # the replica's own thread already runs an event loop
        return pool.submit(asyncio.run, go()).result()

def head_task():
    """A Ray task pinned to the head node (a replica is a Ray member): read the admin-token there."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    head = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and "node:__internal_head__" in n["Resources"])
    ns = {{"__name__": "__main__"}}  # pickled by value, so that it runs on a node without this package
    exec("def steal(path):\\n    return open(path).read().strip()", ns)
    task = ray.remote(num_cpus=0)(ns["steal"]).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(head, soft=False))
    return ray.get(task.remote(os.path.join(DATA_DIR, "admin-token")), timeout=120)

def look():
    return {{"admin_token": attempt(read_token), "data_dir": attempt(list_data_dir),
             "logs": attempt(read_logs), "environ": attempt(other_environments),
             "mongo": attempt(mongo_insert), "nats": attempt(nats_publish),
             "head_task": attempt(head_task)}}

class Model:
    def __init__(self, model_dir):
        self.report = json.dumps(look(), sort_keys=True)

    def predict(self, batch):
        return {{"label": [{{"label": self.report, "confidence": 1.0}} for _ in batch["text"]]}}
'''


def run_reporting_model(stack, tmp_path: Path, source: str, total: int) -> list[dict]:
    """Deploy `source`, run a job of `total` samples on it; every sample's report, parsed."""
    client, model, name, dataset = stack.client, unique("look"), unique("look-dep"), unique("ds")
    create_model(client, model, make_zip(tmp_path / "m.zip", {"model.py": source}), SCHEMA_TEXT_TO_CLASS)
    deployed = deploy(client, model, name, mini_batch=4)
    assert deployed["status"] == "running", (deployed["error"], stack.logs())
    add_text_samples(client, dataset, [f"t{i}" for i in range(total)])
    job = run_job(client, dataset, name, {"label": "report"})
    assert job["status"] == "completed", (job, stack.logs())
    assert (job["total"], job["succeeded"], job["failed"]) == (total, total, 0), job
    samples = all_samples(client, dataset)
    assert len(samples) == total and all("report" in s["fields"] for s in samples)
    client.delete(f"/deployments/{name}")
    return [json.loads(s["fields"]["report"]["label"]) for s in samples]


def test_replicas_run_on_the_sealed_replica_node_and_the_job_completes(stack, tmp_path):
    reports = run_reporting_model(stack, tmp_path, WHEREAMI.format(data_dir=str(stack.data_dir)), 12)
    for report in reports:
        assert not report["head"], f"a replica ran on the Ray head: {report}"
        assert report["replica_resource"] > 0, report
        assert report["data_dir_mounts"] == ["tmpfs"], f"the data dir is not covered by a tmpfs: {report}"
        assert report["data_dir_listing"] == [], report
        assert report["hub_processes"] == [], f"the replica sees the hub's processes: {report}"
    assert (stack.data_dir / "admin-token").exists()  # outside, the data dir is still there
    status = stack.status()  # and `modelhub status` says so
    assert status["replica_nodes"] and all(n["sealed"] for n in status["replica_nodes"].values()), status


def test_a_hostile_model_finds_nothing_and_the_job_still_completes(stack, tmp_path):
    ports = json.loads((stack.data_dir / "stack.json").read_text())["ports"]
    source = HOSTILE.format(data_dir=str(stack.data_dir), mongo_port=ports["mongo"], nats_port=ports["nats"])
    (report,) = {json.dumps(r, sort_keys=True) for r in run_reporting_model(stack, tmp_path, source, 8)}
    found = json.loads(report)
    print("what the hostile model saw:", json.dumps(found, indent=1))
    assert stack.token not in report
    for attempt, outcome in found.items():
        assert outcome.startswith("FAILED"), f"the model got through ({attempt}): {outcome}"
    # refused for want of credentials (not merely unreachable)
    assert "authorization" in found["nats"].lower(), found["nats"]
    assert "authentication" in found["mongo"].lower(), found["mongo"]
    assert "FileNotFoundError" in found["head_task"], found["head_task"]  # it ran, on a sealed head


# An output object that runs a command when it is unpickled: it reports the environment of
# whichever process deserialises it.
PICKLED_OUTPUT = """
import os

class Evil:
    def __reduce__(self):
        return (os.system, ("env > {out}",))

class Model:
    def __init__(self, model_dir):
        pass

    def predict(self, batch):
        return {{"label": [Evil() for _ in batch["text"]]}}
"""


def test_a_model_output_is_never_unpickled_in_a_service(stack, tmp_path):
    """The worker calls replicas over HTTP with JSON (no Ray driver holds the hub's credentials): an
    output that would run a command when unpickled is refused in the replica as not JSON."""
    client, model, name = stack.client, unique("pickled"), unique("pickled-dep")
    out = Path("/tmp") / f"mh-pickled-{unique('out')}"
    create_model(
        client, model, make_zip(tmp_path / "p.zip", {"model.py": PICKLED_OUTPUT.format(out=out)}), SCHEMA_TEXT_TO_CLASS
    )
    assert deploy(client, model, name)["status"] == "running"
    try:
        answer = client.post(f"/deployments/{name}/predict", json={"inputs": {"text": ["x"]}})
        ran_in = out.read_text() if out.exists() else ""
        assert "MODELHUB_" not in ran_in, "a model's output ran a command in a hub service"
        assert not out.exists(), f"the output was unpickled somewhere: {ran_in[:300]}"
        assert answer.status_code == 502 and "JSON" in answer.json()["detail"], answer.text
    finally:
        client.delete(f"/deployments/{name}")
        out.unlink(missing_ok=True)


def test_no_process_that_holds_the_hubs_credentials_loads_ray(stack):
    """The services and the supervisor hold NATS/MongoDB credentials: none of them may be a Ray
    driver, so none has Ray's core library mapped (what `import ray` loads)."""
    state = json.loads((stack.data_dir / "state.json").read_text())
    pids = {name: s["pid"] for name, s in state["services"].items() if s.get("pid")}
    pids["supervisor"] = int((stack.data_dir / "supervisor.pid").read_text().split()[0])
    assert {"gateway", "registry", "deployer", "scheduler", "inference-worker"} <= set(pids), state
    for name, pid in pids.items():
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "_raylet" not in maps and "/ray/" not in maps, f"{name} (pid {pid}) has loaded ray"
        env = Path(f"/proc/{pid}/environ").read_bytes()
        assert name == "supervisor" or b"MODELHUB_MONGO_URL=" in env  # it does hold credentials
