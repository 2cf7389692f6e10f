"""The supervisor's files under DIR: state.json (every child's pid, state, restarts and log, written
atomically on each change) and the single-instance lock (supervisor.lock, flock'ed for the
supervisor's whole life, beside supervisor.pid)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from modelhub.supervisor import StackError
from modelhub.supervisor.child import Child
from modelhub.supervisor.procs import pid_alive


def write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def _entry(c: Child) -> dict:
    return {
        "pid": c.pid,
        "state": c.state,
        "restarts": c.restarts,
        "argv": c.spec.argv,
        "log": str(c.log_path),
        **c.spec.info,
    }


def state(base_state: dict, servers: list[Child], services: list[Child], running: bool) -> dict:
    """What state.json holds: `base_state`, the supervisor, each server (replica nodes under
    `replica_nodes`) and the services."""
    st = dict(base_state)
    st["supervisor"] = {"pid": os.getpid(), "state": "running" if running else "stopped"}
    for c in servers:
        if c.spec.kind == "replica-node":
            st.setdefault("replica_nodes", {})[c.spec.name] = _entry(c)
        else:
            st[c.spec.name] = _entry(c)
    st["services"] = {c.spec.name: _entry(c) for c in services}
    st["updated_at"] = time.time()
    return st


def acquire_lock(data_dir: Path) -> int:
    """Take DIR's supervisor lock and write supervisor.pid; returns the lock's descriptor."""
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / "supervisor.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pid = read_supervisor_pid(data_dir)
        raise StackError(
            f"a modelhub supervisor is already running for {data_dir}"
            + (f" (pid {pid})" if pid else "")
            + "; run `modelhub down"
            f" --data-dir {data_dir}` first"
        ) from None
    (data_dir / "supervisor.pid").write_text(f"{os.getpid()}\n")
    return fd


def release_lock(data_dir: Path, fd: int | None) -> None:
    with contextlib.suppress(FileNotFoundError):
        (data_dir / "supervisor.pid").unlink()
    if fd is not None:
        os.close(fd)


def read_supervisor_pid(data_dir: Path) -> int | None:
    try:
        pid = int((data_dir / "supervisor.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    if not pid_alive(pid):
        return None
    # the supervisor holds an flock on supervisor.lock for its whole life: a free lock means
    # the recorded pid is stale (possibly recycled by an unrelated process)
    import fcntl

    try:
        fd = os.open(data_dir / "supervisor.lock", os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return pid
    finally:
        os.close(fd)  # closing drops a lock we may have taken
    return None
