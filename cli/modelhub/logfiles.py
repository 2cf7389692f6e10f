"""The stack's log files under DIR/logs: size-bounded, rotated by the supervisor.

Children write straight into their file (opened for appending), so the supervisor rotates the way
logrotate's `copytruncate` does: once a file passes MAX_BYTES it shifts `name.log.1..KEEP-1` up by
one, copies the file to `name.log.1` and truncates it; the child's next write lands at the start
of the emptied file. A line written in the instant between the copy and the truncation can be
lost; nothing else is, and no child needs to reopen anything.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from modelhub.settings import CliSettings

_SETTINGS = CliSettings()  # MODELHUB_LOG_MAX_BYTES, MODELHUB_LOG_KEEP (read once: the supervisor's life)
MAX_BYTES = _SETTINGS.log_max_bytes
KEEP = _SETTINGS.log_keep  # rotated files kept besides the live one
CHECK_EVERY_S = 5.0


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
        shutil.copyfileobj(src, dst)
        os.truncate(path, 0)
        shutil.copyfileobj(src, dst)  # what the child wrote while the copy ran
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
