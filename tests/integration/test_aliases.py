"""A model's aliases on the real stack: set, move and remove one, its history (oldest first,
removals included, never rewritten), deploying by `@alias` (the deployment records the alias and
the version it resolved to), a version an alias points to cannot be deleted, who may change one,
and the CLI for all of it. Nothing is mocked."""

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from conftest import SCHEMA_TEXT_TO_CLASS, create_model, make_zip, unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

MODEL = """
class Model:
    def __init__(self, model_dir):
        pass

    def predict(self, batch):
        return {"label": [{"label": t, "confidence": 1.0} for t in batch["text"]]}
"""


@pytest.fixture
def model(stack, tmp_path) -> str:
    """A new model with three versions."""
    name, package = unique("alias"), make_zip(tmp_path / "m.zip", {"model.py": MODEL})
    create_model(stack.client, name, package, SCHEMA_TEXT_TO_CLASS)
    for _ in range(2):
        with package.open("rb") as fh:
            answer = stack.client.post(
                f"/models/{name}/versions",
                files={"file": ("m.zip", fh, "application/zip")},
                data={"schema": json.dumps(SCHEMA_TEXT_TO_CLASS)},
            )
        assert answer.status_code == 201, answer.text
    return name


def point(client: httpx.Client, model: str, alias: str, version: int) -> httpx.Response:
    return client.put(f"/models/{model}/aliases/{alias}", json={"version": version})


def history(client: httpx.Client, model: str, alias: str) -> list[dict]:
    answer = client.get(f"/models/{model}/aliases/{alias}/history")
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def test_an_alias_is_set_moved_and_removed_and_its_history_keeps_every_change(stack, model):
    client = stack.client
    set_ = point(client, model, "prod", 1)
    assert set_.status_code == 200, set_.text
    assert {k: set_.json()[k] for k in ("alias", "version", "set_by")} == {
        "alias": "prod",
        "version": 1,
        "set_by": "admin",
    }
    assert client.get(f"/models/{model}").json()["aliases"] == {"prod": 1}
    assert point(client, model, "prod", 2).status_code == 200
    assert point(client, model, "staging", 3).status_code == 200
    assert client.get(f"/models/{model}").json()["aliases"] == {"prod": 2, "staging": 3}
    assert client.delete(f"/models/{model}/aliases/prod").status_code == 204
    assert client.get(f"/models/{model}").json()["aliases"] == {"staging": 3}

    before = history(client, model, "prod")
    assert [(c["version"], c["set_by"]) for c in before] == [(1, "admin"), (2, "admin"), (None, "admin")]
    times = [datetime.fromisoformat(c["set_at"]) for c in before]
    assert times == sorted(times)
    assert point(client, model, "prod", 3).status_code == 200
    after = history(client, model, "prod")
    assert after[:3] == before and (after[3]["version"], len(after)) == (3, 4)  # appended, never rewritten
    assert [c["version"] for c in history(client, model, "staging")] == [3]


def test_what_an_alias_cannot_be(stack, model):
    client = stack.client
    missing = point(client, model, "prod", 9)
    assert missing.status_code == 404 and "has no version 9" in missing.json()["detail"]
    assert point(client, model, "1prod", 1).status_code == 422
    assert point(client, model, "a" * 65, 1).status_code == 422
    assert client.put(f"/models/{model}/aliases/prod", json={"version": 0}).status_code == 422
    gone = client.delete(f"/models/{model}/aliases/prod")
    assert gone.status_code == 404 and "no alias 'prod'" in gone.json()["detail"]
    assert client.get(f"/models/{model}/aliases/prod/history").status_code == 404
    assert point(client, unique("no-such-model"), "prod", 1).status_code == 404
    assert client.get(f"/models/{model}").json()["aliases"] == {}


def test_a_deploy_by_alias_records_the_alias_and_the_version_it_meant_then(stack, model):
    client = stack.client
    assert point(client, model, "prod", 2).status_code == 200
    name = unique("by-alias")
    answer = client.post(f"/models/{model}/deployments", json={"name": name, "version": "@prod"})
    assert answer.status_code == 202, answer.text
    try:
        assert (answer.json()["alias"], answer.json()["version"]) == ("prod", 2)
        assert point(client, model, "prod", 3).status_code == 200  # moving it later moves no deployment
        shown = client.get(f"/deployments/{name}").json()
        assert (shown["alias"], shown["version"]) == ("prod", 2)
        # the version a running deployment uses is held by the deployment, as before
        assert client.delete(f"/models/{model}/versions/2").status_code == 409
    finally:
        assert client.delete(f"/deployments/{name}").status_code == 202

    unknown = client.post(f"/models/{model}/deployments", json={"name": unique("nope"), "version": "@nope"})
    assert unknown.status_code == 404 and "no alias 'nope'" in unknown.json()["detail"]
    assert client.post(f"/models/{model}/deployments", json={"name": unique("x"), "version": "prod"}).status_code == 422
    wait_for(
        lambda: client.get(f"/deployments/{name}").json()["status"] == "stopped", 120, f"deployment {name} to stop"
    )


def test_a_version_an_alias_points_to_cannot_be_deleted_until_the_alias_moves(stack, model):
    client = stack.client
    assert point(client, model, "staging", 1).status_code == 200
    assert point(client, model, "canary", 1).status_code == 200
    refused = client.delete(f"/models/{model}/versions/1")
    assert refused.status_code == 409
    assert "'canary', 'staging'" in refused.json()["detail"]
    assert client.get(f"/models/{model}/versions/1").status_code == 200
    assert point(client, model, "canary", 2).status_code == 200
    assert client.delete(f"/models/{model}/aliases/staging").status_code == 204
    assert client.delete(f"/models/{model}/versions/1").status_code == 204
    assert point(client, model, "staging", 1).status_code == 404  # no alias may point at it now


def test_who_may_change_an_alias_and_who_may_only_see_it(stack, model):
    client = stack.client
    tokens = {}
    for role in ("reader", "editor", "stranger"):
        username = unique(role)
        created = client.post("/users", json={"username": username})
        assert created.status_code == 201, created.text
        tokens[role] = (username, created.json()["token"])
    sharing = {"everyone": "none", "users": {tokens["reader"][0]: "run", tokens["editor"][0]: "edit"}}
    assert client.put(f"/models/{model}/sharing", json=sharing).status_code == 200
    reader, editor, stranger = (stack.user_client(tokens[r][1]) for r in ("reader", "editor", "stranger"))

    assert point(reader, model, "prod", 1).status_code == 403
    assert point(stranger, model, "prod", 1).status_code == 404
    by_editor = point(editor, model, "prod", 1)
    assert by_editor.status_code == 200 and by_editor.json()["set_by"] == tokens["editor"][0]
    assert reader.delete(f"/models/{model}/aliases/prod").status_code == 403
    assert reader.get(f"/models/{model}").json()["aliases"] == {"prod": 1}
    assert [c["set_by"] for c in history(reader, model, "prod")] == [tokens["editor"][0]]
    assert stranger.get(f"/models/{model}/aliases/prod/history").status_code == 404
    assert editor.delete(f"/models/{model}/aliases/prod").status_code == 204


def test_the_cli_sets_shows_and_removes_aliases_and_deploys_by_one(stack, model, tmp_path: Path):
    env = {**os.environ, "MODELHUB_URL": f"http://127.0.0.1:{stack.port}", "MODELHUB_TOKEN": stack.token}
    env["XDG_CONFIG_HOME"] = str(tmp_path)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "modelhub", *args], env=env, capture_output=True, text=True, timeout=120
        )

    done = cli("models", "alias", "set", model, "prod", "3")
    assert done.returncode == 0 and f"{model}@prod -> version 3" in done.stdout, done.stderr
    assert "aliases:" in (shown := cli("models", "show", model)).stdout and "prod=3" in shown.stdout
    assert cli("models", "alias", "rm", model, "prod").returncode == 2  # no --yes, no terminal: refused
    assert cli("models", "alias", "rm", model, "prod", "--yes").returncode == 0
    listed = cli("models", "alias", "history", model, "prod", "--json")
    assert [c["version"] for c in json.loads(listed.stdout)["items"]] == [3, None]
    table = cli("models", "alias", "history", model, "prod").stdout
    assert "removed" in table and "admin" in table
    unknown = cli("models", "deploy", model, "--name", unique("d"), "--version", "@prod", "--no-wait")
    assert unknown.returncode == 5 and "no alias 'prod'" in unknown.stderr

    assert cli("models", "alias", "set", model, "prod", "2").returncode == 0
    name = unique("cli-alias")
    deployed = cli("models", "deploy", model, "--name", name, "--version", "@prod", "--no-wait", "--json")
    try:
        assert deployed.returncode == 0, deployed.stderr
        assert {k: json.loads(deployed.stdout)[k] for k in ("alias", "version")} == {"alias": "prod", "version": 2}
    finally:
        stack.client.delete(f"/deployments/{name}")
