"""The CLI for scale to zero (`models deploy --min-replicas 0 --scale-down-delay S`) against a
mocked gateway: what it sends, and how `deployments list` shows a deployment with no replica."""

import json

from test_cli_client import FakeGateway, invoke
from test_cli_client import gateway as gateway  # noqa: F401 (the fixture)


def test_deploy_sends_the_scale_down_delay_only_when_given(gateway: FakeGateway) -> None:  # noqa: F811
    gateway.on("POST", "/models/m/deployments", {"name": "d", "status": "pending"}, status=202)
    args = ["models", "deploy", "m", "--name", "d", "--min-replicas", "0", "--max-replicas", "1", "--no-wait"]
    assert invoke(*args, "--scale-down-delay", "30").exit_code == 0
    assert invoke(*args).exit_code == 0
    first, second = (json.loads(request.content) for request in gateway.sent("POST", "/models/m/deployments"))
    assert (first["min_replicas"], first["max_replicas"], first["scale_down_delay_s"]) == (0, 1, 30)
    assert "scale_down_delay_s" not in second  # the gateway's default (600) applies


def test_list_shows_a_running_deployment_without_replicas_as_scaled_to_zero(gateway: FakeGateway) -> None:  # noqa: F811
    base = {"model": "m", "version": 1, "num_replicas": 1, "num_gpus": 0, "error": None, "max_replicas": 1}
    gateway.on(
        "GET",
        "/deployments",
        {
            "items": [
                {**base, "name": "idle", "status": "running", "min_replicas": 0, "ready_replicas": 0},
                {**base, "name": "busy", "status": "running", "min_replicas": 0, "ready_replicas": 1},
                {**base, "name": "new", "status": "deploying", "min_replicas": 0, "ready_replicas": 0},
            ]
        },
    )
    result = invoke("deployments", "list")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "scaled to zero" in rows["idle"]
    assert "scaled to zero" not in rows["busy"] and "1/1" in rows["busy"]
    assert "scaled to zero" not in rows["new"]
