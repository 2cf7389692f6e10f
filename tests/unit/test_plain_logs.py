"""Every file under DIR/logs is plain text: Ray nodes are started without colour codes, and the
supervisor's rotation strips any escape sequence a child wrote anyway."""

import subprocess
import sys

import pytest

from modelhub import logfiles
from modelhub.plan import RAY_PLAIN_LOGS, RayHead, ReplicaNode

# what a replica node's `ray start` wrote before it was asked for plain logs
RAY_START_LINES = (
    b"2026-12-06 18:12:46,841\tINFO scripts.py:1234 -- \x1b[37mLocal node IP\x1b[39m: \x1b[1m127.0.0.1\x1b[22m\n"
    b"2026-12-06 18:12:55,222\tSUCC scripts.py:1251 -- \x1b[32mRay runtime started.\x1b[39m\n"
    b"2026-12-06 18:12:55,223\tINFO scripts.py:1265 -- \x1b[36m\x1b[1m--block\x1b[22m\x1b[39m\n"
    b"saved to: \x1b[1m/tmp/mh-ray-30263faer0/logs/ray_process_exit.log\x1b[22m\x1b[26m\n"
)
PLAIN_LINES = (
    b"2026-12-06 18:12:46,841\tINFO scripts.py:1234 -- Local node IP: 127.0.0.1\n"
    b"2026-12-06 18:12:55,222\tSUCC scripts.py:1251 -- Ray runtime started.\n"
    b"2026-12-06 18:12:55,223\tINFO scripts.py:1265 -- --block\n"
    b"saved to: /tmp/mh-ray-30263faer0/logs/ray_process_exit.log\n"
)


def test_escape_sequences_are_stripped_and_the_text_kept():
    assert logfiles.strip_ansi(RAY_START_LINES) == PLAIN_LINES
    # a window title (OSC) and a cursor move; brackets and backslashes that are text stay
    assert logfiles.strip_ansi(b"\x1b]0;title\x07a\x1b[2Kb [x] c:\\d\n") == b"ab [x] c:\\d\n"


def test_a_rotated_log_is_plain_text(tmp_path):
    log = tmp_path / "replica-node-0.log"
    log.write_bytes(RAY_START_LINES * 20)
    assert logfiles.rotate_all(tmp_path, max_bytes=50, keep=2) == [log]
    assert (tmp_path / "replica-node-0.log.1").read_bytes() == PLAIN_LINES * 20
    assert log.read_bytes() == b""


def _ray_argv(tmp_path):
    ports = {
        name: 20000 + i
        for i, name in enumerate(
            ["gcs", "node_manager", "object_manager", "min_worker", "max_worker", "dashboard", "client_server"]
            + ["dashboard_agent_listen", "dashboard_agent_grpc", "metrics_export", "runtime_env_agent"]
        )
    }
    head = RayHead("/x/ray", ports, "/tmp/mh-ray-test", tmp_path, seal_error="unsealed in this test")
    return head.argv(), ReplicaNode(0, ports, head).argv()


def test_ray_nodes_are_started_without_colour(tmp_path):
    for argv in _ray_argv(tmp_path):
        at = argv.index("--log-color")
        assert argv[at : at + 2] == list(RAY_PLAIN_LOGS) == ["--log-color", "false"]


def test_rays_log_color_false_turns_its_colours_off():
    pytest.importorskip("ray")
    code = (
        "from ray.scripts.scripts import start\n"
        "from ray.autoscaler._private.cli_logger import cf, cli_logger\n"
        "option = next(p for p in start.params if '--log-color' in p.opts)\n"
        "assert 'false' in option.type.choices, option.type.choices\n"
        "assert str(cf.bold('x')) != 'x'  # Ray forces colours on, tty or not\n"
        "cli_logger.configure(color_mode='false')\n"
        "print(repr(str(cf.bold('x'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "'x'"
