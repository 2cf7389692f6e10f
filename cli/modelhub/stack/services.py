"""The five services `up` starts as processes (more inference workers and gateways on request)."""

from __future__ import annotations

import sys
from pathlib import Path

from modelhub import gateways, ops
from modelhub.plan import ServiceProcess
from modelhub.stack.ports import pick_port

SERVICE_NAMES = ("registry", "deployer", "scheduler", "inference-worker", "gateway")

# The services table: (status name, argv). Plain data so tests (and experiments) can swap it.
# The gateway comes last: it answers /health once the others are reachable.
SERVICES: list[tuple[str, list[str]]] = [
    ("registry", [sys.executable, "-m", "modelhub_registry"]),
    ("deployer", [sys.executable, "-m", "modelhub_deployer"]),
    ("scheduler", [sys.executable, "-m", "modelhub_scheduler"]),
    ("inference-worker", [sys.executable, "-m", "modelhub_worker"]),
    ("gateway", [sys.executable, "-m", "modelhub_gateway"]),
]


def services_table(workers: int = 1, gateway_count: int = 1) -> list[tuple[str, list[str]]]:
    """SERVICES with `workers` inference-worker processes: `inference-worker`, then
    `inference-worker-2` ... They share the task consumer (each task goes to one of them, a dead
    one's tasks are redelivered to the others), so counts stay exact with any number. Likewise
    `gateway_count` gateways behind one port (modelhub.gateways)."""
    table = []
    for name, argv in SERVICES:
        table.append((name, argv))
        if name == "inference-worker":
            table += [(f"{name}-{i}", list(argv)) for i in range(2, workers + 1)]
    return gateways.with_gateways(table, gateway_count)


def service_processes(
    services: list[tuple[str, list[str]]], ports: dict, port: int, data_dir: Path
) -> list[ServiceProcess]:
    http = ops.http_ports([name for name, _ in services], ports, port, pick_port)
    return [ServiceProcess(name, list(argv), http[name], data_dir) for name, argv in services]
