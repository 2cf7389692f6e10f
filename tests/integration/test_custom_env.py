"""custom_env: the replica's environment is built from the package's requirements.txt (Ray runtime_env)."""

import pytest
from conftest import create_model, deploy, make_zip, unique

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

MODEL = """
import humanize  # not installed in modelhub's own environment: only the custom env has it


class Model:
    def __init__(self, model_dir):
        pass

    def predict(self, batch):
        return {"text": [humanize.intcomma(n) for n in batch["n"]]}
"""
SCHEMA = {
    "inputs": {"type": "object", "properties": {"n": {"type": "number"}}},
    "outputs": {"type": "object", "properties": {"text": {"type": "text"}}},
}


def test_requirements_txt_builds_the_replica_environment(stack, tmp_path):
    client = stack.client
    package = make_zip(tmp_path / "env.zip", {"model.py": MODEL, "requirements.txt": "humanize==4.9.0\n"})
    plain, custom = unique("plain"), unique("custom")
    model = unique("envmodel")
    create_model(client, model, package, SCHEMA)

    without = deploy(client, model, plain, timeout=240)
    assert without["status"] == "failed" and "humanize" in without["error"], without

    with_env = deploy(client, model, custom, timeout=800, custom_env=True)
    assert with_env["status"] == "running", with_env
    out = client.post(f"/deployments/{custom}/predict", json={"inputs": {"n": [1234567]}})
    assert out.status_code == 200 and out.json() == {"outputs": {"text": ["1,234,567"]}}
    client.delete(f"/deployments/{custom}")


def test_custom_env_without_requirements_is_refused_with_a_reason(stack, tmp_path):
    client = stack.client
    model = unique("noenv")
    create_model(
        client,
        model,
        make_zip(
            tmp_path / "n.zip",
            {
                "model.py": "class Model:\n    def __init__(self, d): pass\n    def predict(self, b): return {'text': []}\n"
            },
        ),
        SCHEMA,
    )
    failed = deploy(client, model, unique("dep"), custom_env=True)
    assert failed["status"] == "failed"
    assert "requirements.txt" in failed["error"] and "environment.yml" in failed["error"]
