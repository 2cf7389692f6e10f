"""The committed AsyncAPI document is what the services' brokers declare, and the gateway serves it."""

import importlib.util
import inspect
import json
from pathlib import Path
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient

from modelhub_contracts import events, subjects
from modelhub_gateway.api import asyncapi_page
from modelhub_gateway.app import build_app
from modelhub_gateway.settings import GatewaySettings

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("asyncapi_script", ROOT / "scripts" / "asyncapi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated():
    gen = _generator()
    return gen, gen.document()


def test_the_committed_document_is_the_one_the_code_generates(generated):
    gen, doc = generated
    yaml_text, json_text = gen.rendered(doc)
    assert gen.YAML_PATH.read_text() == yaml_text, "docs/asyncapi.yaml is stale: run `make asyncapi`"
    assert gen.JSON_PATH.read_text() == json_text, "the gateway's asyncapi.json is stale: run `make asyncapi`"


def _operations(doc) -> set[tuple[str, str, str]]:
    """(service, action, subject) of every operation."""
    found = set()
    for op in doc["operations"].values():
        key = unquote(op["channel"]["$ref"].rsplit("/", 1)[-1])
        channel, service = doc["channels"][key], key.split(":", 1)[0]
        found.add((service, op["action"], channel["address"]))
    return found


def test_every_event_is_sent_by_someone_and_every_subscriber_is_visible(generated):
    _, doc = generated
    assert doc["asyncapi"] == "3.0.0"
    ops = _operations(doc)
    sent = {s for _, action, s in ops if action == "send"}
    received = {s for _, action, s in ops if action == "receive"}
    for subject in (
        subjects.DEPLOYMENT_REQUESTED,
        subjects.DEPLOYMENT_STOP_REQUESTED,
        subjects.JOB_SUBMITTED,
        subjects.JOB_SCHEDULED,
        subjects.JOB_REFUSED,
        subjects.JOB_CANCELLED,
        subjects.TASK_SCHEDULED,
        subjects.SAMPLE_ANNOTATED,
    ):
        assert subject in sent, subject
    # the registry registered its handlers in a start-up hook once, where no document could see them
    assert ("registry", "receive", subjects.RPC_CREATE_MODEL) in ops
    assert ("inference-worker", "receive", subjects.RPC_PING.format(service="inference-worker")) in ops
    assert ("gateway", "send", subjects.RPC_PREDICT) in ops
    # JobCancelled is informational: sent, received by no service, and the document says so
    assert subjects.JOB_CANCELLED not in received
    assert "Informational" in doc["components"]["schemas"]["JobCancelled"]["description"]


def test_every_event_payload_carries_its_schema_version(generated):
    _, doc = generated
    schemas = doc["components"]["schemas"]
    event_classes = [
        c
        for _, c in inspect.getmembers(events, inspect.isclass)
        if issubclass(c, events.Event) and c is not events.Event
    ]
    assert len(event_classes) >= 8
    for cls in event_classes:
        assert "schema_version" in schemas[cls.__name__]["properties"], cls.__name__


def test_the_gateway_serves_the_document_and_a_page_without_a_token(tmp_path):
    app = build_app(GatewaySettings(data_dir=tmp_path, admin_token="x"))
    client = TestClient(app)  # no lifespan: these routes need neither NATS nor MongoDB
    served = client.get("/api/v1/asyncapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads(_generator().JSON_PATH.read_text())
    page = client.get("/api/v1/asyncapi")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert subjects.JOB_SUBMITTED in page.text and "id='JobSubmitted'" in page.text
    assert "http" not in page.text.replace("http-equiv", "").split("<body>")[0]  # nothing fetched from elsewhere


def test_the_page_lists_who_sends_and_who_receives_each_subject():
    doc = {
        "asyncapi": "3.0.0",
        "info": {"title": "t", "version": "1"},
        "channels": {
            "a:send:s": {"address": "s", "messages": {"M": {"$ref": "#/components/messages/m1"}}},
            "b:receive:s": {"address": "s", "description": "b <folds> it", "messages": {}},
        },
        "operations": {
            "a:send:s": {"action": "send", "channel": {"$ref": "#/channels/a:send:s"}},
            "b:receive:s": {"action": "receive", "channel": {"$ref": "#/channels/b:receive:s"}},
        },
        "components": {
            "messages": {"m1": {"payload": {"$ref": "#/components/schemas/P"}}},
            "schemas": {"P": {"properties": {"x": {"type": "integer", "default": 1, "description": "an x"}}}},
        },
    }
    html = asyncapi_page.render(doc)
    row = html.split("<code>s</code>")[1].split("</tr>")[0]
    assert "class='send'>a<" in row and "class='receive'>b<" in row and "href='#P'" in row
    assert "b &lt;folds&gt; it" in row  # escaped
    assert "id='P'" in html and "an x" in html and "default <code>1</code>" in html
