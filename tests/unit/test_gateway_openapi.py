"""The HTTP contract says its own rules in the served OpenAPI document, where generated clients and
fuzzers read them: which parameter needs which, what a form field's text must be, which statuses a
route answers, and how the job stream resumes."""

import dataclasses
import json
import warnings

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
    # the parameters a rule ties together are one object, exploded into the query as before
    [group] = [p for p in listing["parameters"] if p["name"] == "filters"]
    assert (group["in"], group["style"], group["explode"]) == ("query", "form", True)
    rule = group["schema"]["dependentRequired"]
    needs = {k: v for k, v in rule.items() if v == ["field"]}  # evaluation's: elsewhere
    assert needs == {"label": ["field"], "min_confidence": ["field"], "max_confidence": ["field"]}
    assert rule["ground_truth_label"] == rule["prediction_label"] == ["evaluation"]
    assert "each needs `field`" in listing["description"] and "422" in listing["description"]
    assert "x-dependentRequired" not in listing  # said once, where tools read it
    flat = {p["name"] for p in listing["parameters"]}
    assert not flat & set(group["schema"]["properties"]) and {"limit", "missing", "failed_job"} <= flat
    properties = group["schema"]["properties"]
    assert properties["min_confidence"] == {"title": "Min Confidence", "type": "number", "minimum": 0, "maximum": 1}
    assert "null" not in json.dumps(properties)  # a query carries no null: a left-out parameter is None
    query = Draft202012Validator(group["schema"])
    assert not query.is_valid({"label": "cat"}) and query.is_valid({"label": "cat", "field": "pred"})
    assert not query.is_valid({"prediction_label": "cat"}) and not query.is_valid({"unknown": "x"})
    alone = {"label": SampleFilter(label="cat"), "min_confidence": SampleFilter(min_confidence=0.5)}
    alone["max_confidence"] = SampleFilter(max_confidence=0.5)
    for name in needs:  # the route refuses exactly what the declaration says
        with pytest.raises(InvalidFilter, match="needs `field`"):
            alone[name].query("d")
        assert dataclasses.replace(alone[name], field="pred").query("d")["$or"]


def test_a_fuzzer_reads_the_rule_and_sends_the_filters_as_plain_query_parameters(document):
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    listing = schemathesis.openapi.from_dict(document)["/api/v1/datasets/{name}/samples"]["GET"]
    queries: list[dict] = []

    @given(listing.as_strategy())
    @settings(max_examples=150, suppress_health_check=HealthCheck.all(), database=None, deadline=None)
    def draw(case):
        queries.append(dict(case.query or {}))

    draw()
    assert any("label" in q for q in queries) and not any("filters" in q for q in queries)
    for q in queries:
        assert "field" in q or not {"label", "min_confidence", "max_confidence"} & set(q), q
        assert "evaluation" in q or not {"ground_truth_label", "prediction_label"} & set(q), q
        # what the route then refuses of them is only what no schema can say: min above max
        chosen = {k: q[k] for k in ("field", "label", "min_confidence", "max_confidence", "missing") if k in q}
        try:
            SampleFilter(**chosen).query("d")
        except InvalidFilter as refused:
            assert str(refused) == "min_confidence is above max_confidence", q


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


def test_building_the_app_and_its_document_warns_of_nothing(tmp_path):
    # a warning here lands in the gateway's log at every start (a form field named `schema` once
    # shadowed pydantic's BaseModel.schema on the upload's body model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_app(GatewaySettings(data_dir=tmp_path, admin_token="x")).openapi()
