"""How many copies JetStream keeps of what modelhub stores there, on one server or on a cluster.

On a JetStream cluster a stream of one replica lives on one server: losing that server stops every
job. So every stream (and with it every consumer: a consumer's replicas default to its stream's)
and the package store are created with `replicas` = MODELHUB_NATS_REPLICAS, else min(3, the
cluster's size), and an existing one is brought up (or down) to it. A 3-replica stream keeps
accepting writes with one of its three servers gone (its RAFT group keeps a majority); with two
gone it stops until one returns.

The cluster's size is what the client sees: its server pool after connecting, that is the servers
MODELHUB_NATS_URL names plus those the server announced (INFO `connect_urls`, every client URL of
the cluster). A cluster whose servers do not announce each other (`no_advertise`) and a URL naming
one of them look like one server: set MODELHUB_NATS_REPLICAS there.
"""

import dataclasses
import logging
from collections.abc import Iterable
from urllib.parse import ParseResult

from faststream.nats import JStream, NatsBroker
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

log = logging.getLogger(__name__)

MAX_AUTO_REPLICAS = 3  # JetStream's usual choice: survives one lost server, writes to three


def cluster_size(servers: Iterable[ParseResult]) -> int:
    """The distinct servers of a client's pool (host and port; a URL's credentials aside)."""
    return max(1, len({(s.hostname, s.port or 4222) for s in servers}))


def wanted_replicas(configured: int | None, size: int) -> int:
    """MODELHUB_NATS_REPLICAS when set, else min(3, the cluster's size)."""
    return configured if configured is not None else max(1, min(MAX_AUTO_REPLICAS, size))


def refused_message(stream: str, have: int, wanted: int, error: Exception) -> str:
    """What the log says when JetStream will not change a stream's replicas."""
    return (
        f"JetStream stream {stream} keeps {have} replica(s), not {wanted}: the server refused the change "
        f"({error}). It works as it is, but {'survives no lost server' if have < 2 else 'as before'}; "
        "it is tried again at the next start (all the cluster's servers must be up to place new "
        f"replicas), or by hand: `nats stream edit {stream} --replicas {wanted}`. "
        "MODELHUB_NATS_REPLICAS sets the number."
    )


async def settle_replicas(js: JetStreamContext, stream: str, wanted: int) -> int:
    """Bring an existing stream to `wanted` replicas; returns the replicas to declare it with (what
    it has when JetStream refused, so that declaring it again does not fail the service's start)."""
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return wanted  # created with `wanted` by whoever declares it first
    have = info.config.num_replicas or 1
    if have == wanted:
        return wanted
    try:
        await js.update_stream(dataclasses.replace(info.config, num_replicas=wanted))
    except APIError as exc:
        log.warning(refused_message(stream, have, wanted, exc))
        return have
    log.info("JetStream stream %s: replicas %d -> %d", stream, have, wanted)
    return wanted


def object_store_stream(bucket: str) -> str:
    """The stream behind an object store bucket (JetStream's naming)."""
    return f"OBJ_{bucket}"


async def join(
    broker: NatsBroker, configured: int | None, streams: Iterable[JStream] = (), buckets: Iterable[str] = ()
) -> int:
    """Connect, decide the replicas, settle `streams` (their declarations take the number, so that
    FastStream's start creates or updates them with it) and declare the object store `buckets` with
    it (later `broker.object_storage(bucket)` calls get that declaration). Returns the replicas.
    Call it before `broker.start()`."""
    connection = await broker.connect()
    if connection is None:  # FastStream's TestNatsBroker: no server, nothing to place
        return 1
    js = connection.jetstream()
    wanted = wanted_replicas(configured, cluster_size(connection.servers))
    for stream in streams:
        # the JStream is this process's declaration of the stream, read by broker.start()
        stream.config.num_replicas = await settle_replicas(js, stream.name, wanted)
    for bucket in buckets:
        replicas = await settle_replicas(js, object_store_stream(bucket), wanted)
        await broker.object_storage(bucket, replicas=replicas)
    return wanted


async def missing_nats_members(broker: NatsBroker, stream: str) -> list[str]:
    """The servers of `stream`'s replicas that are not current (offline, or catching up), by server
    name: what /health names while a cluster runs on fewer servers. Empty on one server."""
    connection = await broker.connect()
    if connection is None:
        return []
    info = await connection.jetstream().stream_info(stream)
    replicas = (info.cluster.replicas if info.cluster else None) or []
    return sorted(peer.name or "?" for peer in replicas if peer.offline or not peer.current)
