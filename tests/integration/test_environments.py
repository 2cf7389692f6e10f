"""custom_env from an environment.yml as users write it, on the real stack: built with pip where no
Ray node has conda (the route shown on the deployment, through the API and the CLI), refused at
once naming what only conda has, a package pip cannot find failing with pip's reason, and the
conda route where a conda exists (skipped elsewhere, saying so: its only skip)."""

import importlib.util
import os
import subprocess
import sys
import time

import pytest
from conftest import create_model, deploy, make_zip, unique

from modelhub_deployer.environments import Host

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

# The deployer looks for conda as this does, in the environment `modelhub up` passes it (ours).
HOST = Host.detect(os.environ)
PYTHON = f"python={sys.version_info.major}.{sys.version_info.minor}"  # the stack's nodes run this Python

MODEL = """
import roman  # neither is installed in modelhub's own environment: only the custom env has them
from text_unidecode import unidecode


class Model:
    def __init__(self, model_dir):
        pass

    def predict(self, batch):
        return {"text": [f"{roman.toRoman(int(n))} {unidecode('Straße')}" for n in batch["n"]]}
"""
SCHEMA = {
    "inputs": {"type": "object", "properties": {"n": {"type": "number"}}},
    "outputs": {"type": "object", "properties": {"text": {"type": "text"}}},
}
# as `conda env export` writes one: builds, a channel prefix, what conda's Python carries, a pip: list
ENVIRONMENT = f"""
name: roman-model
channels:
  - conda-forge
dependencies:
  - {PYTHON}
  - pip
  - ca-certificates=2024.2.2=hbcca054_0
  - _libgcc_mutex=0.1=conda_forge
  - conda-forge::text-unidecode=1.3=pyhd8ed1ab_1
  - pip:
      - roman==5.2
"""


def model_with(client, tmp_path, files: dict[str, str | bytes]) -> tuple[str, dict]:
    """A new model whose v1 package holds `files`; its name and the upload's answer (the version)."""
    model = unique("envyml")
    return model, create_model(client, model, make_zip(tmp_path / "p.zip", files), SCHEMA)


def test_without_conda_environment_yml_is_built_with_pip_and_the_route_is_shown(stack, tmp_path):
    if HOST.conda:
        pytest.skip(f"conda at {HOST.conda}: environment.yml takes the conda route here (the test below)")
    assert importlib.util.find_spec("roman") is None and importlib.util.find_spec("text_unidecode") is None
    client = stack.client
    files: dict[str, str | bytes] = {
        "model.py": MODEL,
        "environment.yml": ENVIRONMENT,
        "requirements.txt": "tabulate\n",
    }
    model, version = model_with(client, tmp_path, files)
    assert version["environment_files"] == ["environment.yml", "requirements.txt"]
    name = unique("pipenv")

    done = deploy(client, model, name, timeout=800, custom_env=True)

    assert done["status"] == "running", done
    environment = done["environment"]
    assert (environment["route"], environment["file"]) == ("pip", "environment.yml")
    assert environment["packages"] == ["text-unidecode==1.3.*", "roman==5.2"]  # not tabulate: see reason
    assert environment["skipped"] == ["python", "pip", "ca-certificates", "_libgcc_mutex"]
    assert "no conda" in environment["reason"] and "requirements.txt is not used" in environment["reason"]
    out = client.post(f"/deployments/{name}/predict", json={"inputs": {"n": [1234]}})
    assert out.status_code == 200 and out.json() == {"outputs": {"text": ["MCCXXXIV Strasse"]}}, out.text
    shown = subprocess.run(
        [sys.executable, "-m", "modelhub", "deployments", "show", name],
        env={**os.environ, "MODELHUB_URL": f"http://127.0.0.1:{stack.port}", "MODELHUB_TOKEN": stack.token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    # the key column's width follows the longest key shown, so the line is matched up to its spaces
    line = "environment: pip from environment.yml: text-unidecode==1.3.*, roman==5.2"
    assert any(" ".join(row.split()).startswith(line) for row in shown.stdout.splitlines()), shown
    client.delete(f"/deployments/{name}")


def test_a_conda_only_need_fails_the_deploy_naming_it(stack, tmp_path):
    # a version no channel has: where conda exists it fails too, with conda's message naming it
    environment = f"dependencies:\n  - {PYTHON}\n  - numpy\n  - cudatoolkit=0.0.1\n  - nvidia::cudnn\n"
    model, _ = model_with(stack.client, tmp_path, {"model.py": MODEL, "environment.yml": environment})
    started = time.monotonic()

    done = deploy(stack.client, model, unique("condaonly"), timeout=800 if HOST.conda else 60, custom_env=True)

    assert done["status"] == "failed" and "cudatoolkit" in done["error"], done
    if not HOST.conda:  # refused by the deployer before anything reached Ray, naming each
        assert time.monotonic() - started < 60
        assert "cudatoolkit=0.0.1" in done["error"] and "nvidia::cudnn" in done["error"]
        assert "numpy" not in done["error"] and "Install conda on the Ray nodes" in done["error"]
        assert done["environment"] is None and done["ready_replicas"] == 0


def test_a_python_the_nodes_do_not_run_fails_the_deploy_saying_which_they_run(stack, tmp_path):
    other = f"python={sys.version_info.major}.{sys.version_info.minor - 1}"
    model, _ = model_with(
        stack.client, tmp_path, {"model.py": MODEL, "environment.yml": f"dependencies:\n  - {other}\n"}
    )
    done = deploy(stack.client, model, unique("pyenv"), timeout=60, custom_env=True)
    assert done["status"] == "failed", done
    assert other in done["error"] and f"the Ray nodes run Python {HOST.python_version}" in done["error"]


def test_a_package_pip_cannot_find_fails_the_deploy_with_pip_s_reason(stack, tmp_path):
    if HOST.conda:
        pytest.skip(f"conda at {HOST.conda}: environment.yml takes the conda route here")
    missing = f"modelhub-no-such-package-{unique('x')}"
    environment = f"dependencies:\n  - {PYTHON}\n  - conda-forge::{missing}\n"
    model, _ = model_with(stack.client, tmp_path, {"model.py": MODEL, "environment.yml": environment})

    done = deploy(stack.client, model, unique("nopkg"), timeout=800, custom_env=True)

    assert done["status"] == "failed", done  # failed, never left in deploying
    assert missing in done["error"], done["error"]


@pytest.mark.skipif(
    HOST.conda is None,
    reason="no conda where Ray's conda runtime_env looks (RAY_CONDA_HOME, CONDA_EXE, PATH): "
    "the conda route cannot run on this machine",
)
def test_with_conda_environment_yml_takes_the_conda_route(stack, tmp_path):
    environment = f"dependencies:\n  - {PYTHON}\n  - pip\n  - text-unidecode=1.3\n  - pip:\n      - roman==5.2\n"
    model, _ = model_with(stack.client, tmp_path, {"model.py": MODEL, "environment.yml": environment})
    name = unique("condaenv")
    done = deploy(stack.client, model, name, timeout=800, custom_env=True)
    assert done["status"] == "running", done
    assert done["environment"]["route"] == "conda" and HOST.conda in done["environment"]["reason"]
    out = stack.client.post(f"/deployments/{name}/predict", json={"inputs": {"n": [9]}})
    assert out.status_code == 200 and out.json() == {"outputs": {"text": ["IX Strasse"]}}, out.text
    stack.client.delete(f"/deployments/{name}")
