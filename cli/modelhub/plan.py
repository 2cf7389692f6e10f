"""What `modelhub up` starts, one small spec per server: `NatsServer`, `MongoServer`, `RayHead`,
`ReplicaNode`, `ServiceProcess` (the five services, `--workers` and `--gateways` copies included),
gathered in a `StackPlan`.

Why specs: each server's command line, its URLs with and without credentials, and what state.json
shows of it are derived in one place from a few fields (port, paths, password), so a reader (or a
test) can see one server without reading the others. Each spec turns into the supervisor's
`ChildSpec` with `child(env)`; the environment is the caller's, because what a child may see
(the services get credentials, Ray nodes a clean environment) is decided in modelhub.stack.

Nothing here touches the file system or the network: modelhub.stack picks ports, creates the
secret files and finds the binaries, then fills these in.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelhub import gateways, integration, ops, sandbox
from modelhub.supervisor.child import ChildSpec

HUB_USER = "modelhub"  # the one NATS and MongoDB user of the embedded servers: the services
# The Ray resource that marks a node as one for replicas (the deployer asks for a share of it).
REPLICA_RESOURCE = "modelhub_replica"
RAY_OBJECT_STORE_BYTES = 300 * 1024 * 1024
LOOPBACK = "127.0.0.1"
# `ray start` styles its messages with colorful, which Ray forces to 8 ANSI colours whether or not
# stdout is a terminal; its own `--log-color false` turns that off, so DIR/logs stay plain text.
RAY_PLAIN_LOGS = ("--log-color", "false")


def sealed(argv: list[str], hide: list[str], seal_error: str | None) -> list[str]:
    """`argv` run through modelhub.sandbox (own mount and PID namespaces, tmpfs over `hide`),
    or as it is when the kernel refused namespaces (`seal_error`, reported by up and status)."""
    if seal_error is not None:
        return argv
    hides = [a for path in hide for a in ("--hide", path)]
    return [*sandbox.unshare_argv(), sys.executable, "-m", "modelhub.sandbox", *hides, "--", *argv]


def _ray_node_ports(ports: dict[str, int]) -> list[str]:
    """The `ray start` port (and log colour) flags a head and a replica node share."""
    return [
        *RAY_PLAIN_LOGS,
        "--node-manager-port",
        str(ports["node_manager"]),
        "--object-manager-port",
        str(ports["object_manager"]),
        "--min-worker-port",
        str(ports["min_worker"]),
        "--max-worker-port",
        str(ports["max_worker"]),
        "--dashboard-agent-listen-port",
        str(ports["dashboard_agent_listen"]),
        "--dashboard-agent-grpc-port",
        str(ports["dashboard_agent_grpc"]),
        "--metrics-export-port",
        str(ports["metrics_export"]),
        "--runtime-env-agent-port",
        str(ports["runtime_env_agent"]),
        "--object-store-memory",
        str(RAY_OBJECT_STORE_BYTES),
        "--disable-usage-stats",
    ]


@dataclass(frozen=True)
class NatsServer:
    """nats-server with JetStream on 127.0.0.1, no anonymous client (users in `config`)."""

    binary: str
    port: int
    store_dir: Path
    config: Path
    password: str = field(repr=False)
    integration_password: str = field(repr=False)
    name: str = "nats"  # nats-<i> in a cluster (`up --cluster N`)

    @property
    def url(self) -> str:
        """What stack.json, state.json and `status` show: no credentials."""
        return f"nats://{LOOPBACK}:{self.port}"

    @property
    def credentials_url(self) -> str:
        """The services' URL (their environment and credentials.json only)."""
        return f"nats://{HUB_USER}:{self.password}@{LOOPBACK}:{self.port}"

    @property
    def integration_url(self) -> str:
        """Other systems' URL (modelhub.integration: commands as a user, its own inbox)."""
        return f"nats://{integration.NATS_USER}:{self.integration_password}@{LOOPBACK}:{self.port}"

    def argv(self) -> list[str]:
        return [
            self.binary,
            "-c",
            str(self.config),
            "-a",
            LOOPBACK,
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self.store_dir),
            "-n",
            f"modelhub-{self.port}",
        ]

    def child(self, env: dict[str, str]) -> ChildSpec:
        return ChildSpec(
            self.name, self.argv(), env, kind="nats", ready_ports=[self.port], ready_timeout=30, info={"url": self.url}
        )

    def children(self, env: dict[str, str]) -> list[ChildSpec]:
        return [self.child(env)]


@dataclass(frozen=True)
class NatsCluster:
    """`up --cluster N`: N nats-servers routed into one JetStream cluster (each its own store, port
    and config with a `cluster {}` block). Its URLs are the members' comma-separated: a server pool."""

    members: tuple[NatsServer, ...]

    @property
    def url(self) -> str:
        return ",".join(m.url for m in self.members)

    @property
    def credentials_url(self) -> str:
        return ",".join(m.credentials_url for m in self.members)

    @property
    def integration_url(self) -> str:
        return ",".join(m.integration_url for m in self.members)

    def children(self, env: dict[str, str]) -> list[ChildSpec]:
        return [m.child(env) for m in self.members]


@dataclass(frozen=True)
class MongoServer:
    """mongod on 127.0.0.1 with --auth; `after_ready` creates (or checks) the services' user."""

    binary: str
    port: int
    dbpath: Path
    password: str = field(repr=False)
    name: str = "mongo"  # mongo-<i> in a replica set (`up --cluster N`)
    replica_set: str | None = None
    keyfile: Path | None = None  # how the members authenticate each other (--auth needs one in a set)

    @property
    def url(self) -> str:
        return f"mongodb://{LOOPBACK}:{self.port}"

    @property
    def credentials_url(self) -> str:
        return f"mongodb://{HUB_USER}:{self.password}@{LOOPBACK}:{self.port}/?authSource=admin"

    def argv(self) -> list[str]:
        return [
            self.binary,
            "--dbpath",
            str(self.dbpath),
            "--bind_ip",
            LOOPBACK,
            "--port",
            str(self.port),
            "--nounixsocket",
            "--wiredTigerCacheSizeGB",
            "1",
            "--auth",
            *(["--replSet", self.replica_set] if self.replica_set else []),
            *(["--keyFile", str(self.keyfile)] if self.keyfile else []),
        ]

    def child(self, env: dict[str, str], after_ready: Callable[[], None] | None = None) -> ChildSpec:
        return ChildSpec(
            self.name,
            self.argv(),
            env,
            kind="mongo",
            ready_ports=[self.port],
            ready_timeout=60,
            info={"url": self.url},
            after_ready=after_ready,
        )


@dataclass(frozen=True)
class MongoReplicaSet:
    """`up --cluster N`: N mongods in one replica set, keyfile-authenticated among themselves, the
    services' user as on one mongod; the set is initiated (and the user created) once the last is up."""

    members: tuple[MongoServer, ...]
    name: str

    @property
    def password(self) -> str:
        return self.members[0].password

    @property
    def hosts(self) -> str:
        return ",".join(f"{LOOPBACK}:{m.port}" for m in self.members)

    @property
    def url(self) -> str:
        return f"mongodb://{self.hosts}/?replicaSet={self.name}"

    @property
    def credentials_url(self) -> str:
        return f"mongodb://{HUB_USER}:{self.password}@{self.hosts}/?replicaSet={self.name}&authSource=admin"


@dataclass(frozen=True)
class RayHead:
    """The control plane's Ray head: dashboard (Serve's REST API) and Serve's proxy on 127.0.0.1.

    Sealed too (DIR hidden, its own /proc, a clean environment): a replica is a Ray member and can
    start Ray tasks on the head, so the head's workers must not see the hub either. No service is a
    Ray driver: they reach Ray over HTTP (the dashboard, Serve's proxy)."""

    binary: str
    ports: dict[str, int]
    temp_dir: str
    data_dir: Path
    seal_error: str | None

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.ports['gcs']}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['dashboard']}"

    @property
    def serve_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['serve_http']}"

    def argv(self) -> list[str]:
        return [
            self.binary,
            "start",
            "--head",
            "--block",
            "--node-ip-address",
            LOOPBACK,
            "--port",
            str(self.ports["gcs"]),
            # the dashboard serves Serve's REST API, the deployer's only way to Serve
            "--include-dashboard",
            "true",
            "--dashboard-host",
            LOOPBACK,
            "--dashboard-port",
            str(self.ports["dashboard"]),
            "--temp-dir",
            self.temp_dir,
            "--ray-client-server-port",
            str(self.ports["client_server"]),
            *_ray_node_ports(self.ports),
        ]

    def child(self, env: dict[str, str]) -> ChildSpec:
        return ChildSpec(
            "ray",
            sealed(self.argv(), [str(self.data_dir)], self.seal_error),
            env,
            kind="ray",
            ready_ports=[self.ports["gcs"], self.ports["node_manager"]],
            ready_timeout=120,
            info={"address": self.address, "sealed": self.seal_error is None},
        )


@dataclass(frozen=True)
class ReplicaNode:
    """A Ray node that joins the head with the replica resource, sealed off from the hub (DIR and the
    head's temp dir hidden) unless the kernel refused namespaces (`seal_error`)."""

    index: int
    ports: dict[str, int]
    head: RayHead

    @property
    def name(self) -> str:
        return f"replica-node-{self.index}"

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "modelhub.raynode",
            "start",
            "--address",
            self.head.address,
            "--block",
            "--node-ip-address",
            LOOPBACK,
            "--temp-dir",
            f"{self.head.temp_dir}r{self.index}",
            "--resources",
            json.dumps({REPLICA_RESOURCE: 1}),
            *_ray_node_ports(self.ports),
        ]

    def child(self, env: dict[str, str]) -> ChildSpec:
        # `ray start --address` refuses to join with it off; --node-ip-address keeps it on 127.0.0.1
        env = {**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}
        seal_error = self.head.seal_error
        argv = sealed(self.argv(), [str(self.head.data_dir), self.head.temp_dir], seal_error)
        return ChildSpec(
            self.name,
            argv,
            env,
            kind="replica-node",
            ready_ports=[self.ports["node_manager"]],
            ready_timeout=240,
            restart_with="ray",
            info={"sealed": seal_error is None, "seal_error": seal_error, "resources": {REPLICA_RESOURCE: 1}},
        )


@dataclass(frozen=True)
class ServiceProcess:
    """One service process (`registry`, `inference-worker-2`, `gateway-3`, ...) with its HTTP port
    (/metrics and probes; a gateway's is the API port, shared with the other gateways)."""

    name: str
    argv: list[str]
    http_port: int
    data_dir: Path

    @property
    def is_gateway(self) -> bool:
        return gateways.is_gateway(self.name)

    def child(self, env: dict[str, str]) -> ChildSpec:
        return ChildSpec(
            self.name,
            list(self.argv),
            {**env, **ops.service_env(self.name, self.data_dir, self.http_port)},
            info=ops.service_info(self.name, self.http_port),
        )


@dataclass
class StackPlan:
    """Everything `up` will start: the servers (in start order) and the services as the supervisor's
    children, stack.json's record, and the admin token (`token_path` None: from the environment)."""

    servers: list[ChildSpec]
    services: list[ChildSpec]
    stack: dict[str, Any]
    token: str = field(repr=False)
    token_path: Path | None
