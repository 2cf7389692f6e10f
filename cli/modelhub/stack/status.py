"""What runs for DIR, read from DIR/state.json and checked against the live processes (`modelhub
status`), and where a stack for DIR is (`stack_info`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from modelhub import gateways
from modelhub.stack.ports import DEFAULT_PORT, load_stack_json, resolve_data_dir
from modelhub.stack.services import SERVICE_NAMES
from modelhub.supervisor.procs import cmdline_matches, pid_alive
from modelhub.supervisor.statefile import read_supervisor_pid


def stack_info(data_dir=None) -> dict:
    """Where the stack for DIR is: {"gateway_url", "token_path", "data_dir", "running"}."""
    d = resolve_data_dir(data_dir)
    rec = load_stack_json(d)
    url = rec.get("gateway_url") or f"http://127.0.0.1:{DEFAULT_PORT}"
    token_path = rec.get("token_path")
    if token_path is None and not rec and (d / "admin-token").exists():
        token_path = str(d / "admin-token")
    return {
        "data_dir": str(d),
        "gateway_url": url,
        "token_path": token_path,
        "running": read_supervisor_pid(d) is not None,
    }


def read_state(d: Path) -> dict:
    try:
        return json.loads((d / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def live_status(d: Path) -> dict:
    state = read_state(d)
    out: dict = {}

    def live(entry) -> dict:
        if not isinstance(entry, dict):
            return {"pid": None, "state": "stopped"}
        e = {k: v for k, v in entry.items() if k not in ("argv", "log")}
        if e.get("state") == "external":
            return e
        pid, argv = entry.get("pid"), entry.get("argv")
        alive = isinstance(pid, int) and pid_alive(pid) and (not argv or cmdline_matches(pid, argv))
        if alive:
            e["state"] = "running"
        elif entry.get("state") == "restarting" and sup_alive:
            e["state"] = "restarting"
        else:
            e["state"] = "stopped"
        return e

    sup_pid = read_supervisor_pid(d)
    sup_alive = sup_pid is not None
    record = load_stack_json(d)
    for name in ("nats", "mongo", "ray"):
        members = {key: live(e) for key, e in state.items() if re.fullmatch(rf"{name}-\d+", key)}
        out[name] = cluster_status(members, record.get(f"{name}_url")) if members else live(state.get(name))
    out["replica_nodes"] = {name: live(e) for name, e in state.get("replica_nodes", {}).items()}
    services = state.get("services", {})
    out["services"] = {name: live(services.get(name)) for name in SERVICE_NAMES}
    for name, entry in services.items():  # a custom table (tests) may have other names
        if name not in out["services"]:
            out["services"][name] = live(entry)
    out["gateways"] = [name for name in out["services"] if gateways.is_gateway(name)]  # one port, shared
    out["supervisor"] = {"pid": sup_pid, "state": "running" if sup_alive else "stopped"}
    out["gateway_url"] = state.get("gateway_url") or record.get("gateway_url")
    out["models"] = {"jail": record.get("models"), "jail_error": record.get("jail_error")}
    out["data_dir"] = str(d)
    return out


def server_names(state: dict) -> list[str]:
    """The servers in state.json: nats, mongo, ray, and `up --cluster N`'s members (nats-0, mongo-0, ...)."""
    return [key for key in state if re.fullmatch(r"(nats|mongo|ray)(-\d+)?", key)]


def cluster_status(members: dict[str, dict], url: str | None) -> dict:
    """`up --cluster N`'s NATS or MongoDB as one entry: running while every member runs, `degraded`
    naming the missing members otherwise (a majority still serves: 2 of 3), its members beside."""
    missing = [name for name, e in members.items() if e["state"] != "running"]
    return {
        "pid": None,
        "state": "degraded" if missing else "running",
        "url": url,
        "members": members,
        "missing": missing,
    }


def all_running(st: dict) -> bool:
    parts = [st["nats"], st["mongo"], st["ray"], *st["replica_nodes"].values(), *st["services"].values()]
    return st["supervisor"]["state"] == "running" and all(p.get("state") in ("running", "external") for p in parts)
