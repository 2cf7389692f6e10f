"""Processes that hold the hub's credentials are no Ray drivers: building each service's app (and
importing the CLI's stack and supervisor) must not import ray. A fresh interpreter per check, so
that nothing imported by other tests counts."""

import subprocess
import sys

import pytest

BUILD = {
    "deployer": "from modelhub_deployer.app import build_app; build_app()",
    "inference-worker": "from modelhub_worker.app import build_app; from modelhub_runtime.settings import "
    "ServiceSettings; build_app(ServiceSettings())",
    "gateway": "import modelhub_gateway.app",
    "registry": "import modelhub_registry.app",
    "scheduler": "import modelhub_scheduler.app",
    "supervisor": "import modelhub.stack.lifecycle, modelhub.stack.detach, modelhub.commands.stack",
}


@pytest.mark.parametrize("service", sorted(BUILD))
def test_the_service_never_imports_ray(service):
    code = f"import sys\n{BUILD[service]}\nprint(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", f"{service} imported ray: {out.stdout[-500:]}"
