"""Losing a node mid-job on the cluster shape (`modelhub up --cluster 3`: three nats-servers in one
JetStream cluster, a three-member MongoDB replica set): `kill -9` the server leading the events
stream, later the MongoDB primary, and keep each down (its port held, so the supervisor's restarts
fail) until the job ends. The job completes with exact counts and every field, the stall from the
kill to the next progress is measured and bounded, /health stays 200 naming the missing
member, and a new upload + deploy + job works while the nodes are down, and again after they rejoin.
Then the Ray head is killed mid-job on the same shape and started again by the supervisor.
"""

import asyncio
import contextlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import nats
import pytest
from conftest import (
    SCHEMA_TEXT_TO_CLASS,
    add_text_samples,
    all_samples,
    create_model,
    deploy,
    get_json,
    make_zip,
    part_pid,
    slow_model,
    start_stack,
    stop_stack,
    unique,
    wait_for,
)
from pymongo import MongoClient

from modelhub_contracts import subjects

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

TOTAL = 300
OUTPUT = "label"
# 75 batches of 4 at 0.1 s each, one at a time: the kill (after 8 samples) leaves ~7 s of model
# time, so every outcome after it waits for the new leaders, and the pauses of the job's own pace
# (a window of tasks done together, ~3 s) stay well under the bounds.
SLOW_MODEL = slow_model(0.1, one_batch_at_a_time=True)
EVENTS_STREAM = subjects.STREAM
# The issue's targets. A NATS leader's loss costs its RAFT groups' elections (the stream's and
# those of its consumers it led): each fires 4 to 9 s after the last heartbeat it got (nats-server's
# fixed timings), and again when a vote splits; then publishes and pulls go through again
# (messaging.through_elections, the gateway's pull loop). The test prints when each new leader was
# announced (NATS_ELECTIONS) beside the stall: on 2026-12-07 the stall was 5.20, 6.99 and 6.30 s,
# 0.13, 0.17 and 0.08 s after the events stream's new leader (5.07, 6.82, 6.22 s). On a bare
# 3-server cluster the stream's election took 3.97 to 8.76 s over 22 kills, and 4.10 to 7.49 s
# over 14 more but one at 14.33 s. So the 10 s cannot be the bound of a suite that runs
# once: about one election in 36 alone takes longer. The NATS bound stays 15 s. A MongoDB
# primary's loss costs its election (5 s on the embedded set) and the retries of the writes that
# failed meanwhile: 10.14 to 10.56 s. docs/operations.md has the figures.
NATS_STALL_BOUND_S, MONGO_STALL_BOUND_S = 15.0, 15.0


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("cluster-stack")
    try:
        yield start_stack(data_dir, "--cluster", "3")
    finally:
        stop_stack(data_dir)


def new_deployment(stack, tmp_path_factory) -> str:
    client, model, name = stack.client, unique("slow"), unique("slow-dep")
    package = make_zip(tmp_path_factory.mktemp("slow") / "slow.zip", {"model.py": SLOW_MODEL})
    create_model(client, model, package, SCHEMA_TEXT_TO_CLASS)
    assert deploy(client, model, name, mini_batch=4)["status"] == "running"
    return name


def start_job(stack, deployment: str) -> tuple[str, str]:
    client, dataset = stack.client, unique("ds")
    add_text_samples(client, dataset, [f"sample-{i}" for i in range(TOTAL)])
    response = client.post(f"/datasets/{dataset}/jobs", json={"deployment": deployment, "outputs": {"label": OUTPUT}})
    assert response.status_code == 202, response.text
    return dataset, response.json()["id"]


def done(stack, job_id: str) -> int:
    job = get_json(stack.client, f"/jobs/{job_id}")
    return (job["succeeded"] + job["failed"]) if job else -1


def wait_mid_run(stack, job_id: str) -> int:
    count = wait_for(lambda: (n := done(stack, job_id)) >= 8 and n, 180, "the job to get going", interval=0.1)
    assert count < TOTAL, "the job ended before the kill"
    return count


def stall_after(stack, job_id: str, killed_at: float) -> tuple[float, float]:
    """The longest time the job made no progress (its counts did not grow), from the kill until it
    ended: the kill to its first progress, or a later pause (a message waiting out an ack_wait),
    whichever is longer; and the kill to its first progress. Outcomes stored before the kill and
    counted after it do not hide a stall."""
    last_change, longest, count, first = killed_at, 0.0, -1, None
    deadline = killed_at + 300
    while time.monotonic() < deadline:
        now, job = time.monotonic(), get_json(stack.client, f"/jobs/{job_id}") or {}
        if (seen := job.get("succeeded", 0) + job.get("failed", 0)) != count:
            if count >= 0 and first is None:
                first = now - killed_at
            longest, last_change, count = max(longest, now - last_change), now, seen
        if job.get("status") in ("completed", "failed", "cancelled"):
            return longest, first if first is not None else longest
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end within 300 s of the kill")


def assert_completed_exactly_once(stack, dataset: str, job_id: str) -> None:
    def ended():
        job = get_json(stack.client, f"/jobs/{job_id}")
        return job if job and job["status"] in ("completed", "failed", "cancelled") else None

    job = wait_for(ended, 300, f"job {job_id} to end", interval=0.5)
    assert job["status"] == "completed", (job, stack.logs())
    assert (job["total"], job["succeeded"], job["failed"]) == (TOTAL, TOTAL, 0), job
    samples = all_samples(stack.client, dataset)
    missing = [s["id"] for s in samples if OUTPUT not in s["fields"]]
    assert len(samples) == TOTAL and not missing, f"{len(missing)} samples lack {OUTPUT!r}"


def member_for_port(stack, kind: str, port: int) -> tuple[str, int]:
    """The supervisor's name and pid of the `kind` ("nats", "mongo") member listening on `port`."""
    members = stack.status()[kind]["members"]
    for name, entry in members.items():
        if entry.get("url", "").endswith(f":{port}") and entry.get("state") == "running":
            return name, entry["pid"]
    raise AssertionError(f"no running {kind} member on port {port}: {members}")


def nats_login(stack) -> tuple[str, str, list[str]]:
    """The hub's NATS user, password and servers (nats://host:port each), from its credentials."""
    creds = stack.credentials()["nats_url"].split(",")
    user, password = creds[0].split("//", 1)[1].split("@", 1)[0].split(":", 1)
    return user, password, [f"nats://{c.split('@', 1)[1]}" for c in creds]


def events_leader_port(stack) -> int:
    """The client port of the nats-server leading the events stream (server names are modelhub-<port>)."""

    async def leader() -> str:
        user, password, servers = nats_login(stack)
        nc = await nats.connect(servers, user=user, password=password)
        try:
            info = await nc.jetstream().stream_info(EVENTS_STREAM)
            assert info.config.num_replicas == 3, info.config
            return info.cluster.leader  # type: ignore[union-attr]
        finally:
            await nc.close()

    return int(asyncio.run(leader()).rsplit("-", 1)[1])


@contextlib.contextmanager
def leader_elections(stack, dead_port: int) -> Iterator[list[tuple[float, str]]]:
    """JetStream's LEADER_ELECTED advisories (the stream's and each consumer's) seen while the block
    runs, as (monotonic time, `STREAM.<stream>` or `CONSUMER.<stream>.<consumer>`), from a connection
    to the servers other than the one on `dead_port`: where a NATS stall's seconds go."""
    seen: list[tuple[float, str]] = []
    ready, stop = threading.Event(), threading.Event()
    prefix = "$JS.EVENT.ADVISORY."

    async def watch() -> None:
        user, password, servers = nats_login(stack)
        nc = await nats.connect([s for s in servers if not s.endswith(f":{dead_port}")], user=user, password=password)

        async def on(msg) -> None:
            seen.append((time.monotonic(), msg.subject.removeprefix(prefix).replace(".LEADER_ELECTED", "")))

        try:
            await nc.subscribe(prefix + "*.LEADER_ELECTED.>", cb=on)
            await nc.flush()
            ready.set()
            await asyncio.to_thread(stop.wait)  # the block ended (a thread's event: waited on in a thread)
        finally:
            await nc.close()

    watcher = threading.Thread(target=lambda: asyncio.run(watch()), daemon=True)
    watcher.start()
    assert ready.wait(30), "the advisory watcher did not connect"
    try:
        yield seen
    finally:
        stop.set()
        watcher.join(10)


def mongo_primary_port(stack) -> int:
    with MongoClient(stack.mongo_url, serverSelectionTimeoutMS=20_000) as client:
        return int(client.admin.command("hello")["primary"].rsplit(":", 1)[1])


@contextlib.contextmanager
def held_down(member: tuple[str, int], port: int) -> Iterator[tuple[str, float]]:
    """kill -9 `member` (its name and pid, listening on `port`) and hold its port (so the
    supervisor's restarts fail) until the block ends; yields (member name, kill time)."""
    name, pid = member
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: _bind(holder, port), 10, f"{name}'s port to be free", interval=0.02)
    holder.listen(1)
    try:
        yield name, killed_at
    finally:
        holder.close()


def _bind(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def health(stack) -> tuple[int, dict]:
    response = stack.client.get("/health")
    return response.status_code, response.json()


def test_losing_the_nats_leader_then_the_mongo_primary_mid_job(cluster_stack, tmp_path_factory):
    stack = cluster_stack
    deployment = new_deployment(stack, tmp_path_factory)
    stalls, first = {}, {}

    port = events_leader_port(stack)
    leader = member_for_port(stack, "nats", port)  # looked up first: the kill lands mid-job
    dataset, job_id = start_job(stack, deployment)
    wait_mid_run(stack, job_id)
    with leader_elections(stack, port) as elections, held_down(leader, port) as (nats_member, killed_at):
        stalls["nats"], first["nats"] = stall_after(stack, job_id, killed_at)
        elected = {what: round(at - killed_at, 2) for at, what in list(elections) if at > killed_at}
        print("NATS_ELECTIONS", json.dumps(elected))  # seconds from the kill to each new leader
        assert_completed_exactly_once(stack, dataset, job_id)
        code, body = wait_for(
            lambda: (h := health(stack))[0] == 200 and h[1]["members_missing"] and h, 60, "/health naming the member"
        )
        assert any(m.startswith("nats:") for m in body["members_missing"]), body
        assert stack.status()["nats"]["missing"] == [nats_member]
        # a new upload, deploy and job while a NATS server is down
        other = new_deployment(stack, tmp_path_factory)
        dataset2, job2 = start_job(stack, other)
        assert_completed_exactly_once(stack, dataset2, job2)
    wait_for(lambda: stack.status()["nats"]["state"] == "running", 60, f"{nats_member} to rejoin")

    port = mongo_primary_port(stack)
    primary = member_for_port(stack, "mongo", port)
    dataset, job_id = start_job(stack, deployment)
    wait_mid_run(stack, job_id)
    with held_down(primary, port) as (mongo_member, killed_at):
        stalls["mongo"], first["mongo"] = stall_after(stack, job_id, killed_at)
        assert_completed_exactly_once(stack, dataset, job_id)
        code, body = wait_for(
            lambda: (
                (h := health(stack))[0] == 200 and any(m.startswith("mongo:") for m in h[1]["members_missing"]) and h
            ),
            60,
            "/health naming the mongo member",
        )
        other = new_deployment(stack, tmp_path_factory)
        dataset2, job2 = start_job(stack, other)
        assert_completed_exactly_once(stack, dataset2, job2)
    wait_for(lambda: stack.status()["mongo"]["state"] == "running", 60, f"{mongo_member} to rejoin")
    wait_for(lambda: health(stack)[0] == 200 and not health(stack)[1]["members_missing"], 120, "every member back")

    dataset, job_id = start_job(stack, deployment)
    assert_completed_exactly_once(stack, dataset, job_id)
    print("STALLS", json.dumps({k: round(v, 2) for k, v in stalls.items()}))
    print("FIRST_PROGRESS", json.dumps({k: round(v, 2) for k, v in first.items()}))
    assert stalls["nats"] <= NATS_STALL_BOUND_S, stalls
    assert stalls["mongo"] <= MONGO_STALL_BOUND_S, stalls


def test_the_ray_head_killed_mid_job_on_the_cluster_shape(cluster_stack, tmp_path_factory):
    """Ray's head (its GCS, Serve's controller and HTTP proxy) dies mid-job and the supervisor starts
    it again: the job completes exactly once, and a job started afterwards too. Its stall (the kill
    to the next progress, as above) is measured and printed; the issue sets no target for it."""
    stack = cluster_stack
    deployment = new_deployment(stack, tmp_path_factory)
    dataset, job_id = start_job(stack, deployment)
    wait_mid_run(stack, job_id)
    pid = part_pid(stack.data_dir, "ray")
    assert pid, "no running Ray head"
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    stall, first = stall_after(stack, job_id, killed_at)
    print("STALLS_RAY_HEAD", json.dumps({"ray_head": round(stall, 2), "first_progress": round(first, 2)}))
    wait_for(
        lambda: (new := part_pid(stack.data_dir, "ray")) and new != pid, 120, "the Ray head to restart", interval=0.5
    )
    assert_completed_exactly_once(stack, dataset, job_id)
    dataset, job_id = start_job(stack, deployment)
    assert_completed_exactly_once(stack, dataset, job_id)
