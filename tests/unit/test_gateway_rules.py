"""Request rules the gateway enforces before anything is sent on: names and online predict inputs."""

import pytest
from fastapi import HTTPException
from pydantic import ValidationError

from modelhub_gateway.routes.deployments import check_predict_inputs
from modelhub_gateway.schemas import DatasetCreate, DeploymentCreate, ModelCreate, PredictIn, UserCreate


@pytest.mark.parametrize("name", [".", "..", "...", "", "a/b", "x" * 65, "a b", "$x"])
def test_names_that_would_be_paths_or_junk_are_refused(name):
    for model in (ModelCreate, DatasetCreate, DeploymentCreate):
        with pytest.raises(ValidationError):
            model(name=name)
    with pytest.raises(ValidationError):
        UserCreate(username=name)


@pytest.mark.parametrize("name", ["a", "a.b", ".hidden", "digits-v2_final", "x" * 64])
def test_ordinary_names_pass(name):
    assert ModelCreate(name=name).name == name


@pytest.mark.parametrize("inputs, message", [
    ({}, "exactly the model's"),
    ({"text": ["a"], "extra": ["b"]}, "exactly the model's"),
    ({"text": ["a"], "n": [1, 2]}, "same length"),
    ({"text": [], "n": []}, "1 to 10000"),
])
def test_predict_inputs_must_match_the_schema(inputs, message):
    with pytest.raises(HTTPException) as refused:
        check_predict_inputs(PredictIn(inputs=inputs), {"text": "text", "n": "number"})
    assert refused.value.status_code == 422 and message in refused.value.detail


def test_predict_inputs_that_match_pass():
    check_predict_inputs(PredictIn(inputs={"text": ["a", "b"], "n": [1, 2]}), {"text": "text", "n": "number"})
