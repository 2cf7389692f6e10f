"""The embedded NATS: its config file (the services' user and the `integration` user, no anonymous
access) and its server entry in the plan."""

from __future__ import annotations

import json
from pathlib import Path

from modelhub import integration
from modelhub.plan import HUB_USER, NatsServer
from modelhub.private import write_private
from modelhub.stack.binaries import find_nats_server
from modelhub.stack.secretfiles import secret_file


def write_nats_config(data_dir: Path, password: str, integration_password: str | None = None) -> Path:
    """nats-server's config (mode 0600): the services' user, and the `integration` user for other
    systems (modelhub.integration: it may only send commands as a user and read its own inbox);
    no anonymous access at all."""
    path = data_dir / "nats.conf"
    users = [f"    {{user: {json.dumps(HUB_USER)}, password: {json.dumps(password)}}}"]
    if integration_password is not None:
        users.append(integration.nats_user_entry(integration_password))
    write_private(
        path,
        "# written by `modelhub up` from nats-password and nats-integration-password; edits are overwritten\n"
        "authorization {\n  users: [\n" + "\n".join(users) + "\n  ]\n}\n",
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
