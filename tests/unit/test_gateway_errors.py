"""Domain errors become HTTP answers in one place (`app.map_errors`), in the shapes docs/API.md promises."""

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from modelhub_contracts.errors import (
    Busy,
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    TooLarge,
    from_status,
)
from modelhub_gateway.app import build_app, map_errors
from modelhub_gateway.settings import GatewaySettings
from modelhub_runtime.messaging import refused


def client_raising(error: Exception) -> TestClient:
    app = FastAPI()
    map_errors(app)

    @app.get("/x")
    async def route() -> None:
        raise error

    return TestClient(app)


@pytest.mark.parametrize(
    "error, status",
    [
        (NotFound("dataset 'd' not found"), 404),
        (Forbidden("you may not change model 'm'"), 403),
        (Conflict("a dataset named 'd' already exists"), 409),
    ],
)
def test_each_kind_answers_its_status_with_its_sentence_as_detail(error, status):
    answer = client_raising(error).get("/x")
    assert (answer.status_code, answer.json()) == (status, {"detail": str(error)})


def test_invalid_answers_422_in_the_validation_shape():
    answer = client_raising(Invalid("two outputs are mapped to the same field")).get("/x")
    assert answer.status_code == 422
    assert answer.json() == {
        "detail": "two outputs are mapped to the same field",
        "errors": [{"loc": [], "msg": "two outputs are mapped to the same field", "type": "value_error"}],
    }


def test_a_refusal_that_says_when_to_retry_carries_retry_after_in_whole_seconds():
    answer = client_raising(from_status(429, "worker full", retry_after=0.5)).get("/x")
    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "1")


def test_an_rpc_reply_carries_the_kind_and_the_sentence_back_as_the_same_error():
    reply = refused(Conflict("model 'm' has an active deployment"))
    again = from_status(reply.status, reply.detail or "")
    assert (type(again), str(again)) == (Conflict, "model 'm' has an active deployment")


def test_a_status_of_no_named_kind_keeps_its_code():
    error = from_status(503, "the registry did not answer")
    assert type(error) is DomainError and error.status == 503


def test_the_bounds_come_back_as_their_own_kinds_with_when_to_retry():
    busy = from_status(429, "worker full", retry_after=0.5)
    assert (type(busy), busy.retry_after) == (Busy, 0.5)
    assert type(from_status(413, "too large")) is TooLarge


def test_a_405_names_every_method_of_the_path(tmp_path):
    """GET and DELETE /datasets/{name} are two routes in a nested router: Allow names both."""
    client = TestClient(build_app(GatewaySettings(data_dir=tmp_path, admin_token="x")))
    answer = client.put("/api/v1/datasets/d")
    assert (answer.status_code, answer.headers["allow"]) == (405, "DELETE, GET")
    assert client.get("/api/v1/deployments/d/predict").headers["allow"] == "POST"
