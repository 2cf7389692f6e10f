"""Several gateways behind one port (`modelhub up --gateways N`).

The supervisor binds the gateway port once (`listen`) and hands that one listening socket to each
gateway process (`share`): `gateway`, `gateway-2`, ... each accept() on it, and the kernel gives each
connection to one of them. Each is a supervised child of its own: a killed one is restarted alone,
and while none is up, connections wait in the socket's backlog instead of being refused.
(Why not SO_REUSEPORT: see modelhub_gateway.api.listen.)

They need nothing else shared: job progress is folded from durable JetStream consumers that all
gateways bind (each batch goes to one; a killed one's unacked batches go to another after the ack
wait) into MongoDB, where counts are derived from the job ledger, and every read (the job, its
SSE stream, the data view) comes from MongoDB.
"""

from __future__ import annotations

import socket

from modelhub.supervisor import StackError
from modelhub.supervisor.child import ChildSpec

GATEWAY = "gateway"
BACKLOG = 1024
FD_ENV = "MODELHUB_GATEWAY_FD"  # GatewaySettings.gateway_fd
INSTANCE_ENV = "MODELHUB_GATEWAY_INSTANCE"  # GatewaySettings.gateway_instance


def names(count: int) -> list[str]:
    """The gateways' names: `gateway`, `gateway-2`, ... (the first keeps the one-gateway name)."""
    return [GATEWAY] + [f"{GATEWAY}-{i}" for i in range(2, count + 1)]


def is_gateway(name: str) -> bool:
    return name == GATEWAY or (name.startswith(f"{GATEWAY}-") and name[len(GATEWAY) + 1 :].isdigit())


def with_gateways(table: list[tuple[str, list[str]]], count: int) -> list[tuple[str, list[str]]]:
    """The services table with `count` gateway processes in place of its one `gateway` entry."""
    out = []
    for name, argv in table:
        out += [(n, list(argv)) for n in names(count)] if name == GATEWAY else [(name, argv)]
    return out


def listen(port: int, host: str = "127.0.0.1") -> socket.socket:
    """The gateways' listening socket (kept open by the supervisor for its whole life)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # not REUSEPORT: nobody else may join
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StackError(
            f"port {port} on {host} is already in use ({exc.strerror}); pick another with --port"
        ) from None
    sock.listen(BACKLOG)
    return sock


def share(specs: list[ChildSpec], sock: socket.socket) -> None:
    """Hand `sock` to every gateway among `specs` (only to them: other children never inherit it),
    each with its own instance name."""
    for spec in specs:
        if is_gateway(spec.name):
            spec.env = {**spec.env, FD_ENV: str(sock.fileno()), INSTANCE_ENV: spec.name}
            spec.pass_fds = (sock.fileno(),)
