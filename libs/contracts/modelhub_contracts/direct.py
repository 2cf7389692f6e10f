"""The direct path's wire protocol: how the inference worker and a replica talk on the replica's own
TCP port instead of through Serve's HTTP proxy (the why: `modelhub_worker.direct`; the listener:
`modelhub_replica.DirectServer`).

It is a contract between two services that cannot import each other, so both ends import it from
here. The replica runs inside a Ray worker that has only what the deployer ships, so this module
uses the standard library alone (the deployer ships it beside the replica's package).

A connection opens with a handshake in which both ends prove they hold the deployment's secret
without sending it: the caller sends MAGIC and a nonce; the replica answers its own nonce and its
proof; the caller sends its proof. Each proof is an HMAC over the role, both nonces and the address
the replica listens on, so a process that took a dead replica's port, or relays to a live one,
learns neither the secret nor a sample. Then each request and each answer is one frame: a 4-byte
big-endian length and that many bytes of JSON, one request at a time per connection.
"""

import asyncio
import hashlib
import hmac
import os

MAGIC = b"MHD1"
NONCE = 16
PROOF = 32  # an HMAC-SHA256
LENGTH = 4  # a frame's length prefix
MAX_FRAME = 256 << 20
CALLER = b"caller"
REPLICA = b"replica"


class FrameTooLarge(Exception):
    """A frame declared more bytes than its reader accepts; its body is left unread (the
    connection is then in doubt and must be closed)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a {size}-byte frame (at most {limit})")
        self.size, self.limit = size, limit


def proof(secret: bytes, role: bytes, caller_nonce: bytes, replica_nonce: bytes, endpoint: str) -> bytes:
    """What `role` (REPLICA or CALLER) sends to show it holds the secret, bound to both nonces and
    to the address the replica listens on (a relay to another address fails)."""
    message = b"|".join((role, caller_nonce, replica_nonce, endpoint.encode()))
    return hmac.new(secret, message, hashlib.sha256).digest()


async def caller_handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, secret: bytes, endpoint: str
) -> bool:
    """The caller's side: True once the replica proved it holds the secret (and the caller's own
    proof is written); False, with nothing more sent, when its proof is wrong."""
    caller_nonce = os.urandom(NONCE)
    writer.write(MAGIC + caller_nonce)
    hello = await reader.readexactly(NONCE + PROOF)
    replica_nonce, theirs = hello[:NONCE], hello[NONCE:]
    if not hmac.compare_digest(theirs, proof(secret, REPLICA, caller_nonce, replica_nonce, endpoint)):
        return False
    writer.write(proof(secret, CALLER, caller_nonce, replica_nonce, endpoint))
    return True


async def replica_handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, secret: bytes, endpoint: str
) -> bool:
    """The replica's side: True once the caller proved it holds the secret; False for a hello
    that is not this protocol's or a wrong proof (nothing of the secret was sent either way)."""
    hello = await reader.readexactly(len(MAGIC) + NONCE)
    if hello[: len(MAGIC)] != MAGIC:
        return False
    caller_nonce, replica_nonce = hello[len(MAGIC) :], os.urandom(NONCE)
    writer.write(replica_nonce + proof(secret, REPLICA, caller_nonce, replica_nonce, endpoint))
    await writer.drain()
    theirs = await reader.readexactly(PROOF)
    return hmac.compare_digest(theirs, proof(secret, CALLER, caller_nonce, replica_nonce, endpoint))


def frame(body: bytes) -> bytes:
    """One frame on the wire: the body's length, then the body."""
    return len(body).to_bytes(LENGTH, "big") + body


async def read_frame(reader: asyncio.StreamReader, limit: int = MAX_FRAME) -> bytes:
    """The next frame's body; FrameTooLarge when it declares more than `limit` bytes (not read),
    asyncio.IncompleteReadError when the peer closed before it ended."""
    size = int.from_bytes(await reader.readexactly(LENGTH), "big")
    if size > limit:
        raise FrameTooLarge(size, limit)
    return await reader.readexactly(size)
