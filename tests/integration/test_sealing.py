"""A model's code runs in a jail of its own, and nothing of the hub is within its reach.

The replica (trusted glue) starts the model's process through bubblewrap (modelhub_replica.jail):
new user/PID/IPC/UTS/cgroup/net namespaces, uid 65534, no capabilities, no_new_privs, its own
/proc, a read-only filesystem (the OS, the Python env, the package, the media roots with the data
dir covered), a private /tmp, no network but its own loopback and a clean environment.

These tests attack it from inside: a model whose __init__ tries, one after the other, everything an
attacker would (capabilities, mounts, nested user namespaces, /proc, writes, secrets, every port
and socket of the hub, Ray, ptrace, signals) and reports each outcome as its output label. The job
must still complete with every sample, and every attempt must have failed. The model runs only the
standard library (ctypes for the syscalls); what it needs to know of the hub (the data dir, the
ports the hub listens on, its pids, its sockets) the test finds on the host and writes into it.
"""

import contextlib
import json
import os
import re
from pathlib import Path

import pytest
from conftest import (
    SCHEMA_TEXT_TO_CLASS,
    add_files,
    add_text_samples,
    all_samples,
    create_model,
    deploy,
    make_zip,
    run_job,
    unique,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

# ---------------------------------------------------------------- the hostile model

# Inside the model: `__PARAMS__` is replaced by a JSON text (the test's findings on the host).
# A raw string: what is written here is what the model's file holds (no brace or backslash games).
# Every entry of "attempts" is an attack that must fail: "OK: ..." means it got through. "facts"
# and "info" are what the model saw (asserted on by the test where they matter).
HOSTILE = r'''
import ctypes, glob, json, os, site, socket, stat, subprocess, sys, sysconfig, time, urllib.request

P = json.loads(__PARAMS__)
DATA_DIR = P["data_dir"]
SECRET_FILES = ("admin-token", "credentials.json", "nats-password", "nats-integration-password",
                "mongo-password", "ray-auth-token", "state.json", "stack.json", "supervisor.pid")
HUB = ("mongod", "nats-server", "gcs_server", "raylet", "ray::", "default_worker.py", "dashboard.py",
       "log_monitor.py", "runtime_env", "modelhub.stack", "modelhub.sandbox", "modelhub.raynode",
       "modelhub_registry", "modelhub_deployer", "modelhub_scheduler", "modelhub_worker", "modelhub_gateway",
       "uvicorn")

LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
LIBC.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
LIBC.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
LIBC.unshare.argtypes = [ctypes.c_int]
LIBC.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
LIBC.ptrace.restype = ctypes.c_long
LIBC.syscall.restype = ctypes.c_long
MNT_DETACH, MS_REMOUNT, MS_BIND = 2, 32, 4096
CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
PTRACE_SEIZE = 0x4206  # the permission check of PTRACE_ATTACH, without stopping the target
SYS_OPEN_TREE, OPEN_TREE_CLONE, AT_FDCWD = 428, 1, -100  # 428 on x86_64 and aarch64 alike


def attempt(fn, *args):
    try:
        return "OK: " + str(fn(*args))[:400]
    except BaseException as exc:
        return "FAILED: " + type(exc).__name__ + ": " + str(exc)[:300]


def call(what, fn, *args):
    rc = fn(*args)
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err) + " (" + what + ")")
    return what + " returned " + str(rc)


def proc_status():
    out = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()[:300]
    except OSError as exc:
        return "(" + type(exc).__name__ + ")"


def visible_pids():
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())


def own_fds():
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            pass  # the listing's own descriptor, closed by now
    return out


def mounts():
    out = []
    for line in open("/proc/self/mountinfo"):
        left, _, right = line.partition(" - ")
        f = left.split()
        out.append(f"{f[4]} <- {f[3]} ({f[5].split(',')[0]}, {right.split()[0]})")
    return out


def host_path_of(mount_point):
    for line in open("/proc/self/mountinfo"):
        f = line.split()
        if f[4] == mount_point:
            return f[3]
    return None


def read(path):
    with open(path, "rb") as fh:
        return fh.read(200)


def listing(path):
    """A folder's names, less this model's own probes and marker."""
    return [n for n in os.listdir(path) if not n.startswith(".mh-jail-")]


def list_nonempty(path):
    names = listing(path)
    if not names:
        raise LookupError(f"{path} is empty here")
    return sorted(names)[:40]


def create_probe(folder):
    path = os.path.join(folder, f".mh-jail-probe-{os.getpid()}")
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.close(fd)
    os.unlink(path)
    return "created (and removed) " + path


def open_for_writing(path):
    """Opening is the permission check; nothing is ever written."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.close(fd)
    return "opened for writing (nothing written): " + path


def umount(path):
    return call("umount2 " + path, LIBC.umount2, os.fsencode(path), MNT_DETACH)


def mount_tmpfs(path):
    os.makedirs(path, exist_ok=True)
    return call("mount tmpfs on " + path, LIBC.mount, b"tmpfs", os.fsencode(path), b"tmpfs", 0, None)


def remount_rw(path):
    return call("remount rw " + path, LIBC.mount, None, os.fsencode(path), None, MS_REMOUNT | MS_BIND, None)


def in_child(fn):
    """fn() in a forked child of this process; its JSON result through a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            data = json.dumps(fn())
        except BaseException as exc:
            data = json.dumps({"child": "FAILED: " + type(exc).__name__ + ": " + str(exc)})
        with os.fdopen(w, "w") as fh:
            fh.write(data)
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    return json.loads(data)


# ------------------------------------------------ 1. who am I

def facts():
    st = proc_status()
    pids = visible_pids()
    return {
        "pid": os.getpid(), "ppid": os.getppid(), "hostname": socket.gethostname(),
        "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups(),
        "status": {k: st.get(k) for k in ("Uid", "Gid", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                                          "NoNewPrivs", "Seccomp")},
        "pid1_status": pid1_status(),
        "uid_map": open("/proc/self/uid_map").read().split(),
        "gid_map": open("/proc/self/gid_map").read().split(),
        "namespaces": {ns: os.readlink(f"/proc/self/ns/{ns}") for ns in
                       ("user", "pid", "net", "ipc", "uts", "cgroup", "mnt")},
        "processes": {str(p): cmdline(p) for p in pids},
        "environ": dict(os.environ),
        "pid1_environ": attempt(lambda: sorted(k.split(b"=")[0].decode() for k in
                                               read_all("/proc/1/environ").split(b"\0") if k)),
        "fds": own_fds(),
        "cwd": os.getcwd(),
        "interfaces": [name for _, name in socket.if_nameindex()],
        "own_package_host_path": host_path_of("/run/modelhub/model"),
        "mounts": mounts(),
        "proc_net_unix": open("/proc/net/unix").read().splitlines()[1:][:40],
        "executable": sys.executable,
    }


def pid1_status():
    try:
        lines = open("/proc/1/status").read().splitlines()
    except OSError as exc:
        return {"error": type(exc).__name__}
    out = {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return {k: out.get(k) for k in ("Name", "Uid", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")}


def read_all(path):
    with open(path, "rb") as fh:
        return fh.read()


# ------------------------------------------------ 2. mounts, and a nested user namespace

def reveal_by_umount():
    """Take the covers off the data dir (the jail's tmpfs, the sealed node's under it)."""
    hows = [attempt(umount, DATA_DIR) for _ in range(3)]
    names = listing(DATA_DIR)
    if not names:
        raise LookupError(f"{hows}; the data dir still shows nothing")
    return f"{hows}; the data dir shows {sorted(names)[:40]}"


def reveal_by_bind():
    """A non-recursive bind of the media root holding the data dir: without its covers."""
    root = P["data_root"]
    peek = "/tmp/peek-bind"
    os.makedirs(peek, exist_ok=True)
    how = attempt(call, "bind " + root, LIBC.mount, os.fsencode(root), os.fsencode(peek), None, MS_BIND, None)
    target = os.path.join(peek, os.path.relpath(DATA_DIR, root))
    try:
        names = listing(target)
    except OSError as exc:
        raise LookupError(f"bind: {how}; then {target}: {exc}") from None
    if not names:
        raise LookupError(f"bind: {how}; {target} shows nothing")
    return f"bind: {how}; {target} shows {sorted(names)[:40]}"


def reveal_by_open_tree():
    """open_tree(OPEN_TREE_CLONE) without AT_RECURSIVE: a detached copy of the root, no covers."""
    root = P["data_root"]
    fd = LIBC.syscall(ctypes.c_long(SYS_OPEN_TREE), ctypes.c_int(AT_FDCWD), ctypes.c_char_p(os.fsencode(root)),
                      ctypes.c_uint(OPEN_TREE_CLONE))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err) + " (open_tree " + root + ")")
    target = f"/proc/self/fd/{fd}/" + os.path.relpath(DATA_DIR, root)
    names = listing(target)
    if not names:
        raise LookupError(f"open_tree fd {fd}; {target} shows nothing")
    return f"open_tree fd {fd}; {target} shows {sorted(names)[:40]}"


def write_after_remount(path):
    how = attempt(remount_rw, path)
    try:
        return create_probe(path) + "; remount: " + how
    except OSError as exc:
        raise OSError(exc.errno, f"remount: {how}; then the write: {exc.strerror}") from None


def nested():
    """In a forked child: a new user namespace (and mount namespace) of its own, where it has every
    capability, then every way to see under the covers or to write to a read-only bind."""
    out = {"unshare(CLONE_NEWUSER|CLONE_NEWNS)": attempt(call, "unshare", LIBC.unshare, CLONE_NEWUSER | CLONE_NEWNS)}
    if not out["unshare(CLONE_NEWUSER|CLONE_NEWNS)"].startswith("OK"):
        return {"info": out, "attempts": {}}
    out["CapEff in the nested namespace"] = proc_status()["CapEff"]
    out["mount a tmpfs in its own mount namespace"] = attempt(mount_tmpfs, "/tmp/nested-tmpfs")
    attempts = {
        "nested: umount the data dir's covers, list it": attempt(reveal_by_umount),
        "nested: non-recursive bind of the media root, list the data dir": attempt(reveal_by_bind),
        "nested: open_tree clone of the media root, list the data dir": attempt(reveal_by_open_tree),
        "nested: remount the package rw, write": attempt(write_after_remount, "/run/modelhub/model"),
        "nested: remount the media root rw, write": attempt(write_after_remount, P["data_root"]),
        "nested: remount the site-packages rw, write": attempt(
            write_after_remount, sysconfig.get_paths()["purelib"]),
        "nested: umount /proc, see a hub process": attempt(lambda: (umount("/proc"), hub_processes())),
        "nested: read the admin-token": attempt(read, os.path.join(DATA_DIR, "admin-token")),
        "nested: list the data dir": attempt(list_nonempty, DATA_DIR),
        "nested: open /proc/sys/kernel/core_pattern for writing": attempt(
            open_for_writing, "/proc/sys/kernel/core_pattern"),
    }
    return {"info": out, "attempts": attempts}


def mount_attempts():
    a = {
        "mount a tmpfs on /tmp/mnt": attempt(mount_tmpfs, "/tmp/mnt"),
        "remount the package rw": attempt(remount_rw, "/run/modelhub/model"),
        "remount the media root rw": attempt(remount_rw, P["data_root"]),
    }
    for path in ("/tmp", "/proc", DATA_DIR, "/run/modelhub/model"):  # last: a success would break the rest
        a["umount2 " + path] = attempt(umount, path)
    return a


# ------------------------------------------------ 3. other processes

def hub_processes():
    seen = {p: c for p in visible_pids() if any(k in (c := cmdline(p)) for k in HUB)}
    if not seen:
        raise LookupError(f"no hub process among the visible pids {visible_pids()}")
    return seen


def hub_environment():
    found = set()
    for pid in visible_pids():
        try:
            env = read_all(f"/proc/{pid}/environ")
        except OSError:
            continue
        found |= {v.decode(errors="replace")[:80] for v in env.split(b"\0")
                  if v.startswith((b"MODELHUB_", b"RAY_"))}
    if not found:
        raise LookupError("no MODELHUB_* or RAY_* variable in any visible process's environ")
    return sorted(found)


def proc_attempts():
    a = {
        "see a hub process in /proc": attempt(hub_processes),
        "read MODELHUB_*/RAY_* from a visible process's environ": attempt(hub_environment),
        "read the admin-token through /proc/1/root": attempt(read, f"/proc/1/root{DATA_DIR}/admin-token"),
        "list the data dir through /proc/1/root": attempt(list_nonempty, f"/proc/1/root{DATA_DIR}"),
        "RAY_AUTH_TOKEN in the environment": attempt(lambda: os.environ["RAY_AUTH_TOKEN"]),
        "a MODELHUB_* variable in the environment": attempt(
            lambda: [k for k in os.environ if k.startswith("MODELHUB_")] or os.environ["MODELHUB_"]),
        "a RAY_* variable in the environment": attempt(
            lambda: [k for k in os.environ if k.startswith("RAY_")] or os.environ["RAY_"]),
    }
    a[f"kill(pid, 0) on any of the hub's {len(P['hub_pids'])} pids"] = attempt(signal_any, P["hub_pids"])
    return a


def signal_any(pids):
    reached, errors = [], {}
    for pid in pids:
        try:
            os.kill(pid, 0)
            reached.append(pid)
        except OSError as exc:
            key = type(exc).__name__
            errors[key] = errors.get(key, 0) + 1
    if reached:
        return f"signalled {reached[:20]}"
    raise ProcessLookupError(f"{len(pids)} pids, none reached: {errors}")


# ------------------------------------------------ 4. writes

def write_attempts():
    paths = sysconfig.get_paths()
    site_dirs = sorted({d for d in [*site.getsitepackages(), paths["purelib"], paths["platlib"]] if os.path.isdir(d)})
    a = {}
    for d in site_dirs:
        a["create a file in site-packages " + d] = attempt(create_probe, d)
        modules = sorted(n for n in os.listdir(d) if n.endswith(".py"))
        packages = sorted(n for n in os.listdir(d) if os.path.isfile(os.path.join(d, n, "__init__.py")))
        if modules:
            a["open a site-packages module for writing " + modules[0]] = attempt(
                open_for_writing, os.path.join(d, modules[0]))
        if packages:
            a["open a site-packages package for writing " + packages[0]] = attempt(
                open_for_writing, os.path.join(d, packages[0], "__init__.py"))
    a["create a file in the stdlib " + paths["stdlib"]] = attempt(create_probe, paths["stdlib"])
    a["open os.py for writing"] = attempt(open_for_writing, os.__file__)
    a["create a file next to the interpreter"] = attempt(create_probe, os.path.dirname(sys.executable))
    a["open the admin-token for writing"] = attempt(open_for_writing, os.path.join(DATA_DIR, "admin-token"))
    a["create a file in the package (cwd)"] = attempt(create_probe, os.getcwd())
    own = host_path_of("/run/modelhub/model")
    if own:
        a["create a file in the package's host path " + own] = attempt(create_probe, own)
        a["create a file in the package cache (host path) " + os.path.dirname(os.path.dirname(own))] = attempt(
            create_probe, os.path.dirname(os.path.dirname(own)))
    caches = set(P["package_caches"])
    for pattern in ("/tmp/ray*/**/modelhub-packages", "/tmp/mh-ray*/**/modelhub-packages", "/tmp/**/modelhub-packages"):
        caches |= set(glob.glob(pattern, recursive=True)[:20])
    for cache in sorted(caches):
        a["list the package cache " + cache] = attempt(list_nonempty, cache)
        a["create a file in the package cache " + cache] = attempt(create_probe, cache)
    for root in P["media_roots"]:
        a["create a file in the media root " + root] = attempt(create_probe, root)
    for d in ("/usr", "/usr/local/lib", "/usr/lib", "/etc/ssl/certs", "/etc/alternatives"):
        a["create a file in " + d] = attempt(create_probe, d)
    for f in ("/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/proc/sys/vm/drop_caches",
              "/proc/sys/kernel/panic", "/proc/sysrq-trigger"):
        a["open " + f + " for writing"] = attempt(open_for_writing, f)
    return a


def private_writes():
    """Places that are the jail's own tmpfs (its root, /run, the cover over the data dir): a write
    lands there and nowhere else. The data dir's marker is left for the test to look for on the host."""
    return {
        "create a file in the data dir (its cover)": attempt(create_marker, DATA_DIR),
        "create a file in /": attempt(create_probe, "/"),
        "create a file in /etc": attempt(create_probe, "/etc"),
        "create a file in /run/modelhub": attempt(create_probe, "/run/modelhub"),
        "open /proc/1/mem (the jail's init) for writing": attempt(open_for_writing, "/proc/1/mem"),
        # by design: a media root is what the operator lets models read, as the hub's OS user may
        "read a 0600 file of the hub's OS user in a media root": attempt(read, P["private_file"]),
    }


def create_marker(folder):
    path = os.path.join(folder, P["marker"])
    with open(path, "x") as fh:
        fh.write("written by a model")
    return "created (and left) " + path


# ------------------------------------------------ 5. reads

def read_attempts():
    a = {"list the data dir": attempt(list_nonempty, DATA_DIR),
         "list the data dir's logs": attempt(list_nonempty, os.path.join(DATA_DIR, "logs"))}
    for name in SECRET_FILES:
        a["read DATA_DIR/" + name] = attempt(read, os.path.join(DATA_DIR, name))
    a["list /etc/ssl/private (root only)"] = attempt(os.listdir, "/etc/ssl/private")
    for d in (*P["ray_dirs"], "/tmp/ray", "/home", "/var/lib"):
        a["list " + d] = attempt(list_nonempty, d)
    a["list /root beyond the folders that lead to the Python it runs"] = attempt(list_beyond_binds, "/root")
    return a


def list_beyond_binds(path):
    """What a folder shows besides the folders bwrap made to reach a bind mount below it."""
    points = [line.split()[4] for line in open("/proc/self/mountinfo")]
    skeleton = {p[len(path) + 1:].split("/")[0] for p in points if p.startswith(path.rstrip("/") + "/")}
    extra = sorted(set(os.listdir(path)) - skeleton)
    if not extra:
        raise LookupError(f"{path} shows only {sorted(skeleton)}, the way to binds below it")
    return extra[:40]


# ------------------------------------------------ 6. network

def connect(host, port, family=socket.AF_INET):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        s.connect((host, port))
        return f"connected to {host}:{port}"


def connect_all(host, ports, family=socket.AF_INET):
    reached, errors = [], {}
    for port in ports:
        try:
            connect(host, port, family)
            reached.append(port)
        except OSError as exc:
            key = type(exc).__name__ + ": " + (exc.strerror or str(exc))
            errors[key] = errors.get(key, 0) + 1
    if reached:
        return f"connected to {host} on {reached}"
    raise ConnectionError(f"{len(ports)} ports of {host}, none reached: {errors}")


def outbound(host, port, family):
    started = time.monotonic()
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            s.connect((host, port))
            return f"connected to {host}:{port}"
    except OSError as exc:
        raise OSError(exc.errno, f"{exc.strerror or exc} after {time.monotonic() - started:.3f} s") from None


def udp_out():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return f"sent {s.sendto(b'x', ('192.0.2.1', 9))} bytes to 192.0.2.1:9"


def network_attempts():
    a = {}
    for name, port in sorted(P["named_ports"].items()):
        a[f"tcp 127.0.0.1:{port} ({name})"] = attempt(connect, "127.0.0.1", port)
    a[f"tcp 127.0.0.1, every port of the stack ({len(P['all_ports'])})"] = attempt(
        connect_all, "127.0.0.1", P["all_ports"])
    a[f"tcp [::1], every port of the stack ({len(P['all_ports'])})"] = attempt(
        connect_all, "::1", P["all_ports"], socket.AF_INET6)
    a["outbound tcp 192.0.2.1:80 (TEST-NET-1)"] = attempt(outbound, "192.0.2.1", 80, socket.AF_INET)
    a["outbound tcp [2001:db8::1]:80 (documentation prefix)"] = attempt(outbound, "2001:db8::1", 80, socket.AF_INET6)
    a["outbound udp 192.0.2.1:9 (TEST-NET-1)"] = attempt(udp_out)
    a["open a raw ICMP socket"] = attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close() or "created")
    a["open a packet socket"] = attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close() or "created")
    return a


# ------------------------------------------------ 7. Ray

RAY_AUTO = "import ray; ray.init(address='auto'); print('CONNECTED', len(ray.nodes()))"
RAY_GCS = "import ray; ray.init(address='127.0.0.1:{}'); print('CONNECTED', len(ray.nodes()))"


def ray_subprocess(code, timeout):
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        err = (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        last = [line for line in err.splitlines() if line.strip()][-1:] or ["(nothing on stderr)"]
        raise TimeoutError(f"no connection within {timeout} s; last: {last[0][-200:]}") from None
    if done.returncode == 0 and "CONNECTED" in done.stdout:
        return done.stdout.strip()
    last = [line for line in done.stderr.splitlines() if line.strip()][-1:] or ["(nothing on stderr)"]
    raise ConnectionError(f"exit {done.returncode}: {last[0][-250:]}")


def ray_attempts():
    dash = P["named_ports"]["ray dashboard"]
    return {
        "import ray; ray.init(address='auto')": attempt(ray_subprocess, RAY_AUTO, 60),
        "import ray; ray.init(address=the head's GCS)": attempt(
            ray_subprocess, RAY_GCS.format(P["named_ports"]["ray gcs"]), 20),
        "GET Serve's config from the dashboard": attempt(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{dash}/api/serve/applications/", timeout=3).read(300)),
    }


# ------------------------------------------------ 8. ptrace and signals

def seize(pid):
    return call(f"PTRACE_SEIZE {pid}", LIBC.ptrace, PTRACE_SEIZE, pid, None, None)


def seize_any(pids):
    reached, errors = [], {}
    for pid in pids:
        try:
            seize(pid)
            reached.append(pid)
        except OSError as exc:
            key = os.strerror(exc.errno) if exc.errno else str(exc)
            errors[key] = errors.get(key, 0) + 1
    if reached:
        return f"seized {reached[:20]}"
    raise ProcessLookupError(f"{len(pids)} pids, none seized: {errors}")


def ptrace_all():
    """In a forked child (its exit detaches whatever it seized; SEIZE stops nothing)."""
    return {
        "info": {"PTRACE_SEIZE the jail's pid 1": attempt(seize, 1),
                 f"PTRACE_SEIZE this model's host process ({os.getppid()})": attempt(seize, os.getppid())},
        "attempts": {f"PTRACE_SEIZE any of the hub's {len(P['hub_pids'])} pids": attempt(seize_any, P["hub_pids"])},
    }


def kill_probe():
    alive = []
    for pid in range(1, 65):
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except OSError:
            pass
    return alive


# ------------------------------------------------ 9. unix sockets

def sockets_in_view():
    found, seen = [], 0
    for top in ("/tmp", "/run", "/var/run", "/dev", "/dev/shm", *P["media_roots"]):
        for folder, dirs, files in os.walk(top):
            for name in dirs + files:
                seen += 1
                path = os.path.join(folder, name)
                try:
                    if stat.S_ISSOCK(os.lstat(path).st_mode):
                        found.append(path)
                except OSError:
                    pass
            if seen > 20000:
                return found
    return found


def connect_unix(paths):
    reached, errors = [], {}
    for path in paths:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1.0)
            try:
                s.connect(path.replace("@", "\0", 1) if path.startswith("@") else path)
                reached.append(path)
            except OSError as exc:
                key = type(exc).__name__ + ": " + (exc.strerror or str(exc))
                errors[key] = errors.get(key, 0) + 1
    if reached:
        return f"connected to {reached[:20]}"
    raise ConnectionError(f"{len(paths)} sockets, none reached: {errors}")


def socket_attempts():
    in_view = sockets_in_view()
    ray_like = [p for pattern in ("/tmp/ray*/**/sockets/*", "/tmp/mh-ray*/**/sockets/*", "/tmp/*.sock")
                for p in glob.glob(pattern, recursive=True)]
    return in_view, {
        f"connect to a unix socket found in the jail's view ({len(in_view)})": attempt(connect_unix, in_view)
        if in_view else "FAILED: none found",
        f"connect to a Ray-like socket by glob ({len(ray_like)})": attempt(connect_unix, ray_like)
        if ray_like else "FAILED: none found",
        f"connect to the hub's unix sockets by path ({len(P['unix_paths'])})": attempt(connect_unix, P["unix_paths"]),
        f"connect to the hub's abstract sockets ({len(P['unix_abstract'])})": attempt(connect_unix, P["unix_abstract"])
        if P["unix_abstract"] else "FAILED: the hub has none",
    }


def look():
    report = {"facts": facts(), "attempts": {}, "info": {}}
    a = report["attempts"]
    a.update(read_attempts())
    a.update(write_attempts())
    report["info"]["writes to the jail's own tmpfs"] = private_writes()
    a.update(proc_attempts())
    a.update(network_attempts())
    a.update(ray_attempts())
    child = in_child(nested)
    report["info"]["nested user namespace"] = child.get("info", child)
    a.update(child.get("attempts", {}))
    seized = in_child(ptrace_all)
    report["info"].update(seized.get("info", seized))
    a.update(seized.get("attempts", {}))
    report["info"]["kill(pid, 0) succeeded for (pids 1-64)"] = kill_probe()
    report["info"]["pids visible at the end"] = visible_pids()
    found, unix = socket_attempts()
    report["info"]["unix sockets in the jail's view"] = found[:40]
    a.update(unix)
    a.update(mount_attempts())  # last: its umounts would change the view of the others
    return report


class Model:
    def __init__(self, model_dir):
        self.report = json.dumps(look(), sort_keys=True)

    def predict(self, batch):
        return {"label": [{"label": self.report, "confidence": 1.0} for _ in batch["text"]]}
'''

# ---------------------------------------------------------------- the host's side

# The namespaces a jail must not share with the host (the test process's own).
NAMESPACES = ("user", "pid", "net", "ipc", "uts", "cgroup", "mnt")


def _ppid(pid: int) -> int | None:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat_line.rsplit(")", 1)[1].split()[1])


def stack_pids(stack) -> dict[int, str]:
    """Every process of this stack, seen from the host: the supervisor and all its descendants
    (servers, services, the Ray nodes, their workers, the replicas, the jails)."""
    root = int((stack.data_dir / "supervisor.pid").read_text().split()[0])
    parents = {int(p.name): _ppid(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()}
    ours, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in ours} - ours
        ours |= more
        grew = bool(more)
    out = {}
    for pid in sorted(ours):
        with contextlib.suppress(OSError):
            out[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    return out


def _socket_inodes(pids) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if m := re.fullmatch(r"socket:\[(\d+)\]", link):
                inodes.add(m.group(1))
    return inodes


def listening_ports(inodes: set[str]) -> set[int]:
    """The TCP ports that the given sockets listen on (host's /proc/net/tcp and tcp6)."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return ports


def unix_sockets(inodes: set[str]) -> tuple[list[str], list[str]]:
    """(paths, abstract names as "@name") of the given sockets that are bound to a name."""
    paths, abstract = set(), set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        f = line.split()
        if len(f) >= 8 and f[6] in inodes:
            (abstract if f[7].startswith("@") else paths).add(f[7])
    return sorted(paths)[:300], sorted(abstract)[:300]


def named_ports(stack) -> dict[str, int]:
    record = json.loads((stack.data_dir / "stack.json").read_text())
    ports = record["ports"]
    out = {"nats": ports["nats"], "mongo": ports["mongo"], "gateway": record["gateway_port"]}
    out.update({f"ray {name}": port for name, port in ports["ray"].items() if name not in ("min_worker", "max_worker")})
    for i, node in enumerate(ports["replica_nodes"]):
        out.update({f"replica node {i} {n}": p for n, p in node.items() if n not in ("min_worker", "max_worker")})
    for name, entry in stack.state().get("services", {}).items():
        if isinstance(entry, dict) and isinstance(entry.get("http_port"), int):
            out[f"service {name}"] = entry["http_port"]
    return out


def all_stack_ports(stack) -> list[int]:
    """Every port of the stack: the named ones, the Ray worker ranges, and whatever the stack's
    processes listen on now (replicas' direct paths, workers, agents)."""
    ports = json.loads((stack.data_dir / "stack.json").read_text())["ports"]
    out = set(named_ports(stack).values())
    for node in [ports["ray"], *ports["replica_nodes"]]:
        out |= set(range(node["min_worker"], node["max_worker"] + 1))
    out |= listening_ports(_socket_inodes(stack_pids(stack)))
    return sorted(out)


def secrets(stack) -> dict[str, str]:
    """The hub's secrets, as the host sees them: none may appear in anything a model reports."""
    out = {}
    for name in ("admin-token", "nats-password", "nats-integration-password", "mongo-password", "ray-auth-token"):
        path = stack.data_dir / name
        if path.exists() and (value := path.read_text().strip()):
            out[name] = value
    creds = stack.credentials()
    for key, value in creds.items():
        if isinstance(value, str) and (m := re.search(r"//[^:/@]+:([^@]+)@", value)):
            out[f"credentials.json {key} password"] = m.group(1)
    return out


def run_reporting_model(stack, tmp_path: Path, source: str, total: int, while_deployed=None) -> list[dict]:
    """Deploy `source`, run a job of `total` samples on it; every sample's report, parsed
    (`while_deployed(reports)` is called before the deployment is deleted)."""
    client, model, name, dataset = stack.client, unique("look"), unique("look-dep"), unique("ds")
    create_model(client, model, make_zip(tmp_path / "m.zip", {"model.py": source}), SCHEMA_TEXT_TO_CLASS)
    deployed = deploy(client, model, name, mini_batch=4)
    assert deployed["status"] == "running", (deployed["error"], stack.logs())
    try:
        add_text_samples(client, dataset, [f"t{i}" for i in range(total)])
        job = run_job(client, dataset, name, {"label": "report"})
        assert job["status"] == "completed", (job, stack.logs())
        assert (job["total"], job["succeeded"], job["failed"]) == (total, total, 0), job
        samples = all_samples(client, dataset)
        assert len(samples) == total and all("report" in s["fields"] for s in samples)
        reports = [json.loads(s["fields"]["report"]["label"]) for s in samples]
        if while_deployed is not None:
            while_deployed(reports)
    finally:
        client.delete(f"/deployments/{name}")
    return reports


@pytest.fixture(scope="module")
def hostile(stack, tmp_path_factory, media_roots):
    """The hostile model's report (one deployment for the tests below), and what the test found on
    the host before and after it ran."""
    tmp = tmp_path_factory.mktemp("hostile")
    record = json.loads((stack.data_dir / "stack.json").read_text())
    roots = [os.path.realpath(r) for r in media_roots.split(os.pathsep) if r]
    data_dir = os.path.realpath(stack.data_dir)
    data_root = next(r for r in roots if data_dir.startswith(r.rstrip("/") + "/"))
    private = tmp / "operator-only.txt"  # a file the hub's OS user keeps to itself, in a media root
    private.write_text("for the operator's eyes only\n")
    private.chmod(0o600)
    temp = record["ray_temp_dir"]
    nodes = range(record["replica_nodes"])
    ray_dirs = [temp, *[f"{temp}r{i}" for i in nodes]]
    caches = [f"{d}/session_latest/modelhub-packages" for d in ray_dirs]
    pids_before = stack_pids(stack)
    inodes = _socket_inodes(pids_before)
    unix_paths, unix_abstract = unix_sockets(inodes)
    params = {
        "data_dir": data_dir,
        "data_root": data_root,
        "media_roots": roots,
        "private_file": str(private),
        "ray_dirs": ray_dirs,
        "package_caches": caches,
        "named_ports": named_ports(stack),
        "all_ports": all_stack_ports(stack),
        "hub_pids": sorted(pids_before),
        "unix_paths": unix_paths,
        "unix_abstract": unix_abstract,
        "marker": f".mh-jail-marker-{unique('m')}",
    }
    source = HOSTILE.replace("__PARAMS__", repr(json.dumps(params)))
    on_host: dict = {}

    def look_on_the_host(reports: list[dict]) -> None:  # while the model's package is still unpacked
        on_host["caches"] = [c for c in caches if os.path.isdir(c)]
        on_host["own package"] = {r["facts"]["own_package_host_path"] for r in reports}
        on_host["own package exists"] = all(p and os.path.isdir(p) for p in on_host["own package"])

    reports = run_reporting_model(stack, tmp, source, 8, look_on_the_host)
    (report,) = {json.dumps(r, sort_keys=True) for r in reports}  # one replica, one report
    found = json.loads(report)
    print("\nwhat the hostile model saw and tried:\n" + json.dumps(found, indent=1, sort_keys=True))
    print("\nthe host's side:", json.dumps({k: v for k, v in params.items() if k != "all_ports"}, indent=1))
    print("\nfound on the host while it ran:", on_host)
    return {"report": found, "text": report, "params": params, "on_host": on_host}


def test_a_hostile_model_gets_nothing_through_and_the_job_still_completes(stack, hostile):
    found, text = hostile["report"], hostile["text"]
    facts, attempts = found["facts"], found["attempts"]

    problems = []
    # every attempt failed
    problems += [
        f"GOT THROUGH: {name}: {outcome}" for name, outcome in attempts.items() if not outcome.startswith("FAILED")
    ]
    # 1. no capabilities, no_new_privs, not root, inside or on the host (the user namespace's uid_map)
    status = facts["status"]
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        if int(status[cap], 16) != 0:
            problems.append(f"{cap} is {status[cap]}, not 0")
    if status["NoNewPrivs"] != "1":
        problems.append(f"NoNewPrivs is {status['NoNewPrivs']}")
    if 0 in (facts["uid"], facts["euid"], facts["gid"]):
        problems.append(f"uid/euid/gid {facts['uid']}/{facts['euid']}/{facts['gid']}: root in the jail")
    # Where the hub runs as root (these machines), the jail's uid maps to root outside its user
    # namespace, without any capability (bubblewrap's mapping; docs/security.md): what that
    # could still reach, root-only kernel files and root's own files, is among the attempts above.
    print("uid_map (inside, outside, count):", facts["uid_map"])
    # 3. its own environment is clean, and nothing of the hub's secrets is anywhere in the report
    env_keys = [k for k in facts["environ"] if k.startswith(("MODELHUB_", "RAY_"))]
    if env_keys:
        problems.append(f"the model's environment holds {env_keys}")
    for what, value in secrets(stack).items():
        if value in text:
            problems.append(f"the report holds the hub's {what}")
    # the only processes it sees are the jail's own: bwrap (pid 1) and the model's host
    for pid, cmd in facts["processes"].items():
        if not (cmd.split(" ", 1)[0].endswith("bwrap") or "/run/modelhub/host.py" in cmd):
            problems.append(f"pid {pid} in the jail is not the jail's own: {cmd}")
    # no inherited descriptor to a file or folder of the host (only /dev/null, pipes, sockets, epoll)
    for fd, link in facts["fds"].items():
        if link.startswith("/") and link != "/dev/null":
            problems.append(f"fd {fd} is open on {link}")
    # 6. no interface but loopback; the way out is unreachable at once (no route), not slow
    if facts["interfaces"] != ["lo"]:
        problems.append(f"network interfaces {facts['interfaces']}")
    for name in ("outbound tcp 192.0.2.1:80 (TEST-NET-1)", "outbound udp 192.0.2.1:9 (TEST-NET-1)"):
        if "unreachable" not in attempts[name].lower():
            problems.append(f"{name} did not fail as unreachable: {attempts[name]}")
    # 8. signals reach only the jail's processes
    visible = {int(p) for p in facts["processes"]} | set(found["info"]["pids visible at the end"])
    if stray := set(found["info"]["kill(pid, 0) succeeded for (pids 1-64)"]) - visible:
        problems.append(f"kill(pid, 0) reached pids outside the jail's /proc: {sorted(stray)}")
    # the jail's init (pid 1) is within the model's reach (ptrace, /proc/1/mem): it must hold nothing more
    pid1 = facts["pid1_status"]
    if any(int(pid1.get(cap) or "1", 16) != 0 for cap in ("CapPrm", "CapEff", "CapAmb")):
        problems.append(f"the jail's pid 1 holds capabilities: {pid1}")
    # 4. what it wrote to its own tmpfs (the cover over the data dir) never reached the host's data dir
    if (stack.data_dir / hostile["params"]["marker"]).exists():
        problems.append(f"GOT THROUGH: the model's file {hostile['params']['marker']} is in the host's data dir")
    # the attacks aimed at things that exist on the host
    on_host = hostile["on_host"]
    if not on_host["caches"]:
        problems.append(f"no package cache on the host at {hostile['params']['package_caches']} (the test aimed wrong)")
    if not on_host["own package exists"]:
        problems.append(f"the package's host path {on_host['own package']} was no folder on the host (aimed wrong)")
    assert (stack.data_dir / "admin-token").exists()  # outside, the data dir is still there

    print("\nproblems:\n" + "\n".join(problems) if problems else "\nno problem found")
    assert not problems, "the jail let through:\n" + "\n".join(problems)


def test_models_run_jailed_in_their_own_namespaces_and_status_says_so(stack, hostile):
    facts = hostile["report"]["facts"]
    assert facts["hostname"] == "model", facts["hostname"]
    assert facts["pid"] < 10, f"the model's pid {facts['pid']}: not in a PID namespace of its own"
    pids = sorted(int(p) for p in facts["processes"])
    assert pids[0] == 1 and len(pids) <= 3, facts["processes"]
    assert facts["processes"]["1"].split(" ", 1)[0].endswith("bwrap"), facts["processes"]
    ours = {ns: os.readlink(f"/proc/self/ns/{ns}") for ns in NAMESPACES}
    same = [ns for ns in NAMESPACES if facts["namespaces"][ns] == ours[ns]]
    assert not same, f"the jail shares these namespaces with the host: {same}"
    assert facts["cwd"] == "/run/modelhub/model", facts["cwd"]
    status = stack.status()
    assert status["models"]["jail"] == "jailed", status["models"]
    assert status["replica_nodes"] and all(n["sealed"] for n in status["replica_nodes"].values()), status


# ---------------------------------------------------------------- honest models

# An async predict; a file written to the temp dir and read back; a dataset's file read by path.
HONEST = """
import asyncio, os, tempfile

class Model:
    def __init__(self, model_dir):
        self.tmp = tempfile.gettempdir()

    async def predict(self, batch):
        await asyncio.sleep(0.01)
        labels = []
        for path in batch["path"]:
            with open(path) as fh:
                content = fh.read().strip()
            scratch = os.path.join(self.tmp, os.path.basename(path) + ".copy")
            with open(scratch, "w") as fh:
                fh.write(content)
            with open(scratch) as fh:
                back = fh.read()
            labels.append({"label": f"{content}|{back}|{self.tmp}", "confidence": 1.0})
        return {"label": labels}
"""

SCHEMA_PATH_TO_CLASS = {
    "inputs": {"type": "object", "properties": {"path": {"type": "local"}}},
    "outputs": {"type": "object", "properties": {"label": {"type": "classification"}}},
}


def test_an_honest_model_works_in_its_jail(stack, tmp_path):
    """An async predict, its temp dir (writable, its own), a dataset's file in a media root."""
    client, model, name, dataset = stack.client, unique("honest"), unique("honest-dep"), unique("ds")
    files = []
    for i in range(6):
        path = tmp_path / f"sample-{i}.txt"
        path.write_text(f"content {i}\n")
        path.chmod(0o644)
        files.append(path)
    create_model(client, model, make_zip(tmp_path / "h.zip", {"model.py": HONEST}), SCHEMA_PATH_TO_CLASS)
    deployed = deploy(client, model, name, mini_batch=4)
    assert deployed["status"] == "running", (deployed["error"], stack.logs())
    try:
        add_files(client, dataset, files)
        job = run_job(client, dataset, name, {"label": "copy"})
        assert job["status"] == "completed", (job, stack.logs())
        assert (job["total"], job["succeeded"], job["failed"]) == (6, 6, 0), job
        labels = {s["filepath"]: s["fields"]["copy"]["label"] for s in all_samples(client, dataset)}
        for i, path in enumerate(files):
            assert labels[str(path)] == f"content {i}|content {i}|/tmp", labels
        online = client.post(f"/deployments/{name}/predict", json={"inputs": {"path": [str(files[0])]}})
        assert online.status_code == 200, online.text
    finally:
        client.delete(f"/deployments/{name}")
    assert not list(tmp_path.glob("*.copy")), "the model's temp files reached the host's folder"


# ---------------------------------------------------------------- outputs, and the hub's own processes

# An output object that runs a command when it is unpickled: it reports the environment of
# whichever process deserialises it. The model cannot write `out` itself (a read-only media root);
# a hub process that unpickled its output would run the command there, and write it.
PICKLED_OUTPUT = """
import os

class Evil:
    def __reduce__(self):
        return (os.system, ("env > {out}",))

class Model:
    def __init__(self, model_dir):
        pass

    def predict(self, batch):
        return {{"label": [Evil() for _ in batch["text"]]}}
"""


def test_a_model_output_is_never_unpickled_in_a_service(stack, tmp_path):
    """The model's process answers JSON only, and the worker calls replicas over HTTP with JSON:
    an output that would run a command when unpickled is refused as not JSON, and runs nowhere."""
    client, model, name = stack.client, unique("pickled"), unique("pickled-dep")
    out = tmp_path / f"mh-pickled-{unique('out')}"
    create_model(
        client, model, make_zip(tmp_path / "p.zip", {"model.py": PICKLED_OUTPUT.format(out=out)}), SCHEMA_TEXT_TO_CLASS
    )
    assert deploy(client, model, name)["status"] == "running"
    try:
        answer = client.post(f"/deployments/{name}/predict", json={"inputs": {"text": ["x"]}})
        ran_in = out.read_text() if out.exists() else ""
        assert "MODELHUB_" not in ran_in, "a model's output ran a command in a hub service"
        assert not out.exists(), f"the output was unpickled somewhere: {ran_in[:300]}"
        assert answer.status_code == 502 and "JSON" in answer.json()["detail"], answer.text
    finally:
        client.delete(f"/deployments/{name}")
        out.unlink(missing_ok=True)


def test_no_process_that_holds_the_hubs_credentials_loads_ray(stack):
    """The services and the supervisor hold NATS/MongoDB credentials: none of them may be a Ray
    driver, so none has Ray's core library mapped (what `import ray` loads)."""
    state = json.loads((stack.data_dir / "state.json").read_text())
    pids = {name: s["pid"] for name, s in state["services"].items() if s.get("pid")}
    pids["supervisor"] = int((stack.data_dir / "supervisor.pid").read_text().split()[0])
    assert {"gateway", "registry", "deployer", "scheduler", "inference-worker"} <= set(pids), state
    for name, pid in pids.items():
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "_raylet" not in maps and "/ray/" not in maps, f"{name} (pid {pid}) has loaded ray"
        env = Path(f"/proc/{pid}/environ").read_bytes()
        assert name == "supervisor" or b"MODELHUB_MONGO_URL=" in env  # it does hold credentials
