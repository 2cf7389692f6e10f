"""Health that means it: GET /health answers 200 only when every service, NATS and MongoDB answer,
and 503 naming MongoDB while it does not (mongod paused with SIGSTOP, so the supervisor, which
sees its port still open, does not restart it), then 200 again once it is back."""

import os
import signal

import httpx
import pytest
from conftest import part_pid, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_health_is_200_with_every_part_and_503_naming_mongodb_while_it_is_away(stack):
    anonymous = httpx.Client(base_url=stack.url, timeout=30)
    healthy = anonymous.get("/health")
    assert healthy.status_code == 200, healthy.text
    body = healthy.json()
    assert body["status"] == "ok" and body["nats"] and body["mongo"] and body["missing"] == []
    assert all(body["services"].values()) and set(body["services"]) >= {"gateway", "registry", "scheduler"}

    mongod = part_pid(stack.data_dir, "mongo")
    assert mongod
    os.kill(mongod, signal.SIGSTOP)
    try:
        away = anonymous.get("/health")
        assert away.status_code == 503, away.text
        assert "mongo" in away.json()["missing"] and away.json()["mongo"] is False
        assert away.json()["nats"] is True
    finally:
        os.kill(mongod, signal.SIGCONT)
    wait_for(lambda: anonymous.get("/health").status_code == 200, 60, "health to come back")
