"""Settings shared by every service. Each service reads them once, in its app.py."""

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Where the infrastructure is. `modelhub up` fills these in for the embedded stack."""

    model_config = SettingsConfigDict(env_prefix="MODELHUB_", extra="ignore")

    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        description="NATS server (JetStream enabled), or a cluster's servers comma-separated (a server pool)",
    )
    nats_replicas: int | None = Field(
        default=None,
        ge=1,
        le=5,
        description="replicas of every JetStream stream, consumer and the package store (none: min(3, the "
        "cluster's size as the client sees it))",
    )
    mongo_url: str = Field(default="mongodb://127.0.0.1:27017", description="MongoDB connection string")
    mongo_majority: bool | None = Field(
        default=None,
        description="writes wait for a majority of the replica set (none: when the URL names a replica set)",
    )
    mongo_db: str = Field(default="modelhub", description="database name")
    ray_address: str = Field(
        default="auto",
        validation_alias=AliasChoices("RAY_ADDRESS", "MODELHUB_RAY_ADDRESS"),
        description="Ray cluster address (ray://... or host:port)",
    )
    # Services are no Ray drivers (nothing they get from Ray is unpickled): the deployer drives
    # Serve through the dashboard's REST API, the inference worker calls replicas over HTTP.
    ray_dashboard_url: str = Field(
        default="http://127.0.0.1:8265",
        description="Ray dashboard (Serve's REST API); token from RAY_AUTH_TOKEN(_PATH)",
    )
    serve_url: str = Field(
        default="http://127.0.0.1:8001", description="Serve's HTTP proxy (the deployer binds it there: host and port)"
    )
    serve_direct: bool = Field(
        default=True,
        description="the inference worker calls a replica at the port its proxy answer names (false: "
        "always through the proxy, e.g. where the worker cannot reach the replica nodes' addresses)",
    )
    allow_unsealed: bool = Field(
        default=False,
        description="replicas run models as plain child processes where bubblewrap cannot jail them "
        "(`modelhub up --allow-unsealed`); otherwise such a replica refuses to start",
    )
    media_roots: str = Field(
        default="",
        description="directories (os.pathsep-separated) that hold datasets' files: a model's jail shows only "
        "these (read-only) besides the OS and its Python; none: the machine read-only less the covered places",
    )
    data_dir: Path = Field(default=Path.home() / ".modelhub", description="where local state lives")
    http_port: int | None = Field(
        default=None, description="serve /metrics and /health/live, /health/ready here (none: no HTTP server)"
    )
    http_host: str = Field(default="127.0.0.1", description="address of that HTTP server (0.0.0.0 in a container)")
    telemetry_dir: Path | None = Field(
        default=None,
        description="write spans as JSON lines here when no OTEL_* "
        "exporter is configured (the embedded stack: DIR/telemetry)",
    )

    def nats_pool(self) -> "NatsPool":
        return nats_pool(self.nats_url)


@dataclass(frozen=True)
class NatsPool:
    """What a NATS URL names: the servers (without credentials) and the user and password they take.

    The credentials travel as client options, not inside each URL: nats-py authenticates to a
    server it learned from the cluster (INFO `connect_urls`, credential-less) only with those, so a
    pool whose credentials were only in the URLs could not fail over to a discovered server."""

    servers: list[str]
    user: str | None = None
    password: str | None = None
    token: str | None = None


def nats_pool(url: str) -> NatsPool:
    """Parse `nats://u:p@a:4222,nats://b:4222,c:4222` (the NATS convention: comma-separated servers).
    A server without credentials takes those of the first that has them: one cluster, one user."""
    servers, user, password, token = [], None, None, None
    for part in (p.strip() for p in url.split(",")):
        if not part:
            continue
        split = urlsplit(part if "://" in part else f"nats://{part}")
        if split.hostname is None:
            raise ValueError(f"MODELHUB_NATS_URL: {part!r} names no host")
        if split.username is not None and user is None and token is None:
            if split.password is None:
                token = split.username  # nats://TOKEN@host
            else:
                user, password = split.username, split.password
        host = f"[{split.hostname}]" if ":" in split.hostname else split.hostname
        netloc = host if split.port is None else f"{host}:{split.port}"
        servers.append(urlunsplit((split.scheme, netloc, "", "", "")))
    if not servers:
        raise ValueError("MODELHUB_NATS_URL names no server")
    return NatsPool(servers, user, password, token)
