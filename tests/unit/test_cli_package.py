"""The CLI as a package: its environment in one CliSettings shown by --help, the HTTP API as an SDK
with a typed error, and no dependency on modelhub-contracts or any service."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from modelhub.api import ApiClient, ApiError
from modelhub.cli import main
from modelhub.settings import CliSettings

CLI_DIR = Path(__file__).resolve().parents[2] / "cli" / "modelhub"


def test_help_names_the_environment_variables_of_the_options() -> None:
    models_list = CliRunner().invoke(main, ["models", "list", "--help"])
    assert "[env var: MODELHUB_URL]" in models_list.output
    up = CliRunner().invoke(main, ["up", "--help"])
    assert "[env var: MODELHUB_DATA_DIR]" in up.output


def test_settings_read_every_variable_and_treat_empty_as_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODELHUB_NATS_URL", "nats://bus:4222")
    monkeypatch.setenv("MODELHUB_MONGO_URL", "")
    monkeypatch.setenv("RAY_ADDRESS", "ray-head:6379")
    monkeypatch.setenv("MODELHUB_TOKEN", "  tok \n")
    monkeypatch.setenv("MODELHUB_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("MODELHUB_LOG_KEEP", "7")
    settings = CliSettings()
    assert settings.nats_url == "nats://bus:4222" and settings.mongo_url is None
    assert settings.ray_address == "ray-head:6379" and settings.token == "tok" and settings.log_keep == 7
    assert settings.data_path() == (tmp_path / "d").resolve()
    assert settings.data_path(tmp_path / "flag") == (tmp_path / "flag").resolve()
    assert "tok" not in repr(settings)  # secrets stay out of reprs and tracebacks


def test_no_module_but_settings_reads_the_environment() -> None:
    reads = re.compile(r"os\.environ\.get\(|os\.getenv\(|os\.environ\[")
    offenders = [
        str(path.relative_to(CLI_DIR))
        for path in CLI_DIR.rglob("*.py")
        if path.name != "settings.py" and reads.search(path.read_text())
    ]
    assert offenders == []


def test_the_cli_imports_neither_the_contracts_nor_a_service() -> None:
    code = (
        "import sys, modelhub.cli, modelhub.api, modelhub.stack.lifecycle, modelhub.stack.detach\n"
        "print(sorted(m for m in sys.modules if m.startswith('modelhub_')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_sdk_calls_the_api_and_raises_a_typed_error() -> None:
    seen: list[httpx.Request] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        if request.url.raw_path == b"/api/v1/datasets/a%2Fb/jobs":  # one segment, quoted
            return httpx.Response(201, json={"id": "j1", "status": "pending"})
        return httpx.Response(404, json={"detail": "job nope not found"})

    with ApiClient("http://hub.test/api/v1/", token="t", transport=httpx.MockTransport(gateway)) as hub:
        assert hub.submit_job("a/b", "dep", {"predictions": "pred"})["id"] == "j1"
        with pytest.raises(ApiError) as caught:
            hub.get_job("nope")
    assert caught.value.status == 404 and caught.value.message == "job nope not found"
    assert json.loads(seen[0].content) == {"deployment": "dep", "outputs": {"predictions": "pred"}}
    assert seen[0].headers["authorization"] == "Bearer t"
