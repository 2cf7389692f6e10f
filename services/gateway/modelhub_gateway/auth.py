"""Users and bearer tokens. Tokens are random; only their sha256 is stored."""

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from pymongo.errors import DuplicateKeyError

from modelhub_contracts.documents import User
from modelhub_contracts.events import utcnow
from modelhub_gateway.store import GatewayStore

ADMIN = "admin"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


async def authenticate(store: GatewayStore, token: str) -> User | None:
    """The user whose token this is, or None. The final comparison is constant-time."""
    digest = hash_token(token)
    user = await store.user_by_token_hash(digest)
    if user and hmac.compare_digest(user["token_hash"], digest) and not user.get("disabled"):
        return user
    return None


async def create_user(store: GatewayStore, username: str, is_admin: bool = False) -> str | None:
    """Create a user and return its token, or None when the name is taken."""
    token = new_token()
    try:
        await store.users.insert_one(
            {
                "_id": username.lower(),
                "username": username,
                "is_admin": is_admin,
                "token_hash": hash_token(token),
                "created_at": utcnow(),
            }
        )
    except DuplicateKeyError:
        return None
    return token


async def rotate_token(store: GatewayStore, username: str) -> str:
    token = new_token()
    await store.users.update_one({"_id": username.lower()}, {"$set": {"token_hash": hash_token(token)}})
    return token


def admin_token(configured: str | None, data_dir: Path) -> str:
    """The admin token: from settings, else DATA_DIR/admin-token (created with mode 0600)."""
    if configured:
        return configured
    path = data_dir / "admin-token"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    token = new_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


async def bootstrap_admin(store: GatewayStore, token: str) -> None:
    """Make sure the admin user exists and holds the configured token."""
    await store.users.update_one(
        {"_id": ADMIN},
        {
            "$set": {"token_hash": hash_token(token), "is_admin": True},
            "$setOnInsert": {"username": ADMIN, "created_at": utcnow()},
        },
        upsert=True,
    )
