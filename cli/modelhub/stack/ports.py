"""Where the embedded stack listens: DIR, the ports recorded in DIR/stack.json (reused while free)
and free ones picked below the ephemeral range, so that two stacks never collide."""

from __future__ import annotations

import json
import os
import random
import socket
from pathlib import Path

from modelhub.settings import CliSettings
from modelhub.supervisor import StackError

DEFAULT_PORT = 8000
DEFAULT_REPLICA_NODES = 1
PORT_RANGE = (20000, 32000)  # below the usual ephemeral range (32768+)


# Ray ports we pin (besides the GCS port) so two stacks never collide.
RAY_PORT_NAMES = (
    "gcs",
    "node_manager",
    "object_manager",
    "client_server",
    "dashboard",
    "dashboard_agent_listen",
    "dashboard_agent_grpc",
    "metrics_export",
    "runtime_env_agent",
    "autoscaler_metrics",
    "dashboard_metrics",
    "serve_http",
)
RAY_WORKER_PORTS = 200
REPLICA_NODE_PORT_NAMES = (
    "node_manager",
    "object_manager",
    "dashboard_agent_listen",
    "dashboard_agent_grpc",
    "metrics_export",
    "runtime_env_agent",
)
REPLICA_NODE_WORKER_PORTS = 100


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    return CliSettings().data_path(data_dir)


def port_free(port: int) -> bool:
    if not 0 < port < 65536:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # like the servers themselves: TIME_WAIT leftovers of an earlier run don't count
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(taken: set[int]) -> int:
    for _ in range(2000):
        port = random.randrange(*PORT_RANGE)
        if port not in taken and port_free(port):
            taken.add(port)
            return port
    raise StackError("could not find a free TCP port on 127.0.0.1")


def _pick_range(size: int, taken: set[int]) -> int:
    for _ in range(200):
        base = random.randrange(PORT_RANGE[0], PORT_RANGE[1] - size)
        ports = range(base, base + size)
        if not taken.intersection(ports) and all(port_free(p) for p in ports):
            taken.update(ports)
            return base
    raise StackError(f"could not find {size} consecutive free TCP ports on 127.0.0.1")


def load_stack_json(data_dir: Path) -> dict:
    try:
        return json.loads((data_dir / "stack.json").read_text())
    except (OSError, ValueError):
        return {}


def _at(members: list, i: int, key: str):
    return members[i].get(key) if i < len(members) and isinstance(members[i], dict) else None


def allocate_ports(
    data_dir: Path, *, nats: bool, mongo: bool, ray: bool, replica_nodes: int = 0, cluster: int = 1
) -> dict:
    """Ports for the embedded servers: the recorded ones when still free, else new free ones
    (replica nodes get new ones each time: nothing outside the stack needs to know them). With
    `cluster` N > 1: N NATS members (client and route port each) and N mongods, recorded as
    `nats_members` and `mongo_members` (`nats` and `mongo` name the first)."""
    old = load_stack_json(data_dir).get("ports", {})
    taken: set[int] = set()

    def reuse_or_pick(recorded) -> int:
        if isinstance(recorded, int) and recorded not in taken and port_free(recorded):
            taken.add(recorded)
            return recorded
        return pick_port(taken)

    ports: dict = {}
    if nats:
        ports["nats"] = reuse_or_pick(old.get("nats"))
    if mongo:
        ports["mongo"] = reuse_or_pick(old.get("mongo"))
    if cluster > 1:
        # the members' ports are kept from run to run: the replica set's config and the JetStream
        # cluster's routes name them
        old_nats, old_mongo = old.get("nats_members") or [], old.get("mongo_members") or []
        if nats:
            ports["nats_members"] = [
                {"client": ports["nats"] if i == 0 else reuse_or_pick(_at(old_nats, i, "client"))}
                | {"route": reuse_or_pick(_at(old_nats, i, "route"))}
                for i in range(cluster)
            ]
        if mongo:
            ports["mongo_members"] = [
                ports["mongo"] if i == 0 else reuse_or_pick(old_mongo[i] if i < len(old_mongo) else None)
                for i in range(cluster)
            ]
    if ray:
        old_ray = old.get("ray", {}) or {}
        ports["ray"] = {name: reuse_or_pick(old_ray.get(name)) for name in RAY_PORT_NAMES}
        lo = old_ray.get("min_worker")
        hi = old_ray.get("max_worker")
        if (
            isinstance(lo, int)
            and isinstance(hi, int)
            and hi - lo + 1 == RAY_WORKER_PORTS
            and not taken.intersection(range(lo, hi + 1))
            and all(port_free(p) for p in range(lo, hi + 1))
        ):
            taken.update(range(lo, hi + 1))
        else:
            lo = _pick_range(RAY_WORKER_PORTS, taken)
            hi = lo + RAY_WORKER_PORTS - 1
        ports["ray"]["min_worker"] = lo
        ports["ray"]["max_worker"] = hi
    ports["replica_nodes"] = []
    for _ in range(replica_nodes if ray else 0):
        node = {name: pick_port(taken) for name in REPLICA_NODE_PORT_NAMES}
        node["min_worker"] = _pick_range(REPLICA_NODE_WORKER_PORTS, taken)
        node["max_worker"] = node["min_worker"] + REPLICA_NODE_WORKER_PORTS - 1
        ports["replica_nodes"].append(node)
    return ports
