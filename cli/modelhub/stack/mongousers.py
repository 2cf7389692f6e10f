"""The embedded MongoDB: the services' user (mongod runs with --auth) and its server entry in the plan."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from modelhub.plan import HUB_USER, LOOPBACK, MongoReplicaSet, MongoServer
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


REPLICA_SET = "modelhub"
ELECTION_TIMEOUT_S = 60.0
ELECTION_AFTER_MS = 5_000


def ensure_replica_set(data_dir: Path, rs: MongoReplicaSet) -> None:
    """Once every member runs: initiate the set (the localhost exception allows it while no user
    exists), wait for its first primary, create the services' user there; on a set made earlier,
    check that the password works."""
    from pymongo import MongoClient
    from pymongo.errors import OperationFailure, PyMongoError

    first = f"mongodb://{LOOPBACK}:{rs.members[0].port}/?directConnection=true&serverSelectionTimeoutMS=20000"
    config = {
        "_id": rs.name,
        "members": [{"_id": i, "host": f"{LOOPBACK}:{m.port}"} for i, m in enumerate(rs.members)],
        # Its members share one machine, so a missed heartbeat means a dead member, not a slow
        # network: call an election after 5 s without the primary instead of MongoDB's 10 s.
        "settings": {"electionTimeoutMillis": ELECTION_AFTER_MS},
    }
    try:
        with MongoClient(first) as client:
            try:
                client.admin.command("replSetInitiate", config)
            except OperationFailure as exc:
                if exc.code not in (13, 23):  # Unauthorized: users exist (an old set); AlreadyInitialized
                    raise
            primary = _wait_for_primary(client)
        if primary is not None:
            ensure_mongo_user(data_dir, int(primary.rsplit(":", 1)[1]), rs.password)
            return
        url = rs.credentials_url + "&serverSelectionTimeoutMS=30000"
        with MongoClient(url) as client:
            client.admin.command("listDatabases", nameOnly=True)
    except PyMongoError as exc:
        raise StackError(
            f"the replica set in {data_dir / 'mongo-0'}.. does not start or does not accept the credentials in "
            f"{data_dir / 'mongo-password'} ({exc})"
        ) from None


def _wait_for_primary(client) -> str | None:
    """The new set's first primary ("host:port") once it takes writes (a member names the primary
    before the primary has finished stepping up), or None when `hello` needs a user (a set made
    earlier: its users exist)."""
    from pymongo import MongoClient
    from pymongo.errors import OperationFailure, PyMongoError

    deadline = time.monotonic() + ELECTION_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            primary = client.admin.command("hello").get("primary")
        except OperationFailure:
            return None
        if primary:
            url = f"mongodb://{primary}/?directConnection=true&serverSelectionTimeoutMS=5000"
            with contextlib.suppress(PyMongoError), MongoClient(url) as direct:
                if direct.admin.command("hello").get("isWritablePrimary"):
                    return primary
        time.sleep(0.5)
    raise StackError(f"the replica set elected no primary within {ELECTION_TIMEOUT_S:.0f} s")


def mongo_replica_set(data_dir: Path, ports: list[int]) -> MongoReplicaSet:
    """`up --cluster N`: member i keeps its database in DIR/mongo-<i>; the members authenticate each
    other with DIR/mongo-keyfile (0600), the services with the single server's user and password."""
    password = secret_file(data_dir / "mongo-password").read_text().strip()
    keyfile = secret_file(data_dir / "mongo-keyfile")
    members = []
    for i, port in enumerate(ports):
        (data_dir / f"mongo-{i}").mkdir(exist_ok=True)
        members.append(
            MongoServer(find_mongod(), port, data_dir / f"mongo-{i}", password, f"mongo-{i}", REPLICA_SET, keyfile)
        )
    return MongoReplicaSet(tuple(members), REPLICA_SET)
