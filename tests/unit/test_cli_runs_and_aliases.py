"""The CLI for incremental runs (`run --only`) and aliases (`models alias ...`, `deploy --version
@alias`) against a mocked gateway: what each command sends and prints."""

import json

import httpx
import pytest
from test_cli_client import FakeGateway, invoke, job
from test_cli_client import gateway as gateway  # noqa: F401 (the fixture)


@pytest.mark.parametrize("only", [None, "missing", "stale"])
def test_run_sends_only_when_asked(gateway: FakeGateway, only: str | None) -> None:  # noqa: F811
    gateway.on("POST", "/datasets/pics/jobs", job(status="completed", total=0, only=only or "all"), status=202)
    args = ["run", "pics", "--deployment", "dep", "--output", "predictions=pred", "--no-wait"]
    result = invoke(*args, *(["--only", only] if only else []))
    assert result.exit_code == 0, result.output
    body = gateway.body("POST", "/datasets/pics/jobs")
    assert body.get("only") == only  # the default goes unsaid: an older gateway takes the request


def test_run_refuses_an_unknown_choice_before_sending(gateway: FakeGateway) -> None:  # noqa: F811
    result = invoke("run", "pics", "--deployment", "dep", "--output", "a=b", "--only", "some")
    assert result.exit_code == 2 and not gateway.requests


def test_deploy_by_alias_sends_it_as_the_version(gateway: FakeGateway) -> None:  # noqa: F811
    gateway.on("POST", "/models/m/deployments", {"name": "d", "status": "pending", "alias": "prod"}, status=202)
    result = invoke("models", "deploy", "m", "--name", "d", "--version", "@prod", "--no-wait")
    assert result.exit_code == 0, result.output
    assert gateway.body("POST", "/models/m/deployments")["version"] == "@prod"


@pytest.mark.parametrize("version", ["0", "prod", "1.5"])
def test_deploy_refuses_a_version_that_is_neither_a_number_nor_an_alias(
    gateway: FakeGateway,  # noqa: F811
    version: str,
) -> None:
    result = invoke("models", "deploy", "m", "--name", "d", "--version", version)
    assert result.exit_code == 2 and "@ALIAS" in result.output and not gateway.requests


def test_alias_commands_call_their_routes_and_print_the_history(gateway: FakeGateway) -> None:  # noqa: F811
    change = {"alias": "prod", "version": 3, "set_by": "ann", "set_at": "2026-12-06T10:00:00Z"}
    gateway.on("PUT", "/models/m/aliases/prod", change)
    gateway.on("DELETE", "/models/m/aliases/prod", lambda _req: httpx.Response(204))
    history = {"items": [change, {**change, "version": None, "set_by": "bob"}]}
    gateway.on("GET", "/models/m/aliases/prod/history", history)

    done = invoke("models", "alias", "set", "m", "prod", "3")
    assert done.exit_code == 0 and "m@prod -> version 3" in done.stdout
    assert gateway.body("PUT", "/models/m/aliases/prod") == {"version": 3}
    assert invoke("models", "alias", "rm", "m", "prod").exit_code == 2  # not on a terminal, no --yes
    assert invoke("models", "alias", "rm", "m", "prod", "-y").exit_code == 0
    assert len(gateway.sent("DELETE", "/models/m/aliases/prod")) == 1
    table = invoke("models", "alias", "history", "m", "prod").stdout.splitlines()
    assert table[0].split() == ["VERSION", "SET_BY", "SET_AT"]
    assert [row.split()[:2] for row in table[1:]] == [["3", "ann"], ["removed", "bob"]]
    as_json = invoke("models", "alias", "history", "m", "prod", "--json")
    assert json.loads(as_json.stdout) == history
