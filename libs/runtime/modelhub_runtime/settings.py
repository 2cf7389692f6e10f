"""Settings shared by every service. Each service reads them once, in its app.py."""

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Where the infrastructure is. `modelhub up` fills these in for the embedded stack."""

    model_config = SettingsConfigDict(env_prefix="MODELHUB_", extra="ignore")

    nats_url: str = Field(default="nats://127.0.0.1:4222", description="NATS server (JetStream enabled)")
    mongo_url: str = Field(default="mongodb://127.0.0.1:27017", description="MongoDB connection string")
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
