"""The supervision loop: start the servers in order (each once its ports accept connections), then
the services; restart whatever dies, with backoff (a server's dependents with it); stop everything,
services first, then the servers in reverse, until nothing marked for DIR is left."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from modelhub import logfiles
from modelhub.supervisor import StackError, statefile
from modelhub.supervisor.child import Child, ChildSpec
from modelhub.supervisor.procs import port_open, sweep

STOP_TIMEOUT_S = 10.0
RESTART_BASE_DELAY_S = 0.5
RESTART_MAX_DELAY_S = 5.0
STABLE_AFTER_S = 10.0  # a child that ran this long resets its backoff


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
        return statefile.state(self.base_state, self.servers, self.services, running=self._lock_fd is not None)

    def write_state(self) -> None:
        statefile.write_json_atomic(self.data_dir / "state.json", self.state())

    # -- single-instance lock
    def acquire(self) -> None:
        self._lock_fd = statefile.acquire_lock(self.data_dir)

    def release(self) -> None:
        statefile.release_lock(self.data_dir, self._lock_fd)
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
