"""`modelhub down`: stop the supervisor, then whatever it started that still runs (and nothing else:
a pid counts only while its command line is the one recorded)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import click

from modelhub.stack.status import read_state, server_names
from modelhub.supervisor.procs import cmdline_matches, kill_pids, pid_alive, sweep, wait_gone
from modelhub.supervisor.statefile import read_supervisor_pid, write_json_atomic


def stop(d: Path, quiet: bool = False, wait: float = 90.0) -> list[str]:
    """Stop everything started for d; returns descriptions of what was stopped."""
    stopped: list[str] = []
    state = read_state(d)
    running_before = [
        n
        for n in server_names(state)
        if isinstance(state.get(n), dict) and state[n].get("state") == "running" and pid_alive(state[n].get("pid"))
    ]
    running_before += [
        n for n, s in state.get("replica_nodes", {}).items() if s.get("state") == "running" and pid_alive(s.get("pid"))
    ]
    running_before += [
        n
        for n, s in state.get("services", {}).items()
        if s.get("state") in ("running", "restarting") and pid_alive(s.get("pid"))
    ]
    sup = read_supervisor_pid(d)
    if sup is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(sup, signal.SIGTERM)
        if not quiet:
            click.echo(f"stopping the supervisor (pid {sup}) and what it started ...")
        if wait_gone([sup], wait):
            click.echo(f"warning: the supervisor (pid {sup}) did not exit within {wait:.0f} s; killing it", err=True)
            kill_pids([sup], signal.SIGKILL)
            wait_gone([sup], 5)
        stopped.append(f"supervisor (pid {sup})")
        stopped += running_before
        state = read_state(d)
    # fallback: children recorded in state.json that still run what we started
    leftovers: list[tuple[str, int]] = []
    entries = [(n, state.get(n)) for n in server_names(state)]
    entries += list(state.get("replica_nodes", {}).items())
    entries += list(state.get("services", {}).items())
    for name, entry in entries:
        if not isinstance(entry, dict):
            continue
        pid, argv = entry.get("pid"), entry.get("argv")
        if isinstance(pid, int) and argv and pid_alive(pid) and cmdline_matches(pid, argv):
            leftovers.append((name, pid))
    if leftovers:
        pids = [p for _, p in leftovers]
        kill_pids(pids, signal.SIGTERM)
        left = wait_gone(pids, 10)
        kill_pids(left, signal.SIGKILL)
        wait_gone(left, 5)
        stopped += [f"{n} (pid {p})" for n, p in leftovers if n not in stopped]
    swept = sweep(d, grace=2.0)
    if swept:
        stopped.append(f"{len(swept)} leftover process(es)")
    with contextlib.suppress(FileNotFoundError):
        (d / "supervisor.pid").unlink()
    if state:
        _mark_stopped(d, state)
    return stopped


def _mark_stopped(d: Path, state: dict) -> None:
    changed = False
    for n in [*server_names(state), "supervisor"]:
        e = state.get(n)
        if isinstance(e, dict) and e.get("state") not in ("stopped", "external") and not pid_alive(e.get("pid")):
            e["state"] = "stopped"
            changed = True
    for e in [*state.get("services", {}).values(), *state.get("replica_nodes", {}).values()]:
        if e.get("state") != "stopped" and not pid_alive(e.get("pid")):
            e["state"] = "stopped"
            changed = True
    if changed:
        write_json_atomic(d / "state.json", state)
