"""The real embedded stack (NATS + JetStream, MongoDB, Ray, five services), started once per
session with `modelhub up --detach` in a temp data dir and stopped with `modelhub down`."""

import json
import os
import socket
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODELHUB = [sys.executable, "-m", "modelhub"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.url = f"http://127.0.0.1:{port}/api/v1"
        self.token = (data_dir / "admin-token").read_text().strip()
        self.client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=60)

    def state(self) -> dict:
        return json.loads((self.data_dir / "state.json").read_text())

    def credentials(self) -> dict:
        """The credential-bearing URLs `up` hands to the services (DIR/credentials.json, mode 0600)."""
        return json.loads((self.data_dir / "credentials.json").read_text())

    @property
    def nats_url(self) -> str:
        return self.credentials()["nats_url"]

    @property
    def mongo_url(self) -> str:
        return self.credentials()["mongo_url"]

    def status(self) -> dict:
        """`modelhub status --json` for this stack."""
        out = subprocess.run(
            [*MODELHUB, "status", "--data-dir", str(self.data_dir), "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return json.loads(out.stdout)

    def user_client(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def logs(self) -> str:
        parts = []
        for log in sorted((self.data_dir / "logs").glob("*.log")):
            parts.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:]))
        return "\n".join(parts)


@pytest.fixture(scope="session", autouse=True)
def media_roots(tmp_path_factory) -> str:
    """Where the tests' datasets lie (this session's temp dirs, the repo's examples): every stack
    the tests start shows its models' jails only these (MODELHUB_MEDIA_ROOTS), as an operator
    would set it. Stacks started without it show the machine's "/" less the covered places."""
    roots = os.pathsep.join([str(tmp_path_factory.getbasetemp()), str(ROOT / "examples")])
    os.environ["MODELHUB_MEDIA_ROOTS"] = roots
    return roots


@pytest.fixture(scope="session")
def stack(tmp_path_factory, media_roots) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("stack")
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MODELHUB_NATS_URL", "MODELHUB_MONGO_URL", "RAY_ADDRESS", "MODELHUB_ADMIN_TOKEN")
    }
    up = subprocess.run(
        [*MODELHUB, "up", "--detach", "--data-dir", str(data_dir), "--port", str(port), "--timeout", "300"],
        env=env,
        capture_output=True,
        text=True,
        timeout=360,
    )
    try:
        assert up.returncode == 0, f"modelhub up failed:\n{up.stdout}\n{up.stderr}"
        instance = Stack(data_dir, port)
        yield instance
    finally:
        subprocess.run([*MODELHUB, "down", "--data-dir", str(data_dir)], env=env, timeout=120)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.25):
    """Poll `predicate` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def insert_job(jobs, **fields) -> str:
    """A bare job document, for tests that drive the gateway's fold and ledger directly: running,
    attempt 1, nothing counted yet, `fields` changing any of it. Returns its id."""
    from modelhub_contracts.events import utcnow

    doc = {
        "_id": uuid.uuid4().hex,
        "status": "running",
        "attempt": 1,
        "succeeded": 0,
        "failed": 0,
        "started_at": utcnow(),
        "dataset": "d",
        "deployment": "x",
        "inputs": {},
        "outputs": {},
        "created_by": "admin",
        **fields,
    }
    await jobs.insert_one(doc)
    return doc["_id"]


def make_zip(path: Path, files: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return path


SCHEMA_TEXT_TO_CLASS = {
    "inputs": {"type": "object", "properties": {"text": {"type": "text"}}},
    "outputs": {"type": "object", "properties": {"label": {"type": "classification"}}},
}


def slow_model(seconds_per_batch: float, one_batch_at_a_time: bool = False) -> str:
    """model.py of a text model that takes `seconds_per_batch` per predict call: jobs on it are
    still running when a test acts on them mid-run. With `one_batch_at_a_time`, a replica runs one
    call at a time (a lock around the sleep, like a GPU): a job's time then does not shrink with
    the calls in flight."""
    sleep = f"time.sleep({seconds_per_batch})"
    if one_batch_at_a_time:
        sleep = f"with LOCK:\n            {sleep}"
    return f"""
import threading
import time

LOCK = threading.Lock()

class Model:
    def __init__(self, model_dir):
        pass

    def predict(self, batch):
        {sleep}
        return {{"label": [{{"label": t, "confidence": 0.5}} for t in batch["text"]]}}
"""


SCHEMA_LOCAL_TO_CLASS = {
    "inputs": {"type": "object", "properties": {"image_paths": {"type": "local"}}},
    "outputs": {"type": "object", "properties": {"predictions": {"type": "classification"}}},
}


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> Path:
    """The example package and dataset, built the way `make demo` builds them."""
    out = tmp_path_factory.mktemp("digits")
    subprocess.run(
        [sys.executable, str(ROOT / "examples/digits/build.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


def create_model(client: httpx.Client, name: str, package: Path, schema: dict) -> dict:
    assert client.post("/models", json={"name": name}).status_code == 201
    with package.open("rb") as fh:
        response = client.post(
            f"/models/{name}/versions",
            files={"file": (package.name, fh, "application/zip")},
            data={"schema": json.dumps(schema)},
        )
    assert response.status_code == 201, response.text
    return response.json()


def deploy(client: httpx.Client, model: str, name: str, timeout: float = 240, **options) -> dict:
    response = client.post(f"/models/{model}/deployments", json={"name": name, **options})
    assert response.status_code == 202, response.text

    def settled():
        doc = client.get(f"/deployments/{name}").json()
        return doc if doc["status"] in ("running", "failed") else None

    return wait_for(settled, timeout, f"deployment {name} to settle")


def run_job(client: httpx.Client, dataset: str, deployment: str, outputs: dict, timeout: float = 240) -> dict:
    response = client.post(f"/datasets/{dataset}/jobs", json={"deployment": deployment, "outputs": outputs})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    def ended():
        doc = client.get(f"/jobs/{job_id}").json()
        return doc if doc["status"] in ("completed", "failed", "cancelled") else None

    return wait_for(ended, timeout, f"job {job_id} to end")


def add_files(client: httpx.Client, dataset: str, paths: list[Path]) -> None:
    assert client.post("/datasets", json={"name": dataset}).status_code == 201
    response = client.post(f"/datasets/{dataset}/samples", json={"samples": [{"filepath": str(p)} for p in paths]})
    assert response.status_code == 201, response.text


def all_samples(client: httpx.Client, dataset: str) -> list[dict]:
    return client.get(f"/datasets/{dataset}/samples", params={"limit": 10_000}).json()["items"]


# ---------------------------------------------------------------- stacks of their own, and chaos


def _stack_env() -> dict:
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("MODELHUB_NATS_URL", "MODELHUB_MONGO_URL", "RAY_ADDRESS", "MODELHUB_ADMIN_TOKEN")
    }


def start_stack(data_dir: Path, *options: str) -> Stack:
    """`modelhub up --detach` a separate embedded stack in `data_dir`, with more `up` options
    (e.g. "--workers", "2"); stop it with stop_stack."""
    port = free_port()
    up = subprocess.run(
        [*MODELHUB, "up", "--detach", "--data-dir", str(data_dir), "--port", str(port), "--timeout", "300", *options],
        env=_stack_env(),
        capture_output=True,
        text=True,
        timeout=360,
    )
    assert up.returncode == 0, f"modelhub up failed:\n{up.stdout}\n{up.stderr}"
    return Stack(data_dir, port)


def stop_stack(data_dir: Path) -> None:
    subprocess.run([*MODELHUB, "down", "--data-dir", str(data_dir)], env=_stack_env(), timeout=120)


def part_pid(data_dir: Path, part: str) -> int | None:
    """The pid `modelhub status --json` gives for a server ("nats", "mongo") or a service."""
    out = subprocess.run(
        [*MODELHUB, "status", "--data-dir", str(data_dir), "--json"],
        env=_stack_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    status = json.loads(out.stdout)
    entry = status.get(part) or status.get("services", {}).get(part) or {}
    return entry.get("pid") if entry.get("state") == "running" else None


def get_json(client: httpx.Client, path: str) -> dict | None:
    """GET that answers None while the gateway is down or restarting (instead of raising)."""
    try:
        response = client.get(path)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def add_text_samples(client: httpx.Client, dataset: str, texts: list[str], create: bool = True) -> None:
    if create:
        assert client.post("/datasets", json={"name": dataset}).status_code == 201
    response = client.post(
        f"/datasets/{dataset}/samples",
        json={"samples": [{"filepath": f"/data/{i}.txt", "fields": {"text": t}} for i, t in enumerate(texts)]},
    )
    assert response.status_code == 201, response.text
