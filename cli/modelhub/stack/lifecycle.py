"""Run the stack in this process: check DIR and the port, build the plan, hold the gateway's
listener and supervise every child until SIGTERM/SIGINT; `python -m modelhub.stack supervise`
is the entry point `up --detach` starts in the background."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from modelhub import gateways
from modelhub.plan import StackPlan
from modelhub.stack.build import build_plan
from modelhub.stack.health import health, ready_message, seal_warning, unsealed_warning
from modelhub.stack.ports import DEFAULT_PORT, DEFAULT_REPLICA_NODES, port_free, resolve_data_dir
from modelhub.stack.services import services_table
from modelhub.supervisor import StackError
from modelhub.supervisor.loop import Supervisor
from modelhub.supervisor.statefile import read_supervisor_pid, write_json_atomic


def prepare(
    data_dir: Path, port: int, services=None, replica_nodes: int = DEFAULT_REPLICA_NODES
) -> tuple[Supervisor, StackPlan]:
    if read_supervisor_pid(data_dir) is not None:
        raise StackError(
            f"a modelhub supervisor is already running for {data_dir} (pid "
            f"{read_supervisor_pid(data_dir)}); run `modelhub down --data-dir "
            f"{data_dir}` first"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    plan = build_plan(data_dir, port, services, replica_nodes)
    stack = plan.stack
    base_state = {"data_dir": str(data_dir), "gateway_url": stack["gateway_url"]}
    sup = Supervisor(data_dir, plan.servers, plan.services, base_state)
    for name in ("nats", "mongo", "ray"):
        if stack["external"][name]:
            key = "address" if name == "ray" else "url"
            base_state[name] = {
                "pid": None,
                "state": "external",
                key: stack["ray_address" if name == "ray" else f"{name}_url"],
            }
    return sup, plan


def run_supervisor(
    data_dir: Path, port: int, services=None, announce: bool = True, replica_nodes: int = DEFAULT_REPLICA_NODES
) -> int:
    """Run the supervisor in this process until SIGTERM/SIGINT; returns an exit code."""
    data_dir = resolve_data_dir(data_dir)
    try:
        if not port_free(port) and read_supervisor_pid(data_dir) is None:
            raise StackError(f"port {port} on 127.0.0.1 is already in use; pick another with --port")
        sup, plan = prepare(data_dir, port, services, replica_nodes)
        sup.acquire()  # before writing stack.json: only one supervisor per DIR
        try:
            listener = gateways.listen(port)  # held for the supervisor's life, shared by the gateways
        except StackError:
            sup.release()
            raise
    except StackError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    gateways.share(plan.services, listener)
    write_json_atomic(data_dir / "stack.json", plan.stack)
    stack = plan.stack

    def echo(msg: str) -> None:
        click.echo(f"[modelhub {time.strftime('%H:%M:%S')}] {msg}", err=True)

    sup.echo = echo
    if stack.get("sealed") is False:
        echo(seal_warning(stack.get("seal_error")))
    if stack.get("models") == "UNSEALED":
        echo(unsealed_warning(stack.get("jail_error")))
    if announce:
        sup.ready_check = lambda: health(stack["gateway_url"])[0]
        sup.on_ready = lambda s: click.echo(ready_message(stack, plan.token_path))
    sup.install_signal_handlers()
    try:
        return sup.run()
    except StackError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    finally:
        listener.close()


@click.group()
def internal():
    """Internal entry points of modelhub.stack."""


@internal.command("supervise")
@click.option("--data-dir", required=True)
@click.option("--port", type=int, default=DEFAULT_PORT)
@click.option("--quiet", is_flag=True, help="Do not poll the gateway's health.")
@click.option("--replica-nodes", type=int, default=DEFAULT_REPLICA_NODES)
@click.option("--workers", type=click.IntRange(1, 32), default=1)
@click.option("--gateways", "gateway_count", type=click.IntRange(1, 32), default=1)
def _supervise(data_dir, port, quiet, replica_nodes, workers, gateway_count):
    sys.exit(
        run_supervisor(
            resolve_data_dir(data_dir),
            port,
            services_table(workers, gateway_count),
            announce=not quiet,
            replica_nodes=replica_nodes,
        )
    )
