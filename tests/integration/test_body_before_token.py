"""No body is read before its token (issue 23), through the real gateway: a 300 MB JSON body sent
to `POST /models` without a token (or with one, over the route's 1 MiB cap) is answered at once,
and the gateway's memory does not grow with it (it grew by 600 MB before the token came first).

The body is made as it is sent (one 64 KiB chunk, sent again and again) over a raw socket, so
that the test holds none of it and sees the answer while it is still sending."""

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import part_pid

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MB = 1000 * 1000
BODY_BYTES = 300 * MB
CHUNK = b" " * (64 * 1024)  # whitespace inside a JSON object: a body FastAPI would parse to the end
MAX_GROWTH = 20 * MB


def body() -> Iterator[bytes]:
    """BODY_BYTES of one JSON object, made as it is sent."""
    head, tail = b'{"name": "big"', b"}"
    yield head
    left = BODY_BYTES - len(head) - len(tail)
    while left > 0:
        yield CHUNK[: min(left, len(CHUNK))]
        left -= len(CHUNK)
    yield tail


def rss(pid: int) -> int:
    """The process's resident memory now, in bytes."""
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


class Sent:
    status: int = 0
    seconds: float = 0.0  # from the headers' sending to the answer's status line
    body_bytes_sent: int = 0  # how much of the body had gone out when the gateway closed
    peak_growth: int = 0


async def post_300_mb(url: str, token: str | None, chunked: bool, pid: int) -> Sent:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    sent, baseline = Sent(), rss(pid)
    headers = [f"POST {parts.path}/models HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json"]
    headers.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY_BYTES}")
    if token:
        headers.append(f"Authorization: Bearer {token}")
    # A plain socket, not asyncio's streams: when the gateway answers and closes while the body is
    # still going out, a stream transport drops the answer it already received with the broken pipe
    # of its next write; the kernel keeps it for recv.
    loop = asyncio.get_running_loop()
    sock = socket.create_connection((host, port))
    sock.setblocking(False)

    async def send_body() -> None:
        try:
            for chunk in body():
                await loop.sock_sendall(sock, b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                sent.body_bytes_sent += len(chunk)
            if chunked:
                await loop.sock_sendall(sock, b"0\r\n\r\n")
        except (ConnectionError, OSError):
            pass  # the gateway answered and closed: the rest of the body is not wanted

    async def status_line() -> bytes:
        data = b""
        while b"\r\n" not in data:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0]

    async def watch_memory() -> None:
        while True:
            sent.peak_growth = max(sent.peak_growth, rss(pid) - baseline)
            await asyncio.sleep(0.01)

    await loop.sock_sendall(sock, ("\r\n".join(headers) + "\r\n\r\n").encode())
    started = time.monotonic()
    sending, watching = asyncio.create_task(send_body()), asyncio.create_task(watch_memory())
    try:
        line = await asyncio.wait_for(status_line(), timeout=60)
        sent.seconds = time.monotonic() - started
        sent.status = int(line.split()[1])
        await asyncio.wait_for(sending, timeout=60)  # ends when the gateway closes the connection
        await asyncio.sleep(0.5)  # whatever the gateway would have read by now shows in its memory
        sent.peak_growth = max(sent.peak_growth, rss(pid) - baseline)
    finally:
        for task in (sending, watching):
            task.cancel()
        sock.close()
    return sent


@pytest.mark.parametrize(
    ("with_token", "chunked", "status"),
    [(False, False, 401), (False, True, 401), (True, False, 413)],
    ids=["no-token", "no-token-chunked", "token-over-the-cap"],
)
def test_a_300_mb_body_is_answered_at_once_and_the_gateway_does_not_hold_it(stack, with_token, chunked, status):
    pid = part_pid(stack.data_dir, "gateway")
    assert pid, "no running gateway in `modelhub status --json`"
    sent = asyncio.run(post_300_mb(stack.url, stack.token if with_token else None, chunked, pid))
    report = (
        f"status {sent.status} after {sent.seconds:.3f} s, {sent.body_bytes_sent / MB:.1f} MB of the body sent, "
        f"gateway RSS grew by at most {sent.peak_growth / MB:.1f} MB"
    )
    print(report)
    assert sent.status == status, report
    assert sent.seconds < 5, report  # the requirement is 1 s; the bound leaves a loaded machine room
    assert sent.peak_growth < MAX_GROWTH, report
    assert sent.body_bytes_sent < BODY_BYTES, report  # the gateway closed before the body was all sent
