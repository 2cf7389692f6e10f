"""The model's process in its jail, seen from the replica (trusted glue; host.py is the other end).

A Ray worker is a full member of the cluster (it can read every application's config and secrets,
start tasks anywhere, kill actors), so the user's code never runs in one. The replica checks the
package's sha-256, unpacks it into a folder of its own, and starts `host.py` in a child process
through bubblewrap (Debian's `bubblewrap`, the sandbox Flatpak uses):

- new user, PID, IPC, UTS, cgroup and network namespaces (`--unshare-all`): uid/gid 65534, no
  capabilities (`--cap-drop ALL`), `no_new_privs` (bwrap always sets it), its own `/proc` with
  only its own processes, no network but a loopback of its own, a new session (no terminal);
- a filesystem of read-only binds: the OS's `/usr` (and the merged-usr links), the few files of
  `/etc` a runtime reads, the deployment's Python (interpreter, its environment's site-packages),
  the unpacked package at `/run/modelhub/model` and the replica's format adapters
  (`modelhub_formats`, beside host.py); an empty private `/tmp`, a minimal `/dev` (plus the
  NVIDIA devices only when the replica was given GPUs); nothing else of the machine: no data dir,
  no other package, no home, no Ray session;
- a clean environment (PATH, HOME=/tmp, the thread and GPU settings Ray gave the replica; no
  `MODELHUB_*`, no `RAY_*`, no secret), and `--die-with-parent`.

The replica and the model talk over a socketpair in bounded, length-prefixed JSON frames (host.py
says the protocol). A model process that dies fails the calls it had with the reason (its exit
code or signal and the end of its stderr) and is started again, the package checked again first.

Where bubblewrap is missing or the kernel refuses it, a replica refuses to start, unless its
deployment was made by a hub started with `--allow-unsealed`: then the same host runs as a plain
child process (clean environment, nothing else), and the hub says UNSEALED.
"""

import asyncio
import contextlib
import glob
import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor

HOST_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "host.py")
JAIL_HOST = "/run/modelhub/host.py"  # /run: a private tmpfs in every jail
# The adapters of packages without code (modelhub_formats), beside host.py in the jail too
FORMATS_DIR = os.path.join(os.path.dirname(HOST_FILE), "modelhub_formats")
JAIL_FORMATS = "/run/modelhub/modelhub_formats"
JAIL_MODEL = "/run/modelhub/model"
JAIL_UID = 65534  # nobody
MAX_ANSWER = 256 << 20  # the most a model process may answer in one frame (a replica's own bound)
READY_TIMEOUT_S = 600.0  # importing a large model (weights from its package) takes a while
STDERR_TAIL = 8000
# The files of /etc that the runtime reads (dynamic linker cache, certificates, time zone, the
# alternatives that Debian's BLAS/LAPACK links go through); nothing else of /etc is bound.
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "ssl/certs", "ca-certificates", "localtime", "alternatives")
# What the model's environment keeps of the replica's (Ray sets the thread counts and the GPUs).
KEPT_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
    "LANG",
    "LC_ALL",
    "TZ",
)


class ModelError(Exception):
    """The model failed on a mini-batch, or its process died or answered out of bounds."""


class ProcessDied(ModelError):
    """The model's process ended while a call was in it (a crash, a kill, an answer out of bounds)."""


class ModelUnavailable(RuntimeError):
    """The model's process cannot be started (its package, its jail, or the model's own start)."""


# One long-lived thread starts every model process (see ModelProcess._spawn).
_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelhub-model-spawner")

# ---------------------------------------------------------------- the jail


def jail_available() -> str | None:
    """None when bubblewrap can jail a process here, else why not (cached per process)."""
    global _JAIL_CHECKED
    if _JAIL_CHECKED is None:
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            _JAIL_CHECKED = "bubblewrap (bwrap) is not installed on this node"
        else:
            probe = subprocess.run(
                [bwrap, *_namespaces(), *_os_binds(), "--proc", "/proc", "--dev", "/dev", "--", "/bin/true"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            _JAIL_CHECKED = "" if probe.returncode == 0 else (probe.stderr.strip() or f"exit {probe.returncode}")
    return _JAIL_CHECKED or None


_JAIL_CHECKED: str | None = None


def _namespaces() -> list[str]:
    return [
        "--unshare-all",  # pid, ipc, uts, cgroup and net (and user, where it can)
        "--unshare-user",  # user: always, or no jail
        "--uid",
        str(JAIL_UID),
        "--gid",
        str(JAIL_UID),
        "--hostname",
        "model",
        "--disable-userns",  # no nested user namespace: no capabilities to be had anywhere in the jail
        "--cap-drop",
        "ALL",
        "--new-session",
        "--die-with-parent",
    ]


# Covered by an empty tmpfs (a folder) or /dev/null (a file) when the machine's "/" is the jail's
# view (no media roots set): the usual places of other users' and the OS's secrets, and run-time
# sockets. The data dir, Ray's temp dirs and the package cache are added by the replica.
DEFAULT_COVERS = (
    "/root",
    "/home",
    "/var/run",
    "/var/lib",
    "/etc/ssh",
    "/etc/ssl/private",
    "/etc/shadow",
    "/etc/gshadow",
    "/mnt",
)
# Where the hub runs as root, the jail's uid is root's outside its user namespace (without any
# capability): the kernel's files that root may write without one are made read-only or covered.
PROC_READ_ONLY = ("/proc/sys",)
PROC_COVERS = ("/proc/sysrq-trigger",)


def _os_binds() -> list[str]:
    """The OS, read-only and nothing else of it: /usr (and the merged-usr links), /etc's few files."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in ETC_FILES:
        if os.path.exists(path := f"/etc/{name}"):
            args += ["--ro-bind", path, path]
    return args


def _covers(paths: list[str]) -> list[str]:
    args = []
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            args += ["--tmpfs", path]
        elif os.path.exists(path) and not os.path.islink(path):
            args += ["--ro-bind", "/dev/null", path]
    return args


def filesystem(media_roots: list[str], hidden: list[str], gpus: bool) -> list[str]:
    """The jail's view, before the Python and the package: with media roots, only the OS and those
    roots (read-only); without, the machine's "/" read-only less the covered places. Either way a
    private /tmp, a minimal /dev and a /proc of its own, and never the hidden paths."""
    roots = [os.path.realpath(r) for r in media_roots if os.path.isdir(r)]
    hidden = [os.path.realpath(h) for h in hidden]
    whole = ["--ro-bind", "/", "/", *_covers([*DEFAULT_COVERS, *hidden])]
    args = _os_binds() if media_roots else whole
    args += ["--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--tmpfs", "/tmp", "--tmpfs", "/run"]
    for path in PROC_READ_ONLY:
        args += ["--ro-bind", path, path]
    for path in PROC_COVERS:
        if os.path.exists(path):
            args += ["--ro-bind", "/dev/null", path]
    for root in roots:  # after /tmp: a root inside it shows through the private tmpfs
        args += ["--ro-bind", root, root]
    args += _covers([h for h in hidden if any(h == r or h.startswith(r.rstrip("/") + "/") for r in roots)])
    if gpus:
        for device in sorted(glob.glob("/dev/nvidia*")):
            if stat.S_ISCHR(os.stat(device).st_mode):
                args += ["--dev-bind", device, device]
    return args


def python_binds() -> tuple[list[str], list[str]]:
    """The deployment's Python, read-only: the interpreter's prefixes and every folder of this
    process's import path that belongs to an environment (site-packages), not Ray's py_modules
    (this package, the model's zip) nor anyone's source tree. Returns (bwrap args, import path)."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    prefixes.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    here = os.path.dirname(os.path.dirname(HOST_FILE))  # Ray's py_modules folder of this package
    path: list[str] = []
    extra: set[str] = set()
    for entry in sys.path:
        real = os.path.realpath(entry or ".")
        if not os.path.isdir(real) or real == here or real.startswith(here + os.sep):
            continue
        inside = any(real == p or real.startswith(p + os.sep) for p in prefixes)
        if inside or os.path.basename(real) in ("site-packages", "dist-packages"):
            path.append(real)
            if not inside:
                extra.add(real)
    args: list[str] = []
    for folder in sorted(prefixes | extra):
        if os.path.isdir(folder) and folder not in ("/", "/usr"):
            args += ["--ro-bind", folder, folder]
    if sys.executable != os.path.realpath(sys.executable):  # a venv's python: its own path too
        folder = os.path.dirname(os.path.dirname(sys.executable))
        args += ["--ro-bind", folder, folder]
    return args, path


def model_env(import_path: list[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in KEPT_ENV}
    env.update(
        PATH="/usr/local/bin:/usr/bin:/bin",
        HOME="/tmp",
        TMPDIR="/tmp",
        USER="model",
        LOGNAME="model",
        PYTHONPATH=os.pathsep.join(import_path),
        PYTHONNOUSERSITE="1",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
    )
    env.setdefault("LANG", "C.UTF-8")
    return env


class JailSpec:
    """What a model's jail binds besides the OS, its Python and its package."""

    def __init__(self, media_roots: list[str], hidden: list[str], gpus: bool) -> None:
        self.media_roots, self.hidden, self.gpus = list(media_roots), list(hidden), gpus


def command(model_dir: str, fd: int, entrypoint: str, jail: JailSpec | None) -> list[str]:
    """The argv that starts host.py: in the jail, or plain (`jail` None) when unsealed was allowed."""
    if jail is None:
        return [sys.executable, "-s", "-B", HOST_FILE, str(fd), entrypoint]
    binds, _ = python_binds()
    return [
        shutil.which("bwrap") or "bwrap",
        *_namespaces(),
        *filesystem(jail.media_roots, jail.hidden, jail.gpus),
        *binds,
        "--ro-bind",
        HOST_FILE,
        JAIL_HOST,
        "--ro-bind",
        FORMATS_DIR,
        JAIL_FORMATS,
        "--ro-bind",
        model_dir,
        JAIL_MODEL,
        "--chdir",
        JAIL_MODEL,
        "--",
        sys.executable,
        "-s",
        "-B",
        JAIL_HOST,
        str(fd),
        entrypoint,
    ]


# ---------------------------------------------------------------- the package


def unpack_verified(zip_path: str, sha256: str, parent: str) -> str:
    """A fresh folder holding the package, unpacked from a private copy of the zip whose sha-256
    was checked while copying (the cluster's package store is writable by any Ray member)."""
    folder = tempfile.mkdtemp(prefix=f"{sha256[:12]}-", dir=parent)
    copy = os.path.join(folder, ".package.zip")
    digest = hashlib.sha256()
    with open(zip_path, "rb") as src, open(copy, "xb") as out:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != sha256:
        shutil.rmtree(folder, ignore_errors=True)
        raise ModelUnavailable(
            f"the package from the cluster's package store has sha256 {digest.hexdigest()}, expected {sha256}: "
            "refusing to run it"
        )
    root = os.path.join(folder, "model")
    os.mkdir(root, 0o755)
    try:
        _extract(copy, root)
    finally:
        os.unlink(copy)
    os.chmod(folder, 0o755)  # mkdtemp's 0700 would hide it from the jail's uid where that differs
    return root


def _extract(zip_path: str, dest: str) -> None:
    """Unpack the verified zip's root into `dest`, as the registry's safe_extract does (a zipped
    folder's single top folder is the root; __MACOSX/ is skipped). The registry checked these very
    bytes at upload (paths, symlinks, sizes, bombs); this only refuses what would escape `dest`."""
    with zipfile.ZipFile(zip_path) as zf:
        infos = [i for i in zf.infolist() if not i.filename.startswith("__MACOSX/")]
        for info in infos:
            parts = info.filename.replace("\\", "/").split("/")
            if info.filename.startswith("/") or ".." in parts or stat.S_ISLNK(info.external_attr >> 16):
                raise ModelUnavailable(f"package entry {info.filename!r} is not a plain relative path")
        names = [i.filename for i in infos]
        tops = {name.split("/", 1)[0] for name in names}
        root = f"{tops.pop()}/" if len(tops) == 1 and all("/" in n for n in names) else ""
        for info in infos:
            rel = info.filename[len(root) :]
            if not rel or info.is_dir():
                continue
            path = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            with zf.open(info) as src, open(path, "xb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            os.chmod(path, 0o644)


# ---------------------------------------------------------------- the process


class _Child:
    """One started model process: its socket, its calls in flight, the end of its output."""

    def __init__(self, proc: subprocess.Popen, sock: socket.socket) -> None:
        self.proc, self.sock = proc, sock
        self.tail = b""
        self.pending: dict[int, asyncio.Future] = {}
        self.writer: asyncio.StreamWriter | None = None
        self.output = threading.Thread(target=self._forward_output, daemon=True)
        self.output.start()

    def _forward_output(self) -> None:
        """(Its own thread.) The model's prints go to the replica's log (Ray's worker log); the
        last few kB are kept for the reason of a death."""
        stdout = self.proc.stdout
        assert stdout is not None
        while chunk := stdout.read1(65536):  # pyright: ignore[reportAttributeAccessIssue] - a BufferedReader
            self.tail = (self.tail + chunk)[-STDERR_TAIL:]
            with contextlib.suppress(Exception):
                sys.stderr.write(chunk.decode(errors="replace"))

    def alive(self) -> bool:
        return self.proc.poll() is None and self.writer is not None

    def death_reason(self) -> str:
        code = self.proc.poll()
        if code is None:
            what = "it did not answer"
        elif code < 0:
            what = f"killed by {signal.Signals(-code).name}" if -code in signal.valid_signals() else f"signal {-code}"
        else:
            what = f"exited with code {code}"
        text = self.tail.decode(errors="replace").strip()[-2000:]
        return what + (f"; its last output:\n{text}" if text else "")

    def kill(self) -> None:
        if self.proc.poll() is None:
            _kill_group(self.proc)
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=10)
        try:  # the transport owns the socket: closing it unregisters the fd from its loop
            if self.writer is not None:
                self.writer.close()
        except RuntimeError:  # its loop is closed already
            pass
        self.sock.close()


class ModelProcess:
    """The deployment's model in its process, started again when it dies."""

    def __init__(
        self, zip_path: str, sha256: str, entrypoint: str, workdir: str, jail: JailSpec, allow_unsealed: bool
    ) -> None:
        self._zip, self._sha256, self._entrypoint = zip_path, sha256, entrypoint
        self._workdir = workdir
        why = jail_available()
        if why is not None and not allow_unsealed:
            raise ModelUnavailable(
                f"cannot jail the model: {why}. Install bubblewrap on every replica node (apt-get install "
                "bubblewrap) and allow user namespaces, or start the hub with --allow-unsealed"
            )
        self.jailed = why is None
        self.unsealed_reason = why
        # every model's unpacked package lies under workdir: the jail shows only its own, at /model
        self._jail = JailSpec(jail.media_roots, [*jail.hidden, workdir], jail.gpus) if self.jailed else None
        self.restarts = 0
        self.last_death: str | None = None
        self._folder: str | None = None
        self._next_id = 0
        self._starting: asyncio.Lock | None = None
        self._solo = asyncio.Lock()  # one call at a time tried alone after a death
        self._open = asyncio.Event()  # cleared while a call is tried alone
        self._open.set()
        self._child = self._spawn()  # in the replica's constructor: a model that cannot start fails the deploy

    # -- starting

    def _spawn(self) -> _Child:
        """Check and unpack the package, start host.py, wait for its `ready` (blocking)."""
        self._cleanup_folder()
        model_dir = unpack_verified(self._zip, self._sha256, self._workdir)
        self._folder = os.path.dirname(model_dir)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            argv = command(model_dir, theirs.fileno(), self._entrypoint, self._jail)
            _, import_path = python_binds()
            # from a thread that lives as long as the replica: bwrap's --die-with-parent follows
            # the thread that started it, and Serve may build replicas in passing threads
            proc = _SPAWNER.submit(
                subprocess.Popen,
                argv,
                pass_fds=(theirs.fileno(),),
                env=model_env(import_path),
                cwd=model_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            ).result()
        finally:
            theirs.close()
        child = _Child(proc, ours)
        ours.settimeout(READY_TIMEOUT_S)
        try:
            first = _read_frame_blocking(ours)
        except (OSError, ValueError, TimeoutError) as exc:
            child.kill()
            child.output.join(timeout=2)
            raise ModelUnavailable(f"the model process did not start ({exc}): {child.death_reason()}") from None
        if first.get("fatal") or first.get("ready") is not True:
            child.kill()
            raise ModelUnavailable(f"the model could not be loaded:\n{first.get('fatal') or first}")
        ours.settimeout(None)
        ours.setblocking(False)
        return child

    async def _ready(self) -> _Child:
        """The running child, attached to this event loop; started again if it died."""
        self._starting = self._starting or asyncio.Lock()
        async with self._starting:
            child = self._child
            if child.alive():
                return child
            if child.proc.poll() is not None:  # died: its reader fails its calls; start another
                self.restarts += 1
                child.kill()
                child = self._child = await asyncio.to_thread(self._spawn)
            reader, child.writer = await asyncio.open_unix_connection(sock=child.sock, limit=1 << 20)
            asyncio.ensure_future(self._read_answers(child, reader))
            return child

    # -- calls

    async def predict(self, batches: list[list[dict]]) -> list[tuple[dict, bytes]]:
        """One result per mini-batch, and its JSON: `{"outputs": [...]}` or `{"error": "..."}`;
        ModelError when the process died or answered out of bounds (the whole call fails)."""
        try:
            answer = await self._call({"batches": batches})
        except ProcessDied:
            # Several calls are in a process when it dies, and only one may have killed it: each
            # is tried again alone in a fresh process; one that kills that too gets the verdict.
            answer = await self._alone({"batches": batches})
        results = answer.get("results")
        if not isinstance(results, list) or len(results) != len(batches):
            raise ModelError("the model process answered a malformed result")
        return [_checked(result, len(batch)) for result, batch in zip(results, batches, strict=True)]

    async def health(self) -> None:
        """Raises when the model cannot answer (its own check_health, or its process cannot start)."""
        answer = await asyncio.wait_for(self._call({"health": True}), timeout=25)
        if answer.get("ok") is not True:
            raise RuntimeError(f"the model's check_health: {answer.get('error')}")

    async def _alone(self, request: dict) -> dict:
        async with self._solo:
            self._open.clear()  # new calls wait
            try:
                while self._child.pending:  # the calls still in the process end first
                    await asyncio.sleep(0.01)
                return await self._call(request, alone=True)
            finally:
                self._open.set()

    async def _call(self, request: dict, alone: bool = False) -> dict:
        if not alone:
            await self._open.wait()
        child = await self._ready()
        writer = child.writer
        assert writer is not None
        self._next_id += 1
        ident = self._next_id
        future = asyncio.get_running_loop().create_future()
        child.pending[ident] = future
        data = json.dumps({"id": ident, **request}).encode()
        try:
            writer.write(len(data).to_bytes(4, "big") + data)  # one write: frames never interleave
            await writer.drain()
            return await future
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                cancel = json.dumps({"id": ident, "cancel": True}).encode()
                writer.write(len(cancel).to_bytes(4, "big") + cancel)
            raise
        except (ConnectionError, OSError) as exc:
            raise ModelError(f"the model process is gone: {exc}") from None
        finally:
            child.pending.pop(ident, None)

    async def _read_answers(self, child: _Child, reader: asyncio.StreamReader) -> None:
        why = None
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(4), "big")
                if size > MAX_ANSWER:
                    why = f"the model's answer was {size} bytes, over the {MAX_ANSWER}-byte bound"
                    break
                answer = _answer(await reader.readexactly(size))
                future = child.pending.get(int(answer["id"]))
                if future is not None and not future.done():
                    future.set_result(answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except (ValueError, KeyError, TypeError) as exc:
            why = f"the model process broke the protocol ({exc})"
        if why is None:  # it closed its end: give it a moment to exit, so that its reason is its own
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(child.proc.wait, 2)
        if child.proc.poll() is None:
            _kill_group(child.proc)
        await asyncio.to_thread(child.proc.wait)
        await asyncio.to_thread(child.output.join, 2)
        self.last_death = (why + "; " if why else "") + child.death_reason()
        error = ProcessDied(f"the model process died while predicting ({self.last_death}); it is started again")
        for future in list(child.pending.values()):
            if not future.done():
                future.set_exception(error)

    def state(self) -> dict:
        """What the deployment's status says of this replica's model process."""
        return {"jailed": self.jailed, "restarts": self.restarts, "last_death": self.last_death}

    # -- stopping

    def _cleanup_folder(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def close(self) -> None:
        self._child.kill()
        self._cleanup_folder()


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _answer(frame: bytes) -> dict:
    """A frame from the model process: `{"id", ...}`, or its head `{"id", "lengths"}` followed by
    each result's JSON (host.py), read here as `results`: each one's bytes, not yet parsed."""
    size = int.from_bytes(frame[:4], "big")
    if frame[:1] == b"{":  # a plain answer (health)
        answer = json.loads(frame)
    else:
        answer = json.loads(frame[4 : 4 + size])
        lengths, results, at = answer.pop("lengths"), [], 4 + size
        if not isinstance(lengths, list) or not all(isinstance(n, int) and n >= 0 for n in lengths):
            raise ValueError("lengths must be a list of sizes")
        for n in lengths:
            results.append(frame[at : at + n])
            at += n
        if at != len(frame):
            raise ValueError("the results do not fill the frame")
        answer["results"] = results
    if not isinstance(answer, dict) or not isinstance(answer.get("id"), int):
        raise ValueError("an answer without its id")
    return answer


def _checked(data: bytes, size: int) -> tuple[dict, bytes]:
    """One mini-batch's result as the replica answers it, whatever the model process sent: its
    bytes are passed on only when they parse as exactly one result of the right shape."""
    try:
        result = json.loads(data)
    except ValueError:
        result = None
    if isinstance(result, dict) and set(result) == {"error"} and isinstance(result["error"], str):
        if len(result["error"]) <= 2000:
            return result, data
        result = {"error": result["error"][:2000]}
        return result, json.dumps(result).encode()
    if isinstance(result, dict) and set(result) == {"outputs"}:
        outputs = result["outputs"]
        if isinstance(outputs, list) and len(outputs) == size and all(isinstance(o, dict) for o in outputs):
            return result, data
    error = {"error": "the model process answered a malformed result"}
    return error, json.dumps(error).encode()


def _read_frame_blocking(sock: socket.socket) -> dict:
    header = _recv_exactly(sock, 4)
    size = int.from_bytes(header, "big")
    if size > 1 << 20:
        raise ValueError(f"a first frame of {size} bytes")
    message = json.loads(_recv_exactly(sock, size))
    if not isinstance(message, dict):
        raise ValueError("a first frame that is not an object")
    return message


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ValueError("the model process closed its end before it was ready")
        data += chunk
    return data
