"""The resource routes refuse a query parameter they do not take, and a single-valued one given
more than once (`deps.known_query`), with the hub's 422: a typo or a repeated filter would
otherwise answer as if it were not there."""

from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from test_gateway_oip import ANN_TOKEN, gateway

from modelhub_gateway import datasets
from modelhub_gateway.api.deps import _query_parameters, current_user, known_query
from modelhub_gateway.app import DEPENDENT_GROUP, map_errors


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

    @router.get("/bare")
    async def bare(tag: Annotated[list | None, Query()] = None) -> dict:  # a list as FastAPI reads one
        return {"tag": tag}

    app.include_router(router)
    map_errors(app)
    return TestClient(app)


def test_the_parameters_a_route_takes_pass_and_a_list_may_repeat():
    client = small_app()
    assert client.get("/one?name=a&offset=3").json() == {"name": "a", "at": 3}
    assert client.get("/many?tag=a&tag=b").json() == {"tag": ["a", "b"]}
    assert client.get("/bare?tag=a&tag=b").json() == {"tag": ["a", "b"]}


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
    The dataset's lookup, which comes after the check, fails this test if it is reached."""

    async def no_lookup(*args):
        raise AssertionError("the dataset was looked up: the check did not refuse the request")

    monkeypatch.setattr(datasets, "owned_dataset", no_lookup)
    client = TestClient(gateway(tmp_path, monkeypatch), headers={"Authorization": f"Bearer {ANN_TOKEN}"})
    url = "/api/v1/datasets/d/samples?failed_job=x&failed_job=&missing=null&limit=2936&offset=16315&filters="
    answer = client.get(url)
    assert answer.status_code == 422
    assert sorted(e["loc"][1] for e in answer.json()["errors"]) == ["failed_job", "filters"]


def test_a_caller_without_a_token_gets_401_whatever_the_query(tmp_path, monkeypatch):
    client = TestClient(gateway(tmp_path, monkeypatch))
    for url in ("/api/v1/models?x=1", "/api/v1/datasets/d/samples?limit=1&limit=2"):
        assert client.get(url).status_code == 401, url
    assert client.delete("/api/v1/models/m?x=1").status_code == 401


def test_every_route_takes_the_query_parameters_its_document_names(tmp_path, monkeypatch):
    """What the check lets through for each operation is what openapi.json declares for it (the
    `filters` group's properties as the parameters they are on the wire), and every operation
    under /api/v1 that needs a token runs the check after the token's: online predict and the
    public routes, which take no query parameter, aside."""
    app = gateway(tmp_path, monkeypatch)
    paths = app.openapi()["paths"]
    checked = 0
    for ctx in iter_route_contexts(app.router.routes):
        route = ctx.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema or not ctx.path.startswith("/api/v1/"):
            continue
        # what a request runs: the route's dependencies with those of the routers it is included in
        calls = [d.call for d in ctx.dependant.dependencies]
        for method in ctx.methods or ():
            declared = set()
            for parameter in paths[ctx.path][method.lower()].get("parameters", []):
                if parameter["in"] == "query":
                    group = parameter["schema"].get("properties") if parameter["name"] == DEPENDENT_GROUP else None
                    declared |= set(group) if group else {parameter["name"]}
            assert _query_parameters(route.dependant)[0] == declared, (method, ctx.path)
        if current_user in calls and not ctx.path.endswith("/predict"):
            assert calls.index(known_query) > calls.index(current_user), ctx.path
            checked += 1
        else:  # the public routes and online predict, as docs/API.md says
            assert known_query not in calls, ctx.path
    assert checked >= 40  # every resource route, not a handful
