"""The stack's log files under DIR/logs: size-bounded, rotated by the supervisor.

Children write straight into their file (opened for appending), so the supervisor rotates the way
logrotate's `copytruncate` does: once a file passes MAX_BYTES it shifts `name.log.1..KEEP-1` up by
one, copies the file to `name.log.1` and truncates it; the child's next write lands at the start
of the emptied file. A line written in the instant between the copy and the truncation can be
lost; nothing else is, and no child needs to reopen anything.

Log files are plain text: a child that writes terminal colour codes anyway (each is asked not to at
its source, e.g. Ray's `--log-color false`) has them stripped from the copy the rotation writes.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import BinaryIO

from modelhub.settings import CliSettings

_SETTINGS = CliSettings()  # MODELHUB_LOG_MAX_BYTES, MODELHUB_LOG_KEEP (read once: the supervisor's life)
MAX_BYTES = _SETTINGS.log_max_bytes
KEEP = _SETTINGS.log_keep  # rotated files kept besides the live one
CHECK_EVERY_S = 5.0
# ECMA-48 escape sequences: CSI (colours, cursor moves) and the two-byte escapes; OSC strings
# (window titles, hyperlinks) up to BEL or ST
ANSI_ESCAPE = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def strip_ansi(data: bytes) -> bytes:
    """`data` without terminal escape sequences."""
    return ANSI_ESCAPE.sub(b"", data)


def copy_plain(src: BinaryIO, dst: BinaryIO) -> None:
    """Copy the rest of `src` to `dst` line by line without escape sequences (none spans a line)."""
    for line in src:
        dst.write(strip_ansi(line))


def rotate(path: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> bool:
    """Rotate `path` if it is larger than `max_bytes`; True when it was."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    for i in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{i}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{i + 1}"))
    with open(path, "rb") as src, open(path.with_name(f"{path.name}.1"), "wb") as dst:
        copy_plain(src, dst)
        os.truncate(path, 0)
        copy_plain(src, dst)  # what the child wrote while the copy ran
    return True


def rotate_all(logs: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> list[Path]:
    """Rotate every live `*.log` under `logs` that is over the bound; returns those rotated."""
    return [p for p in sorted(logs.glob("*.log")) if rotate(p, max_bytes, keep)]


def banner(name: str, message: str) -> bytes:
    """The supervisor's own line in a child's log, in the services' JSON-lines shape."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    return (
        json.dumps(
            {
                "timestamp": f"{stamp}+00:00",
                "level": "INFO",
                "service": name,
                "logger": "modelhub.supervisor",
                "message": message,
            }
        )
        + "\n"
    ).encode()
