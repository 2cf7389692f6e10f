"""The HTTP contract says its own rules in the served OpenAPI document, where generated clients and
fuzzers read them: which parameter needs which, what a form field's text must be, which statuses a
route answers, and how the job stream resumes."""

import dataclasses
import json

import pytest
from jsonschema import Draft202012Validator

from modelhub_gateway.app import build_app
from modelhub_gateway.samples import InvalidFilter, SampleFilter
from modelhub_gateway.schemas import DeploymentCreate
from modelhub_gateway.settings import GatewaySettings

GOOD_MODEL_SCHEMA = {
    "inputs": {"type": "object", "properties": {"image": {"type": "local"}}},
    "outputs": {"type": "object", "properties": {"label": {"type": "classification"}}},
}


@pytest.fixture(scope="module")
def document(tmp_path_factory) -> dict:
    app = build_app(GatewaySettings(data_dir=tmp_path_factory.mktemp("data"), admin_token="x"))
    return app.openapi()


def operation(document: dict, method: str, path: str) -> dict:
    return document["paths"][f"/api/v1{path}"][method]


def test_a_label_or_confidence_filter_declares_that_it_needs_field(document):
    listing = operation(document, "get", "/datasets/{name}/samples")
    needs = {k: v for k, v in listing["x-dependentRequired"].items() if v == ["field"]}  # evaluation's: elsewhere
    assert needs == {"label": ["field"], "min_confidence": ["field"], "max_confidence": ["field"]}
    assert "each needs `field`" in listing["description"] and "422" in listing["description"]
    assert {p["name"] for p in listing["parameters"]} >= {"field", *needs}
    alone = {"label": SampleFilter(label="cat"), "min_confidence": SampleFilter(min_confidence=0.5)}
    alone["max_confidence"] = SampleFilter(max_confidence=0.5)
    for name in needs:  # the route refuses exactly what the declaration says
        with pytest.raises(InvalidFilter, match="needs `field`"):
            alone[name].query("d")
        assert dataclasses.replace(alone[name], field="pred").query("d")["$or"]


def test_min_replicas_without_max_replicas_is_declared_on_the_deploy_body(document):
    body = operation(document, "post", "/models/{name}/deployments")["requestBody"]["content"]["application/json"]
    schema = document["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[1]]
    assert schema["dependentRequired"] == {"min_replicas": ["max_replicas"], "scale_down_delay_s": ["max_replicas"]}
    rule = Draft202012Validator(schema)
    assert not rule.is_valid({"name": "d", "min_replicas": 1})
    assert not rule.is_valid({"name": "d", "scale_down_delay_s": 60})
    assert rule.is_valid({"name": "d", "min_replicas": 0, "max_replicas": 1, "scale_down_delay_s": 60})
    assert rule.is_valid({"name": "d", "min_replicas": 1, "max_replicas": 2})
    with pytest.raises(ValueError, match="min_replicas needs max_replicas"):
        DeploymentCreate.model_validate({"name": "d", "min_replicas": 1})


def test_the_uploads_schema_field_is_declared_json_holding_a_model_schema(document):
    body = operation(document, "post", "/models/{name}/versions")["requestBody"]["content"]["multipart/form-data"]
    form = document["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[1]]
    field = form["properties"]["schema"]
    assert field["contentMediaType"] == "application/json"
    content = Draft202012Validator(field["contentSchema"])
    assert content.is_valid(GOOD_MODEL_SCHEMA)
    assert not content.is_valid({"inputs": GOOD_MODEL_SCHEMA["inputs"]})  # no outputs
    assert not content.is_valid({**GOOD_MODEL_SCHEMA, "outputs": {"type": "object", "properties": {}}})
    assert "$ref" not in json.dumps(field["contentSchema"])  # whole, not pointing into another document


def test_sharing_with_a_user_that_does_not_exist_is_a_declared_404(document):
    answers = operation(document, "put", "/models/{name}/sharing")["responses"]
    assert "a user named in `users` does not exist" in answers["404"]["description"]
    assert answers["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}


def test_the_job_stream_declares_its_ids_and_resume(document):
    stream = operation(document, "get", "/jobs/{job_id}/events")
    [resume] = [p for p in stream["parameters"] if p["in"] == "header"]
    assert resume["name"] == "Last-Event-ID" and not resume["required"]
    event = stream["responses"]["200"]["content"]["text/event-stream"]["schema"]
    assert event["required"] == ["data", "id"] and event["properties"]["id"]["pattern"] == "^[0-9]+$"
    assert "404" in stream["responses"] and "401" in stream["responses"]
