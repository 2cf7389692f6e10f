"""Gateway settings: the shared ones plus where to listen and the admin bootstrap token."""

import socket

from pydantic import Field

from modelhub_runtime.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    models_unsealed: str = Field(
        default="",
        description="why models run UNSEALED on the embedded nodes (set by `modelhub up --allow-unsealed` "
        "where bubblewrap cannot jail them); empty: they run jailed",
    )
    gateway_host: str = Field(default="127.0.0.1", description="address the HTTP API listens on")
    gateway_port: int = Field(default=8000, description="port the HTTP API listens on")
    gateway_fd: int | None = Field(
        default=None,
        ge=0,
        description="a listening socket inherited from the supervisor "
        "(several gateways share it); when set, host and port are not bound",
    )
    gateway_instance: str = Field(
        default_factory=socket.gethostname,
        max_length=128,
        description="this gateway's name among several (kept in the jobs it folds)",
    )
    admin_token: str | None = Field(default=None, description="admin's token; default: DATA_DIR/admin-token")
    media_roots: str = Field(
        default="",
        description="directories (os.pathsep-separated) whose image files the web UI "
        "may show as thumbnails; empty: any file a dataset holds",
    )
    history_settle_seconds: float = Field(
        default=600.0,
        description="how long after a job ends its ledger is compacted to the records with failures and a count",
    )
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, description="largest model zip accepted")
    json_max_body_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        description="largest request body of a route without a cap of its own (every JSON route but "
        "predict and samples); the upload's is max_upload_bytes and 1 MiB for the multipart framing",
    )
    samples_max_body_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="largest body of POST /datasets/{name}/samples and /samples/delete: room for 10,000 "
        "samples with 4,096-character paths (41 MB), or for one sample near MongoDB's 16 MiB document limit",
    )
    predict_max_body_bytes: int = Field(
        default=1_000_000,
        description="largest online predict request body (it must fit one NATS message, 1 MiB by default)",
    )
    predict_max_requests: int = Field(
        default=128,
        description="online predict requests in progress at once in this gateway, all deployments; "
        "past it 429 with Retry-After before any other work",
    )
    read_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        description="how long this gateway keeps the documents every online predict reads (the "
        "token's user, the deployment, its model); its own writes clear them at once",
    )
