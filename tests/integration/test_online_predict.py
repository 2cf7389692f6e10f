"""Online predict on the real stack: many inputs per request and many requests at once, each
answered in its own order, and the bounds: 429 with Retry-After, 504 that leaves nothing held,
413 for a body too large. Gates are files and what the model shows of itself (its thread's name):
nothing here waits on a clock."""

import hashlib
import json
import threading
from pathlib import Path

import pytest
from conftest import SCHEMA_TEXT_TO_CLASS, create_model, deploy, make_zip, unique, wait_for

pytestmark = pytest.mark.timeout(600)

# A text starting with "/" is a gate: the model holds that batch until PATH's folder has a file
# named "release" (the folder is under the media roots, which the jail shows read-only). The jail
# lets the model write nothing the test could see, so it says it holds a gate by naming its
# thread (Linux's /proc/thread-self/comm, the jail's own /proc): the kernel shows that name in the
# machine's /proc, where the test looks for it (gate_held). Other texts are answered reversed.
GATED_MODEL = """
import hashlib
import os
import time


class Model:
    def __init__(self, model_dir):
        pass

    def predict(self, batch):
        for text in batch["text"]:
            if text.startswith("/"):
                with open("/proc/thread-self/comm", "w") as comm:
                    comm.write("gate-" + hashlib.sha256(text.encode()).hexdigest()[:10])
                try:
                    while not os.path.exists(os.path.join(os.path.dirname(text), "release")):
                        time.sleep(0.02)
                finally:
                    with open("/proc/thread-self/comm", "w") as comm:
                        comm.write("model")
        return {"label": [{"label": t[::-1], "confidence": 1.0} for t in batch["text"]]}
"""


def gate_held(text: str) -> bool:
    """Whether a model thread (anywhere on this machine: the embedded stack's) is holding gate `text`."""
    name = "gate-" + hashlib.sha256(text.encode()).hexdigest()[:10]
    for comm in Path("/proc").glob("[0-9]*/task/[0-9]*/comm"):
        try:
            if comm.read_text().strip() == name:
                return True
        except OSError:  # the thread ended while we looked
            continue
    return False


@pytest.fixture(scope="module")
def gated(stack, tmp_path_factory) -> str:
    """A model whose predict can be held open by the test."""
    name = unique("gated")
    package = make_zip(tmp_path_factory.mktemp("gated") / "gated.zip", {"model.py": GATED_MODEL})
    create_model(stack.client, name, package, SCHEMA_TEXT_TO_CLASS)
    return name


def labels(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [o["label"] for o in response.json()["outputs"]["label"]]


def in_thread(call) -> tuple[threading.Thread, list]:
    result: list = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    return thread, result


def test_many_inputs_per_request_and_many_requests_keep_their_order(stack, gated):
    client = stack.client
    name = unique("many")
    assert deploy(client, gated, name, mini_batch=8)["status"] == "running"
    try:
        texts = [f"t{i}" for i in range(100)]
        assert labels(client.post(f"/deployments/{name}/predict", json={"inputs": {"text": texts}})) == [
            t[::-1] for t in texts
        ]

        def one(k: int):
            mine = [f"r{k}s{i}" for i in range(5)]
            return mine, stack.user_client(stack.token).post(
                f"/deployments/{name}/predict", json={"inputs": {"text": mine}}
            )

        threads = [in_thread(lambda k=k: one(k)) for k in range(20)]
        for thread, _ in threads:
            thread.join()
        for _, [(mine, response)] in threads:  # each request got its own outputs, in its order
            assert labels(response) == [t[::-1] for t in mine]
    finally:
        client.delete(f"/deployments/{name}")


def test_bounds_answer_at_once_and_leave_nothing_held(stack, gated, tmp_path):
    client = stack.client
    name = unique("bounded")
    doc = deploy(client, gated, name, mini_batch=2, max_in_flight=2, batch_wait_ms=0)
    assert (doc["status"], doc["max_in_flight"], doc["batch_wait_ms"]) == ("running", 2, 0), doc
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    predict = f"/deployments/{name}/predict"
    try:
        # two samples held in the model fill the deployment's max_in_flight ...
        holder, held = in_thread(lambda: client.post(predict, json={"inputs": {"text": [f"{first}/a", "b"]}}))
        wait_for(lambda: gate_held(f"{first}/a"), 120, "the held batch to reach the model", interval=0.1)
        # ... so one more sample is refused at once, with when to come back
        refused = client.post(predict, json={"inputs": {"text": ["c"]}})
        assert refused.status_code == 429, refused.text
        assert refused.headers["Retry-After"] == "1"
        assert "max_in_flight is 2" in refused.json()["detail"]
        (first / "release").touch()
        holder.join()
        assert labels(held[0]) == [f"{first}/a"[::-1], "b"]

        # past its timeout a request is answered 504 with the reason ...
        late = client.post(predict, json={"inputs": {"text": [f"{second}/d"]}, "timeout_s": 1})
        assert late.status_code == 504, late.text
        assert "did not answer within 1 s; the request was cancelled" in late.json()["detail"]
        (second / "release").touch()
        # ... and holds nothing afterwards: a request filling max_in_flight again is admitted
        assert labels(client.post(predict, json={"inputs": {"text": ["e", "f"]}})) == ["e", "f"]

        # a body over the predict cap (one NATS message) is refused before it is read
        huge = json.dumps({"inputs": {"text": ["x" * 1_000_001]}})
        too_large = client.post(predict, content=huge, headers={"Content-Type": "application/json"})
        assert too_large.status_code == 413
        assert too_large.json()["detail"].endswith("send fewer samples per request")
    finally:
        for gate in (first, second):
            (gate / "release").touch()
        client.delete(f"/deployments/{name}")
