"""The stack's secrets on disk: the admin token, random passwords and credentials.json, each created
at mode 0600 from the start so that no other OS user ever reads them."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from modelhub.plan import MongoReplicaSet, MongoServer, NatsCluster, NatsServer
from modelhub.private import write_private
from modelhub.settings import CliSettings
from modelhub.supervisor import StackError


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


def secret_file(path: Path) -> Path:
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
    write_private(path, json.dumps(obj, indent=2) + "\n")


def credentials(
    settings: CliSettings, nats: NatsServer | NatsCluster | None, mongo: MongoServer | MongoReplicaSet | None
) -> dict[str, str]:
    """credentials.json: the credential-bearing URLs (the services' environment; nothing else sees them:
    stack.json, state.json and `modelhub status` show URLs without them)."""
    creds = {"nats_url": nats.credentials_url if nats else settings.nats_url or ""}
    if nats:
        creds["integration_nats_url"] = nats.integration_url
    creds["mongo_url"] = mongo.credentials_url if mongo else settings.mongo_url or ""
    return creds


def ray_auth(data_dir: Path) -> dict[str, str]:
    """A per-stack Ray auth token (otherwise Ray 2.60 picks ~/.ray/auth_token when present)."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(secret_file(data_dir / "ray-auth-token"))}
