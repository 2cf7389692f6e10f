"""Process supervision for the embedded stack (used by `modelhub.stack`).

Every child is started in its own session (start_new_session=True) with the marker
environment variable MARKER_ENV=<data dir>, so that everything `up` started for one
data dir -- including grandchildren such as Ray's raylet, gcs_server and workers, which
inherit the environment -- can be found again (and only that) when stopping.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelhub import logfiles

MARKER_ENV = "MODELHUB_SUPERVISOR_DIR"

STOP_TIMEOUT_S = 10.0
RESTART_BASE_DELAY_S = 0.5
RESTART_MAX_DELAY_S = 5.0
STABLE_AFTER_S = 10.0  # a child that ran this long resets its backoff


class StackError(RuntimeError):
    """A failure with a message meant for the user."""


# ---------------------------------------------------------------------------- /proc helpers


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


def write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- children


@dataclass
class ChildSpec:
    """One supervised process: a plain data record (argv and env fully spelled out)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    kind: str = "service"  # "nats" | "mongo" | "ray" | "replica-node" | "service"
    ready_ports: list[int] = field(default_factory=list)  # accept TCP here once started
    ready_timeout: float = 60.0
    info: dict = field(default_factory=dict)  # extra keys for state.json ("url", "address")
    # the name of a server this one must restart with (a Ray worker node cannot rejoin a
    # restarted head: a new cluster behind the same address)
    restart_with: str | None = None
    # run once the ready_ports accept connections (e.g. create MongoDB's user); may raise StackError
    after_ready: Callable[[], None] | None = None
    # descriptors the child inherits (the gateways' shared listening socket); all others are closed
    pass_fds: tuple[int, ...] = ()


@dataclass
class Child:
    spec: ChildSpec
    log_path: Path
    proc: subprocess.Popen | None = None
    state: str = "stopped"
    started_at: float = 0.0
    restarts: int = 0
    failures: int = 0  # consecutive quick deaths (backoff)
    restart_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, marker: str) -> None:
        env = dict(self.spec.env)
        env[MARKER_ENV] = marker
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab", buffering=0) as log:
            log.write(logfiles.banner(self.spec.name, f"starting {self.spec.name}: {' '.join(self.spec.argv)}"))
            self.proc = subprocess.Popen(
                self.spec.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                pass_fds=self.spec.pass_fds,
            )
        self.started_at = time.monotonic()
        self.state = "running"
        self.restart_at = None

    def stop_begin(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def stop_finish(self, deadline: float, data_dir: Path) -> None:
        if self.proc is None:
            self.state = "stopped"
            return
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        # whatever the child left behind in its session (Ray's raylet, workers, ...)
        sweep(data_dir, session=self.proc.pid, grace=1.0)
        self.state = "stopped"


# ---------------------------------------------------------------------------- supervisor


class Supervisor:
    def __init__(
        self,
        data_dir: Path,
        servers: list[ChildSpec],
        services: list[ChildSpec],
        base_state: dict,
        on_ready: Callable[[Supervisor], None] | None = None,
        ready_check: Callable[[], bool] | None = None,
        echo: Callable[[str], None] = print,
    ):
        self.data_dir = data_dir
        self.logs = data_dir / "logs"
        self.servers = [Child(s, self.logs / f"{s.name}.log") for s in servers]
        self.services = [Child(s, self.logs / f"{s.name}.log") for s in services]
        self.base_state = base_state
        self.on_ready = on_ready
        self.ready_check = ready_check
        self.echo = echo
        self.stop_event = threading.Event()
        self.marker = str(data_dir)
        self._lock_fd: int | None = None
        self._ready_reported = False

    # -- state file
    def state(self) -> dict:
        st = dict(self.base_state)
        st["supervisor"] = {"pid": os.getpid(), "state": "running" if self._lock_fd is not None else "stopped"}
        for c in self.servers:
            entry = {
                "pid": c.pid,
                "state": c.state,
                "restarts": c.restarts,
                "argv": c.spec.argv,
                "log": str(c.log_path),
            }
            entry.update(c.spec.info)
            if c.spec.kind == "replica-node":
                st.setdefault("replica_nodes", {})[c.spec.name] = entry
            else:
                st[c.spec.name] = entry
        st["services"] = {
            c.spec.name: {
                "pid": c.pid,
                "state": c.state,
                "restarts": c.restarts,
                "argv": c.spec.argv,
                "log": str(c.log_path),
                **c.spec.info,
            }
            for c in self.services
        }
        st["updated_at"] = time.time()
        return st

    def write_state(self) -> None:
        write_json_atomic(self.data_dir / "state.json", self.state())

    # -- single-instance lock
    def acquire(self) -> None:
        import fcntl

        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / "supervisor.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = read_supervisor_pid(self.data_dir)
            raise StackError(
                f"a modelhub supervisor is already running for {self.data_dir}"
                + (f" (pid {pid})" if pid else "")
                + "; run `modelhub down"
                f" --data-dir {self.data_dir}` first"
            ) from None
        self._lock_fd = fd
        (self.data_dir / "supervisor.pid").write_text(f"{os.getpid()}\n")

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / "supervisor.pid").unlink()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- lifecycle
    def install_signal_handlers(self) -> None:
        def handler(signum, frame):
            self.stop_event.set()

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, handler)

    def _wait_ready(self, child: Child) -> None:
        spec, proc = child.spec, child.proc
        if proc is None:
            raise StackError(f"{spec.name} was not started")
        deadline = time.monotonic() + spec.ready_timeout
        while True:
            if proc.poll() is not None:
                raise StackError(f"{spec.name} exited with code {proc.returncode} while starting; see {child.log_path}")
            if all(port_open(p) for p in spec.ready_ports):
                if spec.after_ready is not None:
                    spec.after_ready()
                return
            if self.stop_event.is_set():
                raise StackError(f"interrupted while starting {spec.name}")
            if time.monotonic() > deadline:
                raise StackError(
                    f"{spec.name} did not accept connections on 127.0.0.1:"
                    f"{','.join(map(str, spec.ready_ports))} within {spec.ready_timeout:.0f} s;"
                    f" see {child.log_path}"
                )
            time.sleep(0.2)

    def start_all(self) -> None:
        for child in self.servers:
            self.echo(f"starting {child.spec.name} ...")
            child.start(self.marker)
            self.write_state()
            self._wait_ready(child)
        for child in self.services:
            child.start(self.marker)
        self.write_state()

    def _check_children(self) -> bool:
        now = time.monotonic()
        changed = False
        for child in self.servers + self.services:
            if child.state == "running" and child.proc is not None and child.proc.poll() is not None:
                code = child.proc.returncode
                lived = now - child.started_at
                child.failures = 1 if lived >= STABLE_AFTER_S else child.failures + 1
                delay = min(RESTART_BASE_DELAY_S * 2 ** (child.failures - 1), RESTART_MAX_DELAY_S)
                self.echo(
                    f"{child.spec.name} (pid {child.proc.pid}) exited with code {code}; "
                    f"restarting in {delay:.1f} s (see {child.log_path})"
                )
                sweep(self.data_dir, session=child.proc.pid, grace=1.0)
                child.state = "restarting"
                child.restart_at = now + delay
                self._restart_dependents(child)
                changed = True
            elif child.state == "restarting" and not self._dependency_ready(child):
                child.restart_at = now + 0.5
            elif child.state == "restarting" and child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                try:
                    child.start(self.marker)
                except OSError as exc:
                    self.echo(f"could not restart {child.spec.name}: {exc}")
                    child.failures += 1
                    child.restart_at = now + RESTART_MAX_DELAY_S
                changed = True
        return changed

    def _restart_dependents(self, dead: Child) -> None:
        for child in self.servers:
            if child.spec.restart_with == dead.spec.name and child.state == "running":
                self.echo(f"restarting {child.spec.name} with {dead.spec.name}")
                child.stop_begin()
                child.stop_finish(time.monotonic() + STOP_TIMEOUT_S, self.data_dir)
                child.state, child.restart_at = "restarting", dead.restart_at

    def _dependency_ready(self, child: Child) -> bool:
        """A dependent starts once what it restarts with runs and accepts connections again."""
        dep = next((c for c in self.servers if c.spec.name == child.spec.restart_with), None)
        return dep is None or (dep.state == "running" and all(port_open(p) for p in dep.spec.ready_ports))

    def stop_all(self) -> None:
        # services first (all together), then the servers in reverse start order
        groups = [self.services] + [[c] for c in reversed(self.servers)]
        for group in groups:
            names = [c.spec.name for c in group if c.proc is not None and c.proc.poll() is None]
            if names:
                self.echo(f"stopping {', '.join(names)} ...")
            for c in group:
                c.restart_at = None
                c.stop_begin()
            deadline = time.monotonic() + STOP_TIMEOUT_S
            for c in group:
                c.stop_finish(deadline, self.data_dir)
            self.write_state()
        sweep(self.data_dir, grace=2.0)

    def _rotate_logs(self) -> None:
        try:
            logfiles.rotate_all(self.logs)
        except OSError as exc:  # a full disk must not stop supervision
            self.echo(f"could not rotate the logs in {self.logs}: {exc}")

    def _poll_ready(self) -> None:
        if self._ready_reported or self.ready_check is None:
            return
        try:
            ok = self.ready_check()
        except Exception:
            ok = False
        if ok:
            self._ready_reported = True
            if self.on_ready:
                self.on_ready(self)

    def run(self) -> int:
        """Acquire, start everything, supervise until signalled, stop everything."""
        if self._lock_fd is None:
            self.acquire()
        code = 0
        try:
            leftovers = sweep(self.data_dir, grace=2.0)
            if leftovers:
                self.echo(f"stopped {len(leftovers)} leftover process(es) of an earlier run")
            self.write_state()
            try:
                self.start_all()
            except StackError as exc:
                self.echo(f"error: {exc}")
                code = 1
                return code
            last_ready_poll = last_rotation = 0.0
            while not self.stop_event.is_set():
                if self._check_children():
                    self.write_state()
                now = time.monotonic()
                if now - last_rotation >= logfiles.CHECK_EVERY_S:
                    last_rotation = now
                    self._rotate_logs()
                if now - last_ready_poll >= 1.0:
                    last_ready_poll = now
                    self._poll_ready()
                self.stop_event.wait(0.2)
        finally:
            # block further signals from interrupting the shutdown half-way
            self.stop_event.set()
            try:
                self.stop_all()
            finally:
                self.release()
                self.write_state()
        return code


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
