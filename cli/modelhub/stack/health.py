"""Is the stack up: the gateway's /health, a log's last lines, and what `up` says once it is ready
(the URL, where the admin token is, and loud warnings for what runs unsealed)."""

from __future__ import annotations

import os
from pathlib import Path

from modelhub.plan import REPLICA_RESOURCE


def health(url: str, timeout: float = 2.0) -> tuple[bool, dict | None]:
    import httpx

    try:
        r = httpx.get(f"{url}/api/v1/health", timeout=timeout)
    except httpx.HTTPError:
        return False, None
    try:
        body = r.json()
    except ValueError:
        body = None
    if r.status_code != 200 or not isinstance(body, dict):
        return False, body
    svcs = body.get("services")
    ok = isinstance(svcs, dict) and bool(svcs) and all(v is True for v in svcs.values())
    return ok, body


def tail(path: Path, lines: int = 25) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(data.splitlines()[-lines:])


def seal_warning(seal_error: str | None) -> str:
    return (
        "WARNING: the Ray head and replica nodes run UNSEALED: the kernel refused a mount/PID "
        f"namespace ({seal_error}); model code can read the hub's data dir and processes"
    )


def unsealed_warning(jail_error: str | None) -> str:
    return (
        f"WARNING: models run UNSEALED (--allow-unsealed; {jail_error}): a model's code runs as this OS user, "
        "outside any jail"
    )


def ready_message(stack: dict, token_path) -> str:
    where = token_path if token_path else "the MODELHUB_ADMIN_TOKEN environment variable"
    msg = (
        f"modelhub is up: {stack['gateway_url']}\n"
        f"admin token: {where}\n"
        f"data dir: {stack['data_dir']}  (stop with: modelhub down --data-dir {stack['data_dir']})"
    )
    nodes = stack.get("replica_nodes", 0)
    if stack.get("models") == "UNSEALED":
        msg += "\n" + unsealed_warning(stack.get("jail_error"))
    elif stack.get("models") == "jailed":
        msg += "\nmodels: jailed (bubblewrap: own user, PID, network namespaces; no capabilities)"
    if stack.get("sealed") is False:
        msg += "\n" + seal_warning(stack.get("seal_error"))
    elif nodes:
        msg += f"\nreplica nodes: {nodes}, sealed (own mount and PID namespaces)"
    elif not stack.get("external", {}).get("ray"):
        msg += f"\nreplica nodes: none; replicas wait for a Ray node with the {REPLICA_RESOURCE} resource"
    return msg
