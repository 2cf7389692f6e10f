"""Everything `up` will start for DIR, as a modelhub.plan.StackPlan: the embedded servers no external
URL replaces, the Ray head and replica nodes, then the services with the credential-bearing URLs;
and stack.json, the record of where it all is (without credentials)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from modelhub import sandbox
from modelhub.plan import MongoReplicaSet, MongoServer, NatsCluster, NatsServer, RayHead, ReplicaNode, StackPlan
from modelhub.settings import CliSettings
from modelhub.stack.binaries import find_ray
from modelhub.stack.mongousers import ensure_mongo_user, ensure_replica_set, mongo_replica_set, mongo_server
from modelhub.stack.natsconf import nats_cluster, nats_server
from modelhub.stack.ports import DEFAULT_REPLICA_NODES, allocate_ports
from modelhub.stack.rayenv import ray_env, ray_node_env, ray_temp_dir
from modelhub.stack.secretfiles import admin_token, credentials, ray_auth, write_secret_json
from modelhub.stack.services import SERVICES, service_processes
from modelhub.supervisor import StackError
from modelhub.supervisor.child import ChildSpec


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
        cluster=settings.cluster,
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

    clustered = settings.cluster > 1
    nats: NatsServer | NatsCluster | None = None
    if not external["nats"]:
        nats = nats_cluster(data_dir, ports["nats_members"]) if clustered else nats_server(data_dir, ports["nats"])
    mongo: MongoServer | MongoReplicaSet | None = None
    if not external["mongo"]:
        mongo = (
            mongo_replica_set(data_dir, ports["mongo_members"]) if clustered else mongo_server(data_dir, ports["mongo"])
        )
    creds = credentials(settings, nats, mongo)
    write_secret_json(data_dir / "credentials.json", creds)
    servers: list[ChildSpec] = []
    if nats:
        servers += nats.children(base_env)
    if isinstance(mongo, MongoServer):
        servers.append(
            mongo.child(base_env, after_ready=lambda m=mongo: ensure_mongo_user(data_dir, m.port, m.password))
        )
    elif mongo:
        *others, last = mongo.members
        servers += [m.child(base_env) for m in others]
        servers.append(last.child(base_env, after_ready=lambda rs=mongo: ensure_replica_set(data_dir, rs)))
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
