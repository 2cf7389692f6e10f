"""The sealed replica node: run a command (`ray start ...`) where the hub cannot be seen.

`modelhub up` starts each replica node as

    unshare --mount --pid --fork --mount-proc --kill-child [--user --map-root-user] \\
        python -m modelhub.sandbox --hide DIR --hide RAY_HEAD_TMP -- ray start --address ...

so this module runs as PID 1 of a fresh PID namespace, with a private mount namespace and a /proc
that shows only that namespace's processes (the hub's processes, their environments and command
lines are not there). Before handing over to the command it mounts an empty tmpfs over every
`--hide` path (the data dir with its logs, admin-token, credentials and databases; the Ray head's
temp dir with the services' driver logs), checks that they are empty, and starts the command with
a clean environment: no MODELHUB_* variable (not even the supervisor's marker) reaches a replica.

`probe()` tells whether the kernel allows this at all; when it does not, `modelhub up` starts the
replica nodes unsealed and says so in its output and in `modelhub status` (never silently).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys

MS_NOSUID, MS_NODEV = 2, 4


def unshare_argv() -> list[str]:
    """The unshare prefix: mount + PID namespaces; a user namespace too when we are not root."""
    argv = ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child"]
    if os.geteuid() != 0:
        argv[1:1] = ["--user", "--map-root-user"]
    return argv


def probe() -> str | None:
    """None when a sealed node can start here, else why not (the kernel's or unshare's words)."""
    try:
        out = subprocess.run(
            [*unshare_argv(), sys.executable, "-m", "modelhub.sandbox", "--probe"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run unshare: {exc}"
    if out.returncode != 0:
        return (out.stderr or out.stdout).strip() or f"unshare exited with code {out.returncode}"
    return None


def jail_probe() -> str | None:
    """None when bubblewrap can jail a model process here (what each replica does before it starts
    its model: modelhub_replica.jail), else why not. The same namespaces and uid as a model's jail."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap is not installed (apt-get install bubblewrap)"
    argv = [bwrap, "--unshare-all", "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL", "--die-with-parent"]
    argv += ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--", "/bin/true"]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run bwrap: {exc}"
    if out.returncode != 0:
        return f"bwrap refused: {(out.stderr or out.stdout).strip() or f'exit code {out.returncode}'}"
    return None


def hide(path: str) -> None:
    """Mount an empty tmpfs over `path` (in this mount namespace only) and check that it is empty."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"mode=0755,size=1m") != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot mount a tmpfs over {path}: {os.strerror(err)}")
    if os.listdir(path):
        raise OSError(f"{path} is not empty after mounting a tmpfs over it")


def clean_env(env: dict[str, str]) -> dict[str, str]:
    """`up` already gives a sealed node a clean environment (stack.ray_node_env); this drops what
    was added on the way, the supervisor's MODELHUB_SUPERVISOR_DIR marker included."""
    return {k: v for k, v in env.items() if not k.startswith("MODELHUB_")}


def _check_namespace() -> None:
    if os.getpid() != 1:
        raise OSError("not PID 1 of a new PID namespace (start through unshare --pid --fork)")
    others = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != 1]
    if others:
        raise OSError(f"/proc shows processes outside this PID namespace: {others[:5]}")


def main(argv: list[str]) -> int:
    if argv == ["--probe"]:
        try:
            _check_namespace()
            hide("/mnt") if os.path.isdir("/mnt") else None
        except OSError as exc:
            print(f"sandbox probe failed: {exc}", file=sys.stderr)
            return 1
        return 0
    hidden: list[str] = []
    while argv and argv[0] == "--hide":
        hidden.append(argv[1])
        argv = argv[2:]
    if not argv or argv[0] != "--" or len(argv) < 2:
        print("usage: python -m modelhub.sandbox [--hide PATH]... -- COMMAND...", file=sys.stderr)
        return 2
    command = argv[1:]
    try:
        _check_namespace()
        for path in hidden:
            if os.path.isdir(path):
                hide(path)
    except OSError as exc:
        print(f"refusing to start unsealed: {exc}", file=sys.stderr)
        return 1
    print(
        f"sealed: pid namespace, fresh /proc, tmpfs over {', '.join(hidden) or 'nothing'}; starting {command[0]}",
        file=sys.stderr,
        flush=True,
    )
    os.execvpe(command[0], command, clean_env(dict(os.environ)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
