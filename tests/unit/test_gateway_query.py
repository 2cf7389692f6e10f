"""The resource routes refuse a query parameter they do not take, and a single-valued one given
more than once (`deps.known_query`), with the hub's 422: a typo or a repeated filter would
otherwise answer as if it were not there."""

from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.testclient import TestClient
from memory_gateway import memory_gateway
from test_gateway_oip import ANN_TOKEN, DEPLOYMENTS, MODEL, USERS, VERSION

from modelhub_gateway.api.deps import known_query
from modelhub_gateway.app import map_errors


async def page(offset: int = 0) -> int:
    return offset


def small_app() -> TestClient:
    """Routes with a scalar, a list and a dependency's own parameter, behind the check."""
    app = FastAPI()
    router = APIRouter(dependencies=[Depends(known_query)])

    @router.get("/one")
    async def one(name: str | None = None, at: Annotated[int, Depends(page)] = 0) -> dict:
        return {"name": name, "at": at}

    @router.get("/many")
    async def many(tag: Annotated[list[str] | None, Query()] = None) -> dict:
        return {"tag": tag}

    app.include_router(router)
    map_errors(app)
    return TestClient(app)


def test_the_parameters_a_route_takes_pass_and_a_list_may_repeat():
    client = small_app()
    assert client.get("/one?name=a&offset=3").json() == {"name": "a", "at": 3}
    assert client.get("/many?tag=a&tag=b").json() == {"tag": ["a", "b"]}


@pytest.mark.parametrize(
    ("url", "loc", "words"),
    [
        ("/one?nmae=a", ["query", "nmae"], "not a parameter"),
        ("/one?offset=1&offset=2", ["query", "offset"], "given 2 times"),
        ("/one?name=a&name=", ["query", "name"], "given 2 times"),
        ("/many?tag=a&filters=", ["query", "filters"], "not a parameter"),
    ],
)
def test_an_unknown_or_repeated_parameter_is_a_422_naming_it(url, loc, words):
    answer = small_app().get(url)
    assert answer.status_code == 422
    body = answer.json()
    assert [e["loc"] for e in body["errors"]] == [loc]
    assert loc[1] in body["detail"] and words in body["detail"]


def test_the_hub_refuses_the_fuzzers_request_before_reading_anything(tmp_path, monkeypatch):
    """The request Schemathesis sent (2026-12-07): an exploded `filters` object given as an empty
    value, a `failed_job` given twice; answered 200 as if neither were there before this check.
    The dataset is looked up after the check, in a store with no database behind it: a 422 here
    is the check's."""
    app = memory_gateway(tmp_path, monkeypatch, users=USERS, deployments=DEPLOYMENTS, model=MODEL, version=VERSION)
    client = TestClient(app, headers={"Authorization": f"Bearer {ANN_TOKEN}"})
    url = "/api/v1/datasets/d/samples?failed_job=x&failed_job=&missing=null&limit=2936&offset=16315&filters="
    answer = client.get(url)
    assert answer.status_code == 422
    assert sorted(e["loc"][1] for e in answer.json()["errors"]) == ["failed_job", "filters"]


def test_the_check_adds_nothing_to_the_openapi_document(tmp_path, monkeypatch):
    app = memory_gateway(tmp_path, monkeypatch, users=USERS, deployments=DEPLOYMENTS, model=MODEL, version=VERSION)
    operation = app.openapi()["paths"]["/api/v1/datasets/{name}/samples"]["get"]
    assert "request" not in {p["name"] for p in operation["parameters"]}
    assert {p["name"] for p in operation["parameters"]} == {
        "name",
        "limit",
        "offset",
        "filters",
        "missing",
        "failed_job",
    }
