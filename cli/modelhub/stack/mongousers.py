"""The embedded MongoDB: the services' user (mongod runs with --auth) and its server entry in the plan."""

from __future__ import annotations

from pathlib import Path

from modelhub.plan import HUB_USER, MongoServer
from modelhub.stack.binaries import find_mongod
from modelhub.stack.secretfiles import secret_file
from modelhub.supervisor import StackError


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


def mongo_server(data_dir: Path, port: int) -> MongoServer:
    """The embedded mongod: its database directory and the services' password (created once, 0600)."""
    (data_dir / "mongo").mkdir(exist_ok=True)
    password = secret_file(data_dir / "mongo-password").read_text().strip()
    return MongoServer(find_mongod(), port, data_dir / "mongo", password)
