"""`modelhub up / down / status`: the embedded stack's commands (what they start is modelhub.stack
and modelhub.plan; running it is modelhub.supervisor)."""

from __future__ import annotations

import json
import os
import sys

import click

from modelhub import gateways
from modelhub.settings import DATA_DIR_ENV
from modelhub.stack.detach import DEFAULT_UP_TIMEOUT, up_detached
from modelhub.stack.health import seal_warning, unsealed_warning
from modelhub.stack.lifecycle import run_supervisor
from modelhub.stack.ports import DEFAULT_PORT, DEFAULT_REPLICA_NODES, resolve_data_dir
from modelhub.stack.services import services_table
from modelhub.stack.status import all_running, live_status
from modelhub.stack.stop import stop

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    envvar=DATA_DIR_ENV,
    show_envvar=True,
    help="Where the stack keeps its data (default ~/.modelhub).",
)


@click.command()
@data_dir_option
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True, help="Gateway port on 127.0.0.1.")
@click.option("--detach", is_flag=True, help="Run in the background; return once healthy.")
@click.option(
    "--timeout",
    type=float,
    default=DEFAULT_UP_TIMEOUT,
    show_default=True,
    help="With --detach: seconds to wait for the stack to become healthy.",
)
@click.option(
    "--replica-nodes",
    type=click.IntRange(0, 16),
    default=DEFAULT_REPLICA_NODES,
    show_default=True,
    help="Sealed Ray nodes for replicas (0: only nodes you add with "
    "`ray start --address ... --resources '{\"modelhub_replica\": 1}'`).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 32),
    default=1,
    show_default=True,
    help="inference-worker processes sharing the job tasks.",
)
@click.option(
    "--gateways",
    "gateway_count",
    type=click.IntRange(1, 32),
    default=1,
    show_default=True,
    help="gateway processes sharing the port and the job progress.",
)
@click.option(
    "--cluster",
    type=click.IntRange(1, 7),
    default=None,
    help="Run N nats-servers in one JetStream cluster and an N-member MongoDB replica set (own ports and "
    "dirs), to see and test cluster behaviour on one machine (default 1: one of each; MODELHUB_CLUSTER).",
)
@click.option(
    "--allow-unsealed",
    is_flag=True,
    help="Where bubblewrap cannot jail models (not installed, user namespaces refused), run them as plain "
    "processes instead of refusing to start; status, /health and the web UI then say UNSEALED.",
)
def up(
    data_dir: str | None,
    port: int,
    detach: bool,
    timeout: float,
    replica_nodes: int,
    workers: int,
    gateway_count: int,
    cluster: int | None,
    allow_unsealed: bool,
) -> None:
    """Start NATS, MongoDB, a Ray head, replica nodes and the five services for DIR."""
    d = resolve_data_dir(data_dir)
    if cluster is not None:  # read by the plan (CliSettings), here and in a detached supervisor
        os.environ.update(MODELHUB_CLUSTER=str(cluster))
    if allow_unsealed:  # read by the plan (CliSettings), here and in a detached supervisor
        os.environ.update(MODELHUB_ALLOW_UNSEALED="true")
    if not detach:
        sys.exit(run_supervisor(d, port, services_table(workers, gateway_count), replica_nodes=replica_nodes))
    sys.exit(up_detached(d, port, timeout, replica_nodes, workers, gateway_count))


@click.command()
@data_dir_option
def down(data_dir: str | None) -> None:
    """Stop every process that `up` started for DIR (and nothing else)."""
    d = resolve_data_dir(data_dir)
    stopped = stop(d)
    if stopped:
        click.echo("stopped: " + ", ".join(stopped))
    else:
        click.echo(f"nothing running for {d}")


@click.command()
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(data_dir: str | None, as_json: bool) -> None:
    """Show what runs for DIR. Exit 0 when everything runs, 3 otherwise."""
    d = resolve_data_dir(data_dir)
    st = live_status(d)
    ok = all_running(st)
    if as_json:
        click.echo(json.dumps(st))
    else:
        rows = [("supervisor", st["supervisor"]["pid"], st["supervisor"]["state"], "")]
        for name in ("nats", "mongo", "ray"):
            e = st[name]
            info = e.get("url") or e.get("address") or ""
            if name == "ray" and "sealed" in e:
                info += " sealed" if e["sealed"] else " UNSEALED (see the warning below)"
            if e.get("missing"):
                info += " missing: " + ", ".join(e["missing"])
            rows.append((name, e.get("pid"), e["state"], info))
            for member, m in e.get("members", {}).items():
                rows.append((member, m.get("pid"), m["state"], m.get("url", "")))
        for name, e in st["replica_nodes"].items():
            rows.append(
                (name, e.get("pid"), e["state"], "sealed" if e.get("sealed") else "UNSEALED (see the warning below)")
            )
        for name, e in st["services"].items():
            extra = st["gateway_url"] if gateways.is_gateway(name) and st["gateway_url"] else ""
            if e.get("metrics_url") and not gateways.is_gateway(name):  # a gateway's is on its URL
                extra = (extra + " " if extra else "") + e["metrics_url"]
            if e.get("restarts"):
                extra = (extra + " " if extra else "") + f"restarts={e['restarts']}"
            rows.append((name, e.get("pid"), e["state"], extra))
        click.echo(f"data dir: {d}")
        click.echo(f"{'NAME':<18}{'PID':>8}  {'STATE':<11}INFO")
        for name, pid, state, extra in rows:
            click.echo(f"{name:<18}{pid if pid else '-':>8}  {state:<11}{extra}")
        jail = st["models"]["jail"]
        click.echo(f"models: {jail or 'on your Ray cluster (each replica jails its model, or refuses to start)'}")
        unsealed = [e for e in [st["ray"], *st["replica_nodes"].values()] if e.get("sealed") is False]
        if unsealed:
            click.echo(seal_warning(unsealed[0].get("seal_error")), err=True)
        if jail == "UNSEALED":
            click.echo(unsealed_warning(st["models"]["jail_error"]), err=True)
    sys.exit(0 if ok else 3)


COMMANDS: list[click.Command] = [up, down, status]
