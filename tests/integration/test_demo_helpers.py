"""`make demo`'s status helpers (scripts/demo-lib.sh, which scripts/demo.sh sources) on a first run:
against a real stack where the deployment does not exist yet, they answer quietly (nothing on
stdout, status 0) and print no traceback or warning, as the demo's user would otherwise see."""

import os
import shlex
import subprocess
import sys

import pytest
from conftest import ROOT, Stack, unique

LIB = ROOT / "scripts" / "demo-lib.sh"


def helper(stack: Stack, call: str) -> subprocess.CompletedProcess:
    """`call` in bash with the helpers sourced, under demo.sh's own shell options and with what
    demo.sh exports (the stack's URL and token; MH and PY as this interpreter runs them)."""
    python = shlex.quote(sys.executable)
    env = {k: v for k, v in os.environ.items() if k != "MODELHUB_PROFILE"} | {
        "MODELHUB_URL": f"http://127.0.0.1:{stack.port}",
        "MODELHUB_TOKEN": stack.token,
        "MH": f"{python} -m modelhub",
        "PY": python,
    }
    script = f"set -euo pipefail; . {shlex.quote(str(LIB))}; {call}"
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "call",
    [
        "deployment_status {name}",
        "wait_while_deployment_changes {name} 4",
        '[ "$(deployment_status {name})" != running ]',
    ],
)
def test_the_demo_helpers_are_quiet_when_the_deployment_does_not_exist(stack, call):
    name = unique("demo-absent")
    result = helper(stack, call.format(name=name))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr
