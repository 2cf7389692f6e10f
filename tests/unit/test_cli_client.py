"""The CLI's HTTP client commands (modelhub.commands, over modelhub.api) against a mocked gateway
(httpx.MockTransport)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from click.testing import CliRunner

from modelhub import api, exitcodes, render
from modelhub.cli import main as cli
from modelhub.commands import base
from modelhub.settings import API_PREFIX, DEFAULT_URL, CliSettings

Handler = Callable[[httpx.Request], httpx.Response]


class FakeGateway:
    """Routes (METHOD, path below /api/v1) to handlers and records every request."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Handler]] = {}
        self.requests: list[httpx.Request] = []

    def on(self, method: str, path: str, *responses: Any, status: int = 200) -> None:
        """Answer with each response in turn (the last one repeats); a response is JSON or a handler."""
        handlers: list[Handler] = [
            cast(Handler, r) if callable(r) else (lambda _req, body=r: httpx.Response(status, json=body))
            for r in responses
        ]
        self.routes[(method, path)] = handlers

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        path = request.url.path.removeprefix(API_PREFIX)
        handlers = self.routes.get((request.method, path))
        if handlers is None:
            return httpx.Response(404, json={"detail": f"no route {request.method} {path}"})
        return (handlers.pop(0) if len(handlers) > 1 else handlers[0])(request)

    def sent(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == API_PREFIX + path]

    def body(self, method: str, path: str) -> Any:
        (request,) = self.sent(method, path)
        return json.loads(request.content)


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeGateway:
    fake = FakeGateway()
    monkeypatch.setattr(base, "TRANSPORT_FACTORY", lambda: httpx.MockTransport(fake))
    monkeypatch.setattr(base, "POLL_INTERVAL", 0)
    monkeypatch.setenv("MODELHUB_URL", "http://gateway.test")
    monkeypatch.setenv("MODELHUB_TOKEN", "tok-123")
    monkeypatch.setenv("MODELHUB_DATA_DIR", str(tmp_path / "data"))
    return fake


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


SCHEMA = {
    "inputs": {"type": "object", "properties": {"image_paths": {"type": "local"}}},
    "outputs": {"type": "object", "properties": {"predictions": {"type": "classification"}}},
}


def job(**kw: Any) -> dict:
    return {
        "id": "j1",
        "dataset": "pics",
        "deployment": "dep",
        "status": "running",
        "total": 3,
        "succeeded": 0,
        "failed": 0,
        **kw,
    }


def sse(*events: dict) -> Handler:
    text = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
    return lambda _req: httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})


# --------------------------------------------------------------------------- connection settings


def test_url_and_token_come_from_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MODELHUB_URL", raising=False)
    monkeypatch.delenv("MODELHUB_TOKEN", raising=False)
    monkeypatch.setenv("MODELHUB_DATA_DIR", str(tmp_path))
    assert CliSettings().gateway_url() == DEFAULT_URL
    assert CliSettings().api_token() is None
    (tmp_path / "state.json").write_text(json.dumps({"gateway_url": "http://127.0.0.1:9123/"}))
    (tmp_path / "admin-token").write_text("admintok\n")
    assert CliSettings().gateway_url() == "http://127.0.0.1:9123"
    assert CliSettings().api_token() == "admintok"
    monkeypatch.setenv("MODELHUB_URL", "http://env:1/api/v1")
    assert CliSettings().gateway_url() == "http://env:1"
    assert CliSettings().gateway_url("http://flag:2") == "http://flag:2"


def test_url_option_on_the_group_and_the_command(gateway: FakeGateway) -> None:
    gateway.on("GET", "/models", {"items": []})
    assert invoke("models", "--url", "http://group.test", "list").exit_code == 0
    assert invoke("models", "--url", "http://group.test", "list", "--url", "http://cmd.test").exit_code == 0
    assert [r.url.host for r in gateway.requests] == ["group.test", "cmd.test"]
    assert all(r.headers["authorization"] == "Bearer tok-123" for r in gateway.requests)


# --------------------------------------------------------------------------- models


def test_models_create_sends_name_description_tags(gateway: FakeGateway) -> None:
    gateway.on("POST", "/models", {"name": "resnet", "tags": ["a", "b"]}, status=201)
    result = invoke("models", "create", "resnet", "--description", "d", "--tag", "a", "--tag", "b")
    assert result.exit_code == 0, result.output
    assert gateway.body("POST", "/models") == {"name": "resnet", "description": "d", "tags": ["a", "b"]}
    assert "created model resnet" in result.stdout


def test_json_flag_prints_the_raw_response(gateway: FakeGateway) -> None:
    model = {"name": "m", "owner": "admin", "versions": [], "sharing": {"everyone": "none", "users": {}}}
    gateway.on("GET", "/models/m", model)
    result = invoke("models", "show", "m", "--json")
    assert json.loads(result.stdout) == model
    readable = invoke("models", "show", "m")
    assert "owner:" in readable.stdout and "everyone=none" in readable.stdout


@pytest.mark.parametrize("schema_as_file", [False, True])
def test_upload_is_multipart_with_file_and_schema(gateway: FakeGateway, tmp_path: Path, schema_as_file: bool) -> None:
    archive = tmp_path / "model.zip"
    archive.write_bytes(b"PK\x03\x04fake-zip-bytes")
    schema_arg = json.dumps(SCHEMA)
    if schema_as_file:
        (tmp_path / "schema.json").write_text(schema_arg)
        schema_arg = str(tmp_path / "schema.json")
    gateway.on("POST", "/models/m/versions", {"version": 2, "sha256": "ab" * 32, "size_bytes": 20}, status=201)

    result = invoke("models", "upload", "m", str(archive), "--schema", schema_arg)

    assert result.exit_code == 0, result.output
    (request,) = gateway.sent("POST", "/models/m/versions")
    assert request.headers["content-type"].startswith("multipart/form-data")
    body = request.content
    assert b'name="file"; filename="model.zip"' in body
    assert b"Content-Type: application/zip" in body
    assert b"PK\x03\x04fake-zip-bytes" in body
    assert b'name="schema"' in body
    schema_part = body.split(b'name="schema"')[1].split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0]
    assert json.loads(schema_part) == SCHEMA
    assert "version 2" in result.stdout and "ab" * 32 in result.stdout and "20" in result.stdout


def test_upload_of_an_mlflow_model_may_leave_the_schema_out_and_state_its_types(
    gateway: FakeGateway, tmp_path: Path
) -> None:
    archive = tmp_path / "mlflow.zip"
    archive.write_bytes(b"PK\x03\x04fake-zip-bytes")
    version = {"version": 1, "sha256": "ab" * 32, "size_bytes": 20, "format": "mlflow"}
    gateway.on("POST", "/models/m/versions", version, status=201)

    args = ("--local-input", "image", "--output-type", "predictions=classification", "--output-type", "p=number")
    result = invoke("models", "upload", "m", str(archive), *args)

    assert result.exit_code == 0, result.output
    (request,) = gateway.sent("POST", "/models/m/versions")
    parts = {
        name.decode(): value
        for name, value in re.findall(
            rb'form-data; name="(\w+)"[^\r]*\r\n(?:[^\r]+\r\n)*\r\n(.*?)\r\n--', request.content, re.S
        )
    }
    assert set(parts) == {"file", "local_inputs", "output_types"}  # no schema part at all
    assert parts["local_inputs"] == b"image" and parts["output_types"] == b"predictions=classification,p=number"
    assert re.search(r"^format: +mlflow$", result.stdout, re.M)


def test_upload_refuses_bad_schema_before_sending(gateway: FakeGateway, tmp_path: Path) -> None:
    (tmp_path / "m.zip").write_bytes(b"PK")
    result = invoke("models", "upload", "m", str(tmp_path / "m.zip"), "--schema", "{not json")
    assert result.exit_code == 2 and "JSON" in result.stderr
    assert gateway.requests == []


def test_deploy_sends_defaults_and_waits_until_running(gateway: FakeGateway) -> None:
    dep = {"name": "dep", "model": "m", "status": "pending", "num_replicas": 2, "ready_replicas": 0}
    gateway.on("POST", "/models/m/deployments", dep, status=202)
    gateway.on(
        "GET",
        "/deployments/dep",
        {**dep, "status": "deploying"},
        {**dep, "status": "deploying"},
        {**dep, "status": "running", "ready_replicas": 2},
    )

    result = invoke("models", "deploy", "m", "--name", "dep", "--num-replicas", "2", "--custom-env")

    assert result.exit_code == 0, result.output
    assert gateway.body("POST", "/models/m/deployments") == {
        "name": "dep",
        "model_type": "inference",
        "mini_batch": 1,
        "num_replicas": 2,
        "num_gpus": 0,
        "custom_env": True,
    }
    assert len(gateway.sent("GET", "/deployments/dep")) == 3
    assert "deploying" in result.stderr and "running (2/2 replicas ready)" in result.stdout


def test_deploy_failure_prints_the_error_and_exits_1(gateway: FakeGateway) -> None:
    gateway.on("POST", "/models/m/deployments", {"name": "dep", "status": "pending"}, status=202)
    gateway.on("GET", "/deployments/dep", {"name": "dep", "status": "failed", "error": "ImportError: torch"})
    result = invoke("models", "deploy", "m", "--name", "dep", "--version", "3")
    assert result.exit_code == 1
    assert gateway.body("POST", "/models/m/deployments")["version"] == 3
    assert "ImportError: torch" in result.stderr


def test_deploy_no_wait_does_not_poll(gateway: FakeGateway) -> None:
    gateway.on("POST", "/models/m/deployments", {"name": "dep", "status": "pending"}, status=202)
    result = invoke("models", "deploy", "m", "--name", "dep", "--no-wait", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["status"] == "pending"
    assert not gateway.sent("GET", "/deployments/dep")


def test_share_merges_into_the_current_sharing(gateway: FakeGateway) -> None:
    gateway.on("GET", "/models/m", {"name": "m", "sharing": {"everyone": "run", "users": {"dave": "run"}}})
    gateway.on("PUT", "/models/m/sharing", lambda req: httpx.Response(200, content=req.content))

    result = invoke("models", "share", "m", "--user", "bob=edit", "--user", "carol=run", "--user", "dave=none")

    assert result.exit_code == 0, result.output
    assert gateway.body("PUT", "/models/m/sharing") == {"everyone": "run", "users": {"bob": "edit", "carol": "run"}}
    assert "everyone: run" in result.stdout and "bob: edit" in result.stdout
    invoke("models", "share", "m", "--everyone", "none")
    assert json.loads(gateway.sent("PUT", "/models/m/sharing")[-1].content)["everyone"] == "none"


def test_share_rejects_unknown_access(gateway: FakeGateway) -> None:
    result = invoke("models", "share", "m", "--user", "bob=admin")
    assert result.exit_code == 2 and gateway.requests == []


# --------------------------------------------------------------------------- errors


def test_api_error_is_printed_and_exits_with_its_class(gateway: FakeGateway) -> None:
    gateway.on("POST", "/models", {"detail": "model 'm' already exists"}, status=409)
    result = invoke("models", "create", "m")
    assert result.exit_code == exitcodes.CONFLICT
    assert result.stderr.strip() == "Error (409): model 'm' already exists"
    assert result.stdout == ""


def test_validation_errors_are_joined_readably(gateway: FakeGateway) -> None:
    detail = [
        {"loc": ["body", "name"], "msg": "String should have at least 1 character", "type": "x"},
        {"loc": ["body", "tags", 0], "msg": "Input should be a valid string", "type": "y"},
    ]
    gateway.on("POST", "/models", {"detail": detail}, status=422)
    result = invoke("models", "create", "m")
    assert result.exit_code == exitcodes.INVALID
    assert result.stderr.strip() == (
        "Error (422): name: String should have at least 1 character; tags.0: Input should be a valid string"
    )


def test_missing_resource_and_non_json_errors(gateway: FakeGateway) -> None:
    gateway.on("GET", "/deployments", lambda _req: httpx.Response(502, text="Bad Gateway"))
    result = invoke("deployments", "show", "nope")
    assert result.exit_code == exitcodes.NOT_FOUND and result.stderr.startswith("Error (404): ")
    result = invoke("deployments", "list")
    assert result.exit_code == exitcodes.SERVER and "Error (502): Bad Gateway" in result.stderr


def test_connection_refused_suggests_modelhub_up(monkeypatch: pytest.MonkeyPatch, gateway: FakeGateway) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    monkeypatch.setattr(base, "TRANSPORT_FACTORY", lambda: httpx.MockTransport(refuse))
    result = invoke("datasets", "list")
    assert result.exit_code == exitcodes.STACK_DOWN
    assert "modelhub up" in result.stderr and "http://gateway.test" in result.stderr


# --------------------------------------------------------------------------- deployments / datasets


def test_predict_sends_inputs(gateway: FakeGateway) -> None:
    gateway.on("POST", "/deployments/dep/predict", {"outputs": {"predictions": [{"label": "cat", "confidence": 0.9}]}})
    result = invoke("deployments", "predict", "dep", "--input", 'image_paths=["/a.png"]', "--input", "k=3")
    assert result.exit_code == 0, result.output
    assert gateway.body("POST", "/deployments/dep/predict") == {"inputs": {"image_paths": ["/a.png"], "k": [3]}}
    assert '"label":"cat"' in result.stdout
    invoke("deployments", "predict", "dep", "--inputs-json", '{"text": ["hi"]}')
    assert json.loads(gateway.sent("POST", "/deployments/dep/predict")[-1].content) == {"inputs": {"text": ["hi"]}}


def test_deployments_show_says_which_route_the_environment_took(gateway: FakeGateway) -> None:
    environment = {
        "route": "pip",
        "file": "environment.yml",
        "packages": ["numpy==1.26.*", "roman==5.2"],
        "skipped": ["python", "pip"],
        "reason": "no conda on the deployer's node",
    }
    gateway.on("GET", "/deployments/dep", {"name": "dep", "custom_env": True, "environment": environment})
    shown = invoke("deployments", "show", "dep")
    assert shown.exit_code == 0, shown.output
    assert (  # the keys' column is as wide as the longest key
        "environment: pip from environment.yml: numpy==1.26.*, roman==5.2 (skipped: python, pip)"
        " - no conda on the deployer's node"
    ) in re.sub(r"^environment: +", "environment: ", shown.stdout, flags=re.M)
    assert json.loads(invoke("deployments", "show", "dep", "--json").stdout)["environment"] == environment
    gateway.on("GET", "/deployments/dep", {"name": "dep", "custom_env": False, "environment": None})
    assert re.search(r"^environment: +-$", invoke("deployments", "show", "dep").stdout, flags=re.M)


def test_datasets_add_expands_directories_and_posts_in_chunks(
    gateway: FakeGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = tmp_path / "imgs"
    (images / "sub").mkdir(parents=True)
    for name in ("b.png", "a.png", "c.png", "notes.txt", ".hidden.png", "sub/d.png"):
        (images / name).write_bytes(b"x")
    (tmp_path / "extra.jpg").write_bytes(b"x")
    gateway.on(
        "POST",
        "/datasets/pics/samples",
        lambda req: httpx.Response(201, json={"added": len(json.loads(req.content)["samples"])}),
    )
    monkeypatch.chdir(tmp_path)

    result = invoke(
        "datasets", "add", "pics", "imgs", "extra.jpg", "--glob", "*.png", "--recursive", "--chunk-size", "2"
    )

    assert result.exit_code == 0, result.output
    chunks = [
        [s["filepath"] for s in json.loads(r.content)["samples"]]
        for r in gateway.sent("POST", "/datasets/pics/samples")
    ]
    expected = [str(images / n) for n in ("a.png", "b.png", "c.png", "sub/d.png")] + [str(tmp_path / "extra.jpg")]
    assert chunks == [expected[0:2], expected[2:4], expected[4:]]
    assert "added 5 samples" in result.stdout


def test_samples_table_truncates_fields_to_the_terminal(gateway: FakeGateway, monkeypatch) -> None:
    monkeypatch.setattr(render, "terminal_width", lambda: 60)
    fields = {"predictions": {"label": "cat" * 30, "confidence": 0.5}}
    gateway.on(
        "GET", "/datasets/pics/samples", {"items": [{"id": "s1", "filepath": "/a.png", "fields": fields}], "total": 7}
    )
    result = invoke("datasets", "samples", "pics", "--limit", "1", "--offset", "3")
    (request,) = gateway.sent("GET", "/datasets/pics/samples")
    assert dict(request.url.params) == {"limit": "1", "offset": "3"}
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "FILEPATH", "FIELDS"]
    assert lines[1].startswith("s1") and '{"predictions"' in lines[1] and lines[1].endswith("…")
    assert all(len(line) <= 60 for line in lines) and "4-4 of 7" in lines[-1]


# --------------------------------------------------------------------------- run / jobs


def test_run_follows_the_event_stream_and_reports_failures(gateway: FakeGateway) -> None:
    gateway.on("POST", "/datasets/pics/jobs", job(status="queued", total=3), status=202)
    gateway.on(
        "GET",
        "/jobs/j1/events",
        sse(job(succeeded=1), job(succeeded=2), job(status="completed", succeeded=2, failed=1)),
    )
    gateway.on("GET", "/jobs/j1/failures", {"items": [{"sample_id": "s3", "error": "output is not a label"}]})

    result = invoke(
        "run", "pics", "--deployment", "dep", "--output", "predictions=pred", "--input", "image_paths=filepath"
    )

    assert gateway.body("POST", "/datasets/pics/jobs") == {
        "deployment": "dep",
        "outputs": {"predictions": "pred"},
        "inputs": {"image_paths": "filepath"},
    }
    assert result.exit_code == exitcodes.JOB_FAILED
    assert "job j1 completed: 2 succeeded, 1 failed" in result.stdout
    assert "s3: output is not a label" in result.stdout
    assert "3/3" in result.stderr and "failed=1" in result.stderr and "succeeded=2" in result.stderr
    assert not gateway.sent("GET", "/jobs/j1")  # followed the stream, never polled


def test_run_exits_0_when_every_sample_succeeded(gateway: FakeGateway) -> None:
    gateway.on("POST", "/datasets/pics/jobs", job(status="queued"), status=202)
    gateway.on("GET", "/jobs/j1/events", sse(job(status="completed", succeeded=3)))
    result = invoke("run", "pics", "--deployment", "dep", "--output", "predictions=pred", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["succeeded"] == 3
    assert "inputs" not in gateway.body("POST", "/datasets/pics/jobs")
    assert "job j1 completed: 3 succeeded, 0 failed" in result.stderr
    assert not gateway.sent("GET", "/jobs/j1/failures")


def test_run_falls_back_to_polling_when_the_stream_breaks(gateway: FakeGateway) -> None:
    gateway.on("POST", "/datasets/pics/jobs", job(status="queued"), status=202)
    gateway.on("GET", "/jobs/j1/events", sse(job(succeeded=1)))  # ends before the job does
    gateway.on("GET", "/jobs/j1", job(succeeded=2), job(status="cancelled", succeeded=2))
    result = invoke("run", "pics", "--deployment", "dep", "--output", "predictions=pred")
    assert len(gateway.sent("GET", "/jobs/j1")) == 2
    assert result.exit_code == exitcodes.JOB_FAILED and "job j1 cancelled: 2 succeeded, 0 failed" in result.stdout


def test_run_no_wait_prints_the_job(gateway: FakeGateway) -> None:
    gateway.on("POST", "/datasets/pics/jobs", job(status="queued"), status=202)
    result = invoke("run", "pics", "--deployment", "dep", "--output", "predictions=pred", "--no-wait")
    assert result.exit_code == 0 and "job j1 queued" in result.stdout
    assert [r.url.path for r in gateway.requests] == ["/api/v1/datasets/pics/jobs"]


def test_run_requires_an_output_mapping(gateway: FakeGateway) -> None:
    result = invoke("run", "pics", "--deployment", "dep", "--output", "predictions")
    assert result.exit_code == 2 and "MODEL_OUTPUT=FIELD" in result.stderr
    assert gateway.requests == []


def test_jobs_commands(gateway: FakeGateway) -> None:
    gateway.on("GET", "/datasets/pics/jobs", {"items": [job(status="completed", succeeded=3)]})
    gateway.on("POST", "/jobs/j1/cancel", lambda _req: httpx.Response(202))
    gateway.on("POST", "/jobs/j1/retry", job(status="queued", total=1), status=202)
    gateway.on("GET", "/jobs/j1/events", sse(job(status="completed", total=1, succeeded=1)))
    assert "j1  completed" in invoke("jobs", "list", "pics").stdout
    assert "cancellation of job j1 requested" in invoke("jobs", "cancel", "j1").stdout
    retried = invoke("jobs", "retry", "j1", "--wait")
    assert retried.exit_code == 0 and "job j1 completed: 1 succeeded, 0 failed" in retried.stdout


def test_users_create_prints_the_token(gateway: FakeGateway) -> None:
    gateway.on("POST", "/users", {"username": "bob", "token": "secret-bob"}, status=201)
    result = invoke("users", "create", "bob")
    assert gateway.body("POST", "/users") == {"username": "bob"}
    assert "secret-bob" in result.stdout


def test_events_handle_multiline_data_comments_ids_and_garbage() -> None:
    text = ': keep-alive\nevent: job\nid: 1\ndata: {"a":\ndata: 1}\n\ndata: not json\n\n: ping\n\ndata: {"b": 2}\n\n'
    stream = httpx.MockTransport(
        lambda _req: httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})
    )
    with api.ApiClient("http://hub.test", token="t", transport=stream) as hub:
        assert list(hub.events("/jobs/j1/events")) == [{"a": 1}, {"b": 2}]


def test_export_streams_to_a_file_and_counts_the_samples(gateway: FakeGateway, tmp_path: Path) -> None:
    body = "id,filepath,pet\n1,/a.png,cat\n2,/b.png,dog\n"
    gateway.on("GET", "/datasets/pets/export", lambda req: httpx.Response(200, text=body))
    out = tmp_path / "pets.csv"
    result = CliRunner().invoke(
        cli, ["datasets", "export", "pets", "--format", "csv", "--fields", "pet", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text() == body and "exported 2 samples of pets" in result.output
    (request,) = gateway.sent("GET", "/datasets/pets/export")
    assert dict(request.url.params) == {"format": "csv", "fields": "pet"}
    assert not (tmp_path / "pets.csv.part").exists()


def test_export_failure_leaves_no_file_and_exits_1(gateway: FakeGateway, tmp_path: Path) -> None:
    gateway.on("GET", "/datasets/gone/export", {"detail": "dataset 'gone' not found"}, status=404)
    out = tmp_path / "gone.jsonl"
    result = CliRunner().invoke(cli, ["datasets", "export", "gone", "-o", str(out)])
    assert result.exit_code == exitcodes.NOT_FOUND and "dataset 'gone' not found" in result.output
    assert not out.exists() and not (tmp_path / "gone.jsonl.part").exists()


def test_samples_filters_become_query_parameters(gateway: FakeGateway) -> None:
    gateway.on("GET", "/datasets/pets/samples", {"items": [], "total": 0})
    result = CliRunner().invoke(
        cli,
        [
            "datasets",
            "samples",
            "pets",
            "--field",
            "pred",
            "--label",
            "cat",
            "--min-confidence",
            "0.5",
            "--missing",
            "other",
        ],
    )
    assert result.exit_code == 0, result.output
    (request,) = gateway.sent("GET", "/datasets/pets/samples")
    assert dict(request.url.params) == {
        "limit": "20",
        "offset": "0",
        "field": "pred",
        "label": "cat",
        "min_confidence": "0.5",
        "missing": "other",
    }


def test_lifecycle_commands_call_their_routes(gateway: FakeGateway) -> None:
    gateway.on("DELETE", "/users/bob", lambda req: httpx.Response(204))
    gateway.on(
        "GET", "/users", {"items": [{"username": "bob", "is_admin": False, "disabled": True, "created_at": None}]}
    )
    gateway.on("DELETE", "/datasets/pets/fields/pred", {"removed": 7})
    gateway.on("POST", "/datasets/pets/samples/delete", {"deleted": 2})
    gateway.on("DELETE", "/models/m/versions/3", lambda req: httpx.Response(204))
    runner = CliRunner()
    assert "disabled user bob" in runner.invoke(cli, ["users", "delete", "bob", "--yes"]).output
    assert "True" in runner.invoke(cli, ["users", "list"]).output
    assert (
        "removed pred from 7 samples" in runner.invoke(cli, ["datasets", "remove-field", "pets", "pred", "-y"]).output
    )
    assert "deleted 2 samples" in runner.invoke(cli, ["datasets", "delete-samples", "pets", "a", "b", "--yes"]).output
    assert gateway.body("POST", "/datasets/pets/samples/delete") == {"ids": ["a", "b"]}
    assert "deleted m version 3" in runner.invoke(cli, ["models", "delete-version", "m", "3", "--yes"]).output


def test_deploy_and_predict_pass_the_online_options_only_when_given(gateway: FakeGateway) -> None:
    gateway.on("POST", "/models/m/deployments", {"name": "dep", "status": "pending"}, status=202)
    invoke("models", "deploy", "m", "--name", "dep", "--no-wait", "--batch-wait-ms", "5", "--max-in-flight", "64")
    body = gateway.body("POST", "/models/m/deployments")
    assert (body["batch_wait_ms"], body["max_in_flight"]) == (5, 64)
    invoke("models", "deploy", "m", "--name", "dep", "--no-wait")
    defaults = json.loads(gateway.sent("POST", "/models/m/deployments")[-1].content)
    assert not {"batch_wait_ms", "max_in_flight"} & set(defaults)  # the server's defaults apply
    gateway.on("POST", "/deployments/dep/predict", {"outputs": {"n": [1]}})
    invoke("deployments", "predict", "dep", "--input", "k=[3]", "--timeout", "2.5")
    assert gateway.body("POST", "/deployments/dep/predict") == {"inputs": {"k": [3]}, "timeout_s": 2.5}


# --------------------------------------------------------------------------- habits: version, exit codes


def test_version_is_the_installed_packages() -> None:
    from importlib.metadata import version

    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"modelhub, version {version('modelhub')}"


def test_exit_codes_are_distinct_and_api_errors_map_by_class() -> None:
    codes = [
        exitcodes.OK,
        exitcodes.ERROR,
        exitcodes.USAGE,
        exitcodes.STACK_DOWN,
        exitcodes.JOB_FAILED,
        exitcodes.NOT_FOUND,
        exitcodes.FORBIDDEN,
        exitcodes.CONFLICT,
        exitcodes.INVALID,
        exitcodes.SERVER,
        exitcodes.INTERRUPTED,
    ]
    assert len(set(codes)) == len(codes) and exitcodes.USAGE == 2  # click's own
    by_status = {s: exitcodes.exit_code_for_status(s) for s in (400, 401, 403, 404, 409, 413, 422, 429, 500, 503)}
    assert by_status == {
        400: exitcodes.INVALID,
        401: exitcodes.FORBIDDEN,
        403: exitcodes.FORBIDDEN,
        404: exitcodes.NOT_FOUND,
        409: exitcodes.CONFLICT,
        413: exitcodes.INVALID,
        422: exitcodes.INVALID,
        429: exitcodes.SERVER,
        500: exitcodes.SERVER,
        503: exitcodes.SERVER,
    }


def test_errors_are_json_under_the_json_flag(monkeypatch: pytest.MonkeyPatch, gateway: FakeGateway) -> None:
    result = invoke("models", "show", "nope", "--json")
    assert result.exit_code == exitcodes.NOT_FOUND and result.stdout == ""
    assert json.loads(result.stderr) == {"error": "Error (404): no route GET /models/nope", "status": 404}

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    monkeypatch.setattr(base, "TRANSPORT_FACTORY", lambda: httpx.MockTransport(refuse))
    result = invoke("models", "list", "--json")
    error = json.loads(result.stderr)
    assert result.exit_code == exitcodes.STACK_DOWN and error["status"] is None and "modelhub up" in error["error"]


# --------------------------------------------------------------------------- habits: jobs follow, jobs list


def test_jobs_follow_shows_progress_and_exits_by_outcome(gateway: FakeGateway) -> None:
    gateway.on("GET", "/jobs/j1", job(status="running", succeeded=1))
    gateway.on("GET", "/jobs/j1/events", sse(job(succeeded=2), job(status="completed", succeeded=3)))
    result = invoke("jobs", "follow", "j1")
    assert result.exit_code == exitcodes.OK, result.output
    assert "job j1 completed: 3 succeeded, 0 failed" in result.stdout and "3/3" in result.stderr
    (stream,) = gateway.sent("GET", "/jobs/j1/events")
    assert stream.headers["accept"] == "text/event-stream"

    gateway.on("GET", "/jobs/j1/events", sse(job(status="completed", succeeded=2, failed=1)))
    gateway.on("GET", "/jobs/j1/failures", {"items": [{"sample_id": "s3", "error": "boom"}]})
    result = invoke("jobs", "follow", "j1", "--json")
    assert result.exit_code == exitcodes.JOB_FAILED and json.loads(result.stdout)["failed"] == 1


def test_jobs_follow_of_an_ended_job_does_not_open_the_stream(gateway: FakeGateway) -> None:
    gateway.on("GET", "/jobs/j1", job(status="failed", succeeded=0, failed=3))
    gateway.on("GET", "/jobs/j1/failures", {"items": []})
    assert invoke("jobs", "follow", "j1").exit_code == exitcodes.JOB_FAILED
    assert not gateway.sent("GET", "/jobs/j1/events")


def test_jobs_list_without_a_dataset_merges_every_datasets_jobs(gateway: FakeGateway) -> None:
    gateway.on("GET", "/datasets", {"items": [{"name": "a"}, {"name": "gone"}, {"name": "b"}]})
    gateway.on("GET", "/datasets/a/jobs", {"items": [job(id="j1", dataset="a", created_at="2026-01-01T00:00:00")]})
    gateway.on("GET", "/datasets/gone/jobs", {"detail": "dataset 'gone' not found"}, status=404)  # deleted meanwhile
    gateway.on("GET", "/datasets/b/jobs", {"items": [job(id="j2", dataset="b", created_at="2026-02-01T00:00:00")]})
    result = invoke("jobs", "list", "--json")
    assert result.exit_code == 0, result.output
    assert [j["id"] for j in json.loads(result.stdout)["items"]] == ["j2", "j1"]  # newest first
    table = invoke("jobs", "list").stdout.splitlines()
    assert "DATASET" in table[0] and table[1].startswith("j2") and " b " in table[1]


# --------------------------------------------------------------------------- habits: --yes on deletes


DELETES = [
    (["models", "delete", "m"], "DELETE", "/models/m"),
    (["models", "delete-version", "m", "2"], "DELETE", "/models/m/versions/2"),
    (["deployments", "delete", "d"], "DELETE", "/deployments/d"),
    (["datasets", "delete", "ds"], "DELETE", "/datasets/ds"),
    (["datasets", "remove-field", "ds", "f"], "DELETE", "/datasets/ds/fields/f"),
    (["datasets", "delete-samples", "ds", "s1"], "POST", "/datasets/ds/samples/delete"),
    (["users", "delete", "bob"], "DELETE", "/users/bob"),
]


@pytest.mark.parametrize(("args", "method", "path"), DELETES)
def test_a_delete_without_yes_off_a_terminal_is_refused(gateway: FakeGateway, args, method, path) -> None:
    gateway.on(method, path, {"removed": 1, "deleted": 1})
    result = invoke(*args)
    assert result.exit_code == exitcodes.USAGE and "without --yes" in result.stderr
    assert gateway.requests == []
    assert invoke(*args, "--yes").exit_code == 0 and len(gateway.sent(method, path)) == 1


def test_a_delete_on_a_terminal_asks_first(monkeypatch: pytest.MonkeyPatch, gateway: FakeGateway) -> None:
    monkeypatch.setattr(base, "stdin_is_terminal", lambda: True)
    gateway.on("DELETE", "/datasets/ds", lambda _req: httpx.Response(204))
    declined = CliRunner().invoke(cli, ["datasets", "delete", "ds"], input="n\n")
    assert declined.exit_code == exitcodes.ERROR and "Delete dataset ds" in declined.output
    assert gateway.requests == []
    accepted = CliRunner().invoke(cli, ["datasets", "delete", "ds"], input="y\n")
    assert accepted.exit_code == 0 and "deleted dataset ds" in accepted.stdout
    assert len(gateway.sent("DELETE", "/datasets/ds")) == 1


# --------------------------------------------------------------------------- habits: completion


def complete(*words: str) -> list[str]:
    env = {
        "_MODELHUB_COMPLETE": "bash_complete",
        "COMP_WORDS": " ".join(["modelhub", *words]),
        "COMP_CWORD": str(len(words)),
    }
    result = CliRunner().invoke(cli, [], env=env, prog_name="modelhub")
    assert result.exit_code == 0, result.output
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]  # "type,value" lines


def test_shell_completion_completes_names_from_the_api(monkeypatch: pytest.MonkeyPatch, gateway: FakeGateway) -> None:
    gateway.on("GET", "/models", {"items": [{"name": "resnet"}, {"name": "rnn"}, {"name": "bert"}]})
    gateway.on("GET", "/deployments", {"items": [{"name": "resnet-prod"}]})
    gateway.on("GET", "/datasets", {"items": [{"name": "pets"}, {"name": "cars"}]})
    assert complete("models", "show", "r") == ["resnet", "rnn"]
    assert complete("deployments", "delete", "") == ["resnet-prod"]
    assert complete("run", "p") == ["pets"]
    assert complete("datasets", "--url", "http://other.test", "samples", "c") == ["cars"]
    assert gateway.requests[-1].url.host == "other.test"

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    monkeypatch.setattr(base, "TRANSPORT_FACTORY", lambda: httpx.MockTransport(refuse))
    assert complete("models", "show", "r") == []  # a stack that is down completes nothing, quietly


# --------------------------------------------------------------------------- habits: login and profiles


@pytest.fixture
def logged_out(monkeypatch: pytest.MonkeyPatch, gateway: FakeGateway, tmp_path: Path) -> Path:
    """No URL or token in the environment; the config file's path."""
    monkeypatch.delenv("MODELHUB_URL")
    monkeypatch.delenv("MODELHUB_TOKEN")
    return tmp_path / "xdg" / "modelhub" / "config.toml"


def test_login_stores_a_0600_profile_that_commands_use(
    monkeypatch: pytest.MonkeyPatch, gateway: FakeGateway, logged_out: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    gateway.on("GET", "/users/me", {"username": "alice"})
    gateway.on("GET", "/models", {"items": []})
    result = CliRunner().invoke(cli, ["login", "http://hub.test/api/v1/"], input="tok-alice\n")
    assert result.exit_code == 0, result.output
    assert "as alice" in result.stdout and (logged_out.stat().st_mode & 0o777) == 0o600
    assert gateway.requests[-1].headers["authorization"] == "Bearer tok-alice"

    assert invoke("models", "list").exit_code == 0
    used = gateway.requests[-1]
    assert used.url.host == "hub.test" and used.headers["authorization"] == "Bearer tok-alice"

    monkeypatch.setenv("MODELHUB_URL", "http://env.test")  # the environment wins over the profile ...
    assert invoke("models", "list").exit_code == 0
    assert gateway.requests[-1].url.host == "env.test"
    assert "authorization" not in gateway.requests[-1].headers  # ... and the profile's token stays home


def test_named_profiles_are_kept_apart(
    monkeypatch: pytest.MonkeyPatch, gateway: FakeGateway, logged_out: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    gateway.on("GET", "/models", {"items": []})
    runner = CliRunner()
    assert runner.invoke(cli, ["login", "http://one.test", "--no-verify"], input="t1\n").exit_code == 0
    assert (
        runner.invoke(cli, ["login", "http://two.test", "--profile", "work", "--no-verify"], input="t2\n").exit_code
        == 0
    )
    assert gateway.requests == []  # --no-verify asks nothing
    assert invoke("--profile", "work", "models", "list").exit_code == 0
    assert (gateway.requests[-1].url.host, gateway.requests[-1].headers["authorization"]) == ("two.test", "Bearer t2")
    monkeypatch.setenv("MODELHUB_PROFILE", "default")
    assert invoke("models", "list").exit_code == 0
    assert (gateway.requests[-1].url.host, gateway.requests[-1].headers["authorization"]) == ("one.test", "Bearer t1")
    assert invoke("models", "list", "--url", "http://one.test").exit_code == 0  # a flag naming the same hub
    assert gateway.requests[-1].headers["authorization"] == "Bearer t1"


def test_login_with_a_refused_token_stores_nothing(
    monkeypatch: pytest.MonkeyPatch, gateway: FakeGateway, logged_out: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    gateway.on("GET", "/users/me", {"detail": "invalid token"}, status=401)
    result = CliRunner().invoke(cli, ["login", "http://hub.test"], input="wrong\n")
    assert result.exit_code == exitcodes.FORBIDDEN and "invalid token" in result.stderr
    assert not logged_out.exists()
