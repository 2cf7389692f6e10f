"""One supervised process: what to run (ChildSpec, a plain data record) and its live side (Child:
start it in its own session with the marker, stop it and whatever it left in that session)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelhub import logfiles
from modelhub.supervisor.procs import MARKER_ENV, sweep


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
