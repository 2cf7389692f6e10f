"""What the supervisor knows of processes from /proc: liveness, command lines, the marker that
finds everything started for one data dir (grandchildren included), and sweeping it; TCP ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

MARKER_ENV = "MODELHUB_SUPERVISOR_DIR"


def pid_alive(pid: int | None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive for our purposes
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z"
    except OSError:
        return False


def proc_cmdline(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if not raw:
        return None
    return [p.decode(errors="replace") for p in raw.rstrip(b"\0").split(b"\0")]


def cmdline_matches(pid: int, argv: list[str]) -> bool:
    """True when /proc/<pid>/cmdline is what we started with `argv`.

    A script started through its shebang shows as [interpreter, script, args...], so the
    recorded argv[1:] must be the tail of the live cmdline and argv[0] (or its basename)
    must appear in what precedes it.
    """
    actual = proc_cmdline(pid)
    if not actual or not argv:
        return False
    if actual == argv:
        return True
    rest = argv[1:]
    if rest and actual[-len(rest) :] != rest:
        return False
    head = actual[: len(actual) - len(rest)]
    base = os.path.basename(argv[0])
    return any(h == argv[0] or os.path.basename(h) == base for h in head)


def _proc_session(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rindex(b")") + 2 :].split()
        return int(fields[3])  # state ppid pgrp session
    except (OSError, ValueError, IndexError):
        return None


def marked_pids(data_dir: Path, session: int | None = None) -> list[int]:
    """Live processes carrying our marker for `data_dir` (optionally only in one session)."""
    needle = f"{MARKER_ENV}={data_dir}".encode()
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == me:
            continue
        if session is not None and _proc_session(pid) != session:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if needle in env and pid_alive(pid):
            found.append(pid)
    return found


def kill_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    left = [p for p in pids if pid_alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if pid_alive(p)]
    return left


def sweep(data_dir: Path, session: int | None = None, grace: float = 2.0) -> list[int]:
    """Terminate (then kill) leftover marked processes; returns the pids found."""
    pids = marked_pids(data_dir, session)
    if not pids:
        return []
    kill_pids(pids, signal.SIGTERM)
    left = wait_gone(pids, grace)
    if left:
        kill_pids(left, signal.SIGKILL)
        wait_gone(left, 5.0)
    return pids


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
