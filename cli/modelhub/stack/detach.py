"""`modelhub up --detach`: start the supervisor as a background process and wait for the stack's
health, showing what it waits for; on a timeout, show the failing logs and stop what started."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import click

from modelhub.stack.health import health, ready_message, tail
from modelhub.stack.ports import DEFAULT_REPLICA_NODES, load_stack_json, port_free
from modelhub.stack.status import read_state
from modelhub.stack.stop import stop
from modelhub.supervisor.statefile import read_supervisor_pid

DEFAULT_UP_TIMEOUT = 180.0


def up_detached(
    d: Path,
    port: int,
    timeout: float,
    replica_nodes: int = DEFAULT_REPLICA_NODES,
    workers: int = 1,
    gateway_count: int = 1,
) -> int:
    pid = read_supervisor_pid(d)
    if pid is not None:
        click.echo(
            f"error: a modelhub supervisor is already running for {d} (pid {pid}); "
            f"run `modelhub down --data-dir {d}` first",
            err=True,
        )
        return 1
    if not port_free(port):
        click.echo(f"error: port {port} on 127.0.0.1 is already in use; pick another with --port", err=True)
        return 1
    d.mkdir(parents=True, exist_ok=True)
    logs = d / "logs"
    logs.mkdir(exist_ok=True)
    sup_log = logs / "supervisor.log"
    with open(sup_log, "ab", buffering=0) as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} modelhub up --detach\n".encode())
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelhub.stack",
                "supervise",
                "--data-dir",
                str(d),
                "--port",
                str(port),
                "--replica-nodes",
                str(replica_nodes),
                "--workers",
                str(workers),
                "--gateways",
                str(gateway_count),
                "--quiet",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    start = time.monotonic()
    tty = sys.stderr.isatty()
    body = None
    while True:
        if proc.poll() is not None:
            _clear(tty)
            click.echo(
                f"error: the supervisor exited with code {proc.returncode}; last lines of {sup_log}:\n{tail(sup_log)}",
                err=True,
            )
            return 1
        ok, body = health(url)
        if ok:
            break
        if time.monotonic() > deadline:
            _clear(tty)
            click.echo(f"error: the stack did not become healthy within {timeout:.0f} s", err=True)
            for path in _failing_logs(d, body):
                click.echo(f"--- last lines of {path}:\n{tail(path)}", err=True)
            click.echo("stopping what was started ...", err=True)
            stop(d, quiet=True)
            return 1
        waiting = _waiting_for(d, body)
        msg = f"starting modelhub in {d} ... {time.monotonic() - start:.0f}s ({waiting})"
        if tty:
            click.echo(f"\r\033[K{msg}", nl=False, err=True)
        elif int(time.monotonic() - start) % 10 == 0:
            click.echo(msg, err=True)
        time.sleep(1.0)
    _clear(tty)
    stack = load_stack_json(d)
    token_path = stack.get("token_path")
    click.echo(ready_message(stack, token_path))
    return 0


def _clear(tty: bool) -> None:
    if tty:
        click.echo("\r\033[K", nl=False, err=True)


def _waiting_for(d: Path, body) -> str:
    if isinstance(body, dict) and isinstance(body.get("services"), dict):
        missing = [k for k, v in body["services"].items() if v is not True]
        if missing:
            return "waiting for " + ", ".join(missing)
    state = read_state(d)
    up_ = [
        n
        for n in ("nats", "mongo", "ray")
        if isinstance(state.get(n), dict) and state[n].get("state") in ("running", "external")
    ]
    if state.get("services", {}).get("gateway", {}).get("pid"):
        return "waiting for the gateway"
    return "starting servers" + (f" ({', '.join(up_)} up)" if up_ else "")


def _failing_logs(d: Path, body) -> list[Path]:
    logs = d / "logs"
    names: list[str] = []
    if isinstance(body, dict) and isinstance(body.get("services"), dict):
        names = [k for k, v in body["services"].items() if v is not True]
    if not names:
        state = read_state(d)
        names = [
            n
            for n in ("nats", "mongo", "ray")
            if isinstance(state.get(n), dict)
            and state[n].get("state") != "running"
            and state[n].get("state") != "external"
        ]
        names += [n for n, s in state.get("replica_nodes", {}).items() if s.get("state") != "running"]
        names += [n for n, s in state.get("services", {}).items() if s.get("state") != "running"]
        if not names:
            names = ["gateway"]
    paths = [logs / f"{n}.log" for n in names] + [logs / "supervisor.log"]
    return [p for p in paths if p.exists()]
