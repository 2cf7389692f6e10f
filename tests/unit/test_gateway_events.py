"""A job's progress stream (`GET /jobs/{id}/events`, served by sse-starlette): keep-alive comments,
an `id:` on every event counting up, resume from `Last-Event-ID`, and the web UI's reader
(static/api.js) taking the stream as the gateway writes it. Driven through the whole app that
`build_app` wires (no lifespan: neither MongoDB nor NATS), the store's reads faked."""

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from httpx_sse import EventSource, ServerSentEvent

from modelhub.api import ApiClient, GatewayError
from modelhub_contracts import queue
from modelhub_contracts.documents import Job, JobStatus, User
from modelhub_gateway.api.routes import jobs as job_routes
from modelhub_gateway.app import build_app
from modelhub_gateway.auth import hash_token
from modelhub_gateway.settings import GatewaySettings

TOKEN = "ann-token"
NOW = datetime(2026, 11, 27, tzinfo=UTC)
ANN = User(_id="ann", username="ann", is_admin=False, token_hash=hash_token(TOKEN), created_at=NOW)
API_JS = Path(__file__).resolve().parents[2] / "services/gateway/modelhub_gateway/static/api.js"


def job(status: str, succeeded: int) -> Job:
    return Job(
        _id="j1",
        dataset="photos",
        until_sample_id="s9",
        deployment="d",
        model="digits",
        version=1,
        inputs={"image": "filepath"},
        outputs={"label": "pred"},
        status=JobStatus(status),
        attempt=1,
        total=3,
        succeeded=succeeded,
        failed=0,
        progress=succeeded / 3,
        error=None,
        created_by="ann",
        owner="ann",
        created_at=NOW,
        started_at=NOW,
        finished_at=NOW if status == "completed" else None,
    )


class Timeline:
    """What `store.job` answers, read by read: each document in turn, the last one from then on."""

    def __init__(self, *docs: Job) -> None:
        self.docs, self.reads = list(docs), 0

    async def job(self, job_id: str) -> Job | None:
        doc = self.docs[min(self.reads, len(self.docs) - 1)]
        self.reads += 1
        return doc if job_id == doc["_id"] else None


@pytest.fixture
def follow(tmp_path, monkeypatch):
    """`follow(timeline, **headers)`: the stream's raw text for a job that goes through `timeline`
    (the route's own lookup of the job is its first read)."""
    app = build_app(GatewaySettings(data_dir=tmp_path, admin_token="x", read_cache_seconds=0))

    async def user_by_token_hash(digest: str) -> User | None:
        return ANN if digest == ANN["token_hash"] else None

    async def no_tasks(db: Any, match: dict) -> dict[str, int]:
        return {"waiting": 0, "in_flight": 0}

    monkeypatch.setattr(app.state.store, "user_by_token_hash", user_by_token_hash)
    monkeypatch.setattr(queue, "counts", no_tasks)
    monkeypatch.setattr(job_routes, "SSE_POLL_SECONDS", 0.02)

    def run(timeline: Timeline, **headers: str) -> str:
        monkeypatch.setattr(app.state.store, "job", timeline.job)
        client = TestClient(app)  # not entered: no lifespan
        answer = client.get("/api/v1/jobs/j1/events", headers={"Authorization": f"Bearer {TOKEN}", **headers})
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
        return answer.text

    return run


def source(text: str) -> EventSource:
    """The stream as httpx-sse (the CLI's reader) sees it."""
    return EventSource(httpx.Response(200, headers={"content-type": "text/event-stream"}, content=text.encode()))


def cli_events(text: str) -> list[Any]:
    """The payloads the CLI's client yields for a stream the gateway sent."""
    answer = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=text.encode())
    with ApiClient("http://hub", "t", transport=httpx.MockTransport(lambda _: answer)) as api:
        return list(api.events("/jobs/j/events"))


def events(text: str) -> list[ServerSentEvent]:
    """The events that carry data (httpx-sse also hands on a comment's block as an empty event
    under the last id; the spec's readers, EventSource among them, dispatch nothing for it)."""
    return [e for e in source(text).iter_sse() if e.data]


def test_each_state_is_an_event_whose_id_counts_up_from_one(follow):
    text = follow(Timeline(job("running", 0), job("running", 0), job("running", 1), job("completed", 3)))
    found = events(text)
    assert [e.id for e in found] == ["1", "2", "3"]
    assert [(e.event, e.json()["status"], e.json()["succeeded"]) for e in found] == [
        ("job", "running", 0),
        ("job", "running", 1),
        ("job", "completed", 3),
    ]
    assert "id: 1\nevent: job\ndata: {" in text  # LF lines, one `data:` line of JSON per event


def test_a_quiet_stream_carries_keep_alive_comments(follow, monkeypatch):
    monkeypatch.setattr(job_routes, "SSE_PING_SECONDS", 0.05)
    text = follow(Timeline(*[job("running", 0)] * 20, job("completed", 3)))
    pings = [line for line in text.splitlines() if line.startswith(": ping")]
    assert pings, text
    assert [e.id for e in events(text)] == ["1", "2"]  # the comments are no events
    assert [j["status"] for j in cli_events(text)] == ["running", "completed"]  # nor to the CLI


def test_a_resumed_stream_starts_with_the_job_now_and_counts_on_from_the_last_id(follow):
    text = follow(Timeline(job("running", 1), job("running", 2), job("completed", 3)), **{"Last-Event-ID": "7"})
    found = events(text)
    assert [(e.id, e.json()["succeeded"]) for e in found] == [("8", 2), ("9", 3)]


@pytest.mark.parametrize("last", ["", "abc", "-3", "1.5", "1" * 19])
def test_a_last_event_id_that_is_not_ours_starts_the_count_again(follow, last):
    found = events(follow(Timeline(job("completed", 3)), **{"Last-Event-ID": last}))
    assert [e.id for e in found] == ["1"]


def test_an_ended_job_gives_one_event_and_the_stream_closes(follow):
    found = events(follow(Timeline(job("completed", 3))))
    assert [(e.id, e.json()["status"]) for e in found] == [("1", "completed")]


# The web UI's reader, run by Node on the real api.js over the bytes the gateway wrote
READ_WITH_API_JS = """
const { api } = await import(process.argv[1]);
const body = process.argv[2];
globalThis.localStorage = { getItem: () => "t" };
globalThis.fetch = async () => {
  // in small pieces: an event (and a CRLF) may be cut anywhere between two reads
  const pieces = body.match(/[\\s\\S]{1,7}/g) || [];
  const stream = new ReadableStream({
    pull(controller) {
      const piece = pieces.shift();
      if (piece === undefined) controller.close();
      else controller.enqueue(new TextEncoder().encode(piece));
    },
  });
  return new Response(stream, { status: 200 });
};
const seen = [];
await api("GET", "/jobs/j1/events", undefined, { onEvent: (job) => seen.push(job) });
console.log(JSON.stringify(seen));
"""


def read_in_the_ui(tmp_path: Path, body: str) -> list[dict[str, Any]]:
    module = tmp_path / "api.mjs"  # an ES module whatever Node's default for .js
    module.write_text(API_JS.read_text())
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, "--input-type=module", "-e", READ_WITH_API_JS, module.as_uri(), body],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js runs the web UI's module")
def test_the_web_ui_reads_the_stream_skipping_comments_and_ids(follow, monkeypatch, tmp_path):
    monkeypatch.setattr(job_routes, "SSE_PING_SECONDS", 0.05)
    text = follow(Timeline(*[job("running", 0)] * 10, job("running", 1), job("completed", 3)))
    assert ": ping" in text and "id: " in text
    expected = [(e.json()["status"], e.json()["succeeded"]) for e in events(text)]
    assert expected == [("running", 0), ("running", 1), ("completed", 3)]
    for body in (text, text.replace("\n", "\r\n"), text.replace("\n", "\r")):
        seen = read_in_the_ui(tmp_path, body)
        assert [(j["status"], j["succeeded"]) for j in seen] == expected


class CutStream(httpx.SyncByteStream):
    """A body that sends `text` and then breaks, as a gateway that dies mid-stream does."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __iter__(self):
        yield self.text.encode()
        raise httpx.ReadError("connection reset")


def test_the_cli_resumes_a_cut_stream_from_the_last_event_id_and_sees_no_event_twice(monkeypatch):
    monkeypatch.setattr("modelhub.api.time.sleep", lambda _: None)
    sent: list[str | None] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("Last-Event-ID"))
        head = {"content-type": "text/event-stream"}
        if len(sent) == 1:
            body = 'id: 1\nevent: job\ndata: {"n": 1}\n\nid: 2\nevent: job\ndata: {"n": 2}\n\n'
            return httpx.Response(200, headers=head, stream=CutStream(body))
        if len(sent) == 2:  # the gateway is restarting: the reconnect itself fails once
            raise httpx.ConnectError("refused")
        return httpx.Response(200, headers=head, content=b'id: 3\nevent: job\ndata: {"n": 3}\n\n')

    with ApiClient("http://hub", "t", transport=httpx.MockTransport(gateway)) as api:
        assert [e["n"] for e in api.events("/jobs/j/events")] == [1, 2, 3]
    assert sent == [None, "2", "2"]


def test_the_cli_gives_up_after_its_reconnects_in_a_row_fail(monkeypatch):
    monkeypatch.setattr("modelhub.api.time.sleep", lambda _: None)
    tries: list[int] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        tries.append(1)
        raise httpx.ConnectError("refused")

    with ApiClient("http://hub", "t", transport=httpx.MockTransport(gateway)) as api, pytest.raises(GatewayError):
        list(api.events("/jobs/j/events"))
    assert len(tries) == ApiClient.RESUME_TRIES + 1
