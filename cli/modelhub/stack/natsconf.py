"""The embedded NATS: its config file (the services' user and the `integration` user, no anonymous
access) and its server entry in the plan."""

from __future__ import annotations

import json
from pathlib import Path

from modelhub import integration
from modelhub.plan import HUB_USER, LOOPBACK, NatsCluster, NatsServer
from modelhub.private import write_private
from modelhub.stack.binaries import find_nats_server
from modelhub.stack.secretfiles import secret_file

CLUSTER_NAME = "modelhub"


def cluster_block(route_port: int, route_ports: list[int], password: str) -> str:
    """A member's `cluster {}`: its route listener and every member's route (its own is skipped by
    nats-server), routes authenticated with the services' user and password (0600 file, not argv)."""
    routes = ", ".join(json.dumps(f"nats-route://{HUB_USER}:{password}@{LOOPBACK}:{p}") for p in route_ports)
    return (
        f"cluster {{\n  name: {CLUSTER_NAME}\n  listen: {json.dumps(f'{LOOPBACK}:{route_port}')}\n"
        f"  authorization {{user: {json.dumps(HUB_USER)}, password: {json.dumps(password)}}}\n"
        f"  routes: [{routes}]\n}}\n"
    )


def write_nats_config(
    data_dir: Path,
    password: str,
    integration_password: str | None = None,
    cluster: str = "",
    path: Path | None = None,
) -> Path:
    """nats-server's config (mode 0600): the services' user, and the `integration` user for other
    systems (modelhub.integration: it may only send commands as a user and read its own inbox);
    no anonymous access at all. A cluster member's also holds its `cluster {}` block."""
    path = path or data_dir / "nats.conf"
    users = [f"    {{user: {json.dumps(HUB_USER)}, password: {json.dumps(password)}}}"]
    if integration_password is not None:
        users.append(integration.nats_user_entry(integration_password))
    write_private(
        path,
        "# written by `modelhub up` from nats-password and nats-integration-password; edits are overwritten\n"
        "authorization {\n  users: [\n" + "\n".join(users) + "\n  ]\n}\n" + cluster,
    )
    return path


def nats_server(data_dir: Path, port: int) -> NatsServer:
    """The embedded NATS: its store, its two users' passwords (created once, 0600) and its config."""
    (data_dir / "nats").mkdir(exist_ok=True)
    password = secret_file(data_dir / "nats-password").read_text().strip()
    integration_password = secret_file(data_dir / "nats-integration-password").read_text().strip()
    return NatsServer(
        find_nats_server(),
        port,
        data_dir / "nats",
        write_nats_config(data_dir, password, integration_password),
        password,
        integration_password,
    )


def nats_cluster(data_dir: Path, members: list[dict]) -> NatsCluster:
    """`up --cluster N`: member i stores under DIR/nats-<i>, reads DIR/nats-<i>.conf, and routes to
    every other member; the same two users (and passwords) as the single server."""
    password = secret_file(data_dir / "nats-password").read_text().strip()
    integration_password = secret_file(data_dir / "nats-integration-password").read_text().strip()
    route_ports = [m["route"] for m in members]
    servers = []
    for i, member in enumerate(members):
        (data_dir / f"nats-{i}").mkdir(exist_ok=True)
        config = write_nats_config(
            data_dir,
            password,
            integration_password,
            cluster_block(member["route"], route_ports, password),
            data_dir / f"nats-{i}.conf",
        )
        servers.append(
            NatsServer(
                find_nats_server(),
                member["client"],
                data_dir / f"nats-{i}",
                config,
                password,
                integration_password,
                name=f"nats-{i}",
            )
        )
    return NatsCluster(tuple(servers))
