"""The direct path's wire protocol (modelhub_contracts.direct), on its own over real sockets: the
handshake both ends run, the frames, and how the replica's package carries it to a Ray node."""

import ast
import asyncio
import io
import subprocess
import sys
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from modelhub_contracts import direct as wire
from modelhub_deployer.serving import replica_module_zip

SECRET = b"the deployment's secret"
Side = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


async def handshake(replica: Side, caller: Side) -> tuple[bool, bool]:
    """Run `replica` as a listener's side and `caller` on a connection to it: (replica's verdict,
    caller's verdict)."""
    verdict: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            verdict.set_result(await replica(reader, writer))
        except asyncio.IncompleteReadError:
            verdict.set_result(False)  # the caller hung up before proving anything
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
    try:
        mine = await caller(reader, writer)
        if not mine:
            writer.close()  # a caller that doubts the replica sends nothing more
        return await asyncio.wait_for(verdict, 5), mine
    finally:
        writer.close()
        server.close()


def replica_side(secret: bytes = SECRET, endpoint: str = "10.0.0.1:4000") -> Side:
    return lambda r, w: wire.replica_handshake(r, w, secret, endpoint)


def caller_side(secret: bytes = SECRET, endpoint: str = "10.0.0.1:4000") -> Side:
    return lambda r, w: wire.caller_handshake(r, w, secret, endpoint)


async def test_both_ends_holding_the_secret_pass_the_handshake():
    assert await handshake(replica_side(), caller_side()) == (True, True)


async def test_a_replica_without_the_secret_is_refused_and_gets_no_proof_back():
    assert await handshake(replica_side(secret=b"a guess"), caller_side()) == (False, False)


async def test_a_caller_without_the_secret_is_refused_by_the_replica():
    async def wrong_proof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(wire.MAGIC + b"n" * wire.NONCE)
        await reader.readexactly(wire.NONCE + wire.PROOF)
        writer.write(b"x" * wire.PROOF)
        return True

    assert (await handshake(replica_side(), wrong_proof))[0] is False


async def test_a_proof_is_bound_to_the_address_the_replica_listens_on():
    # a relay at another address passes the replica's proof along: the caller's check fails
    assert await handshake(replica_side(endpoint="10.0.0.1:4000"), caller_side(endpoint="10.0.0.9:4000")) == (
        False,
        False,
    )


async def test_a_hello_of_another_protocol_is_refused_before_anything_is_sent():
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # longer than a hello
        return await reader.read() == b""  # the replica closed without a byte

    assert await handshake(replica_side(), http) == (False, True)


def test_each_role_has_its_own_proof():
    args = (b"c" * wire.NONCE, b"r" * wire.NONCE, "10.0.0.1:4000")
    replica, caller = wire.proof(SECRET, wire.REPLICA, *args), wire.proof(SECRET, wire.CALLER, *args)
    assert len(replica) == len(caller) == wire.PROOF and replica != caller


def reader_of(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_frames_round_trip_in_order():
    bodies = [b'{"samples": []}', b"", b"x" * 70_000]
    reader = reader_of(b"".join(wire.frame(b) for b in bodies))
    assert [await wire.read_frame(reader) for _ in bodies] == bodies
    assert wire.frame(b"abc") == b"\0\0\0\x03abc"  # 4-byte big-endian length, then the body


async def test_a_frame_over_the_limit_is_refused_unread():
    reader = reader_of(wire.frame(b"y" * 100))
    with pytest.raises(wire.FrameTooLarge) as refused:
        await wire.read_frame(reader, limit=99)
    assert (refused.value.size, refused.value.limit) == (100, 99)
    assert await reader.read() == b"y" * 100  # the body was left where it was


async def test_a_frame_over_the_protocols_limit_is_refused_by_default():
    with pytest.raises(wire.FrameTooLarge):
        await wire.read_frame(reader_of((wire.MAX_FRAME + 1).to_bytes(wire.LENGTH, "big")))


async def test_a_cut_frame_is_an_incomplete_read():
    with pytest.raises(asyncio.IncompleteReadError):
        await wire.read_frame(reader_of(wire.frame(b"12345")[:-1]))


def test_the_protocol_needs_only_the_standard_library():
    # the replica imports it inside a Ray worker, where nothing but the shipped zip is modelhub's
    for module in (wire, sys.modules["modelhub_contracts"]):
        tree = ast.parse(Path(str(module.__file__)).read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert {name.split(".")[0] for name in imported} <= sys.stdlib_module_names, module.__name__


def test_the_replicas_package_carries_the_protocol_it_imports(tmp_path):
    _, data = replica_module_zip()
    zipfile.ZipFile(io.BytesIO(data)).extractall(tmp_path)
    # as on a Ray node: the py_modules folder first on the path
    where = subprocess.run(
        [sys.executable, "-c", "import modelhub_replica, modelhub_contracts.direct as d; print(d.__file__)"],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip() == str(tmp_path / "modelhub_contracts" / "direct.py")
