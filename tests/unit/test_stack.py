"""Unit tests for the modelhub.stack package: ports, admin token, supervision with stand-in `sleep` children."""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelhub.commands import stack as stack_commands
from modelhub.stack import build as stack_build
from modelhub.stack import mongousers, natsconf
from modelhub.stack import ports as stack_ports
from modelhub.stack.build import build_plan
from modelhub.stack.health import ready_message
from modelhub.stack.ports import RAY_PORT_NAMES, RAY_WORKER_PORTS, allocate_ports, port_free
from modelhub.stack.rayenv import SERVE_TUNING, ray_temp_dir
from modelhub.stack.secretfiles import admin_token
from modelhub.stack.services import SERVICES, services_table
from modelhub.stack.status import stack_info
from modelhub.stack.stop import stop as stop_stack
from modelhub.supervisor import StackError
from modelhub.supervisor.procs import pid_alive

pytestmark = pytest.mark.timeout(60)

SLEEP = "/bin/sleep" if os.path.exists("/bin/sleep") else "sleep"


def poll(predicate, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def external_env(monkeypatch):
    """No embedded servers: the services table alone is supervised."""
    monkeypatch.setenv("MODELHUB_NATS_URL", "nats://127.0.0.1:1")
    monkeypatch.setenv("MODELHUB_MONGO_URL", "mongodb://127.0.0.1:1")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    monkeypatch.delenv("MODELHUB_ADMIN_TOKEN", raising=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_supervisor(data_dir: Path, names=("registry", "gateway")) -> subprocess.Popen:
    table = [(n, [SLEEP, "300"]) for n in names]
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from modelhub.stack.lifecycle import run_supervisor
        sys.exit(run_supervisor(Path({str(data_dir)!r}), {free_port()},
                                services={table!r}, announce=False))
    """)
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ)
    )


def state(data_dir: Path) -> dict:
    try:
        return json.loads((data_dir / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def running_services(data_dir: Path, names) -> dict | None:
    svcs = state(data_dir).get("services", {})
    if all(svcs.get(n, {}).get("state") == "running" and pid_alive(svcs[n].get("pid")) for n in names):
        return {n: svcs[n]["pid"] for n in names}
    return None


@pytest.fixture
def supervisor(tmp_path, external_env):
    procs = []

    def make(names=("registry", "gateway")):
        p = start_supervisor(tmp_path, names)
        procs.append(p)
        pids = poll(lambda: running_services(tmp_path, names), timeout=15)
        return p, pids

    yield make
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    stop_stack(tmp_path, quiet=True, wait=5)


# ---------------------------------------------------------------------------- ports, token


def test_ports_recorded_and_reused(tmp_path, monkeypatch):
    for var in ("MODELHUB_NATS_URL", "MODELHUB_MONGO_URL", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    # which ports are busy is this test's to decide: on a shared machine another process may take
    # one of the 200 worker ports between two calls (CI saw it), and then moving them is right
    busy: set[int] = set()
    monkeypatch.setattr(stack_ports, "port_free", lambda port: 0 < port < 65536 and port not in busy)
    ports = allocate_ports(tmp_path, nats=True, mongo=True, ray=True)
    ray = ports["ray"]
    flat = [ports["nats"], ports["mongo"]] + [ray[n] for n in RAY_PORT_NAMES]
    assert len(set(flat)) == len(flat)
    assert ray["max_worker"] - ray["min_worker"] + 1 == RAY_WORKER_PORTS
    assert not set(flat) & set(range(ray["min_worker"], ray["max_worker"] + 1))
    (tmp_path / "stack.json").write_text(json.dumps({"ports": ports}))
    assert allocate_ports(tmp_path, nats=True, mongo=True, ray=True) == ports

    # a recorded port that is now taken is replaced, the others are kept
    busy.add(ports["nats"])
    again = allocate_ports(tmp_path, nats=True, mongo=True, ray=True)
    assert again["nats"] != ports["nats"]
    assert again["mongo"] == ports["mongo"] and again["ray"] == ports["ray"]

    # one taken port inside the recorded worker range moves the whole range, nothing else
    busy.add(ray["min_worker"] + 7)
    moved = allocate_ports(tmp_path, nats=True, mongo=True, ray=True)
    assert moved["ray"]["min_worker"] != ray["min_worker"]
    assert not busy & set(range(moved["ray"]["min_worker"], moved["ray"]["max_worker"] + 1))
    assert {n: moved["ray"][n] for n in RAY_PORT_NAMES} == {n: ray[n] for n in RAY_PORT_NAMES}


def test_port_free_sees_a_bound_socket():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert not port_free(s.getsockname()[1])
    assert not port_free(0) and not port_free(70000)


def test_plan_env_and_no_servers_when_external(tmp_path, external_env):
    plan = build_plan(tmp_path, 8123, services=[("gateway", ["x"])])
    assert plan.servers == []
    env = plan.services[0].env
    assert env["MODELHUB_NATS_URL"] == "nats://127.0.0.1:1"
    assert env["RAY_ADDRESS"] == "127.0.0.1:1"
    assert env["MODELHUB_GATEWAY_PORT"] == "8123"
    assert env["MODELHUB_DATA_DIR"] == str(tmp_path)
    assert env["MODELHUB_ADMIN_TOKEN"] == (tmp_path / "admin-token").read_text().strip()


def test_plan_embedded_servers_bind_loopback(tmp_path, monkeypatch):
    for var in ("MODELHUB_NATS_URL", "MODELHUB_MONGO_URL", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(mongousers, "find_mongod", lambda: "/x/mongod")
    monkeypatch.setattr(natsconf, "find_nats_server", lambda: "/x/nats-server")
    monkeypatch.setattr(stack_build, "find_ray", lambda: "/x/ray")
    plan = build_plan(tmp_path, 8123, services=[("gateway", ["x"])], probe=lambda: None)
    names = [s.name for s in plan.servers]
    assert names == ["nats", "mongo", "ray", "replica-node-0"]
    nats, mongo, ray, _ = plan.servers
    assert nats.argv[nats.argv.index("-a") + 1] == "127.0.0.1"
    assert mongo.argv[mongo.argv.index("--bind_ip") + 1] == "127.0.0.1"
    assert "--block" in ray.argv and ray.argv[ray.argv.index("--node-ip-address") + 1] == "127.0.0.1"
    assert len(ray_temp_dir(tmp_path)) < 30
    env = plan.services[0].env
    assert env["RAY_ADDRESS"] == f"127.0.0.1:{plan.stack['ports']['ray']['gcs']}"
    # the services get credentials; what is shown (state.json, status) has none
    assert env["MODELHUB_NATS_URL"].startswith("nats://modelhub:")
    assert env["MODELHUB_NATS_URL"].endswith(nats.info["url"].split("//")[1])
    assert "@" not in nats.info["url"] and "@" not in mongo.info["url"]
    assert "--auth" in mongo.argv and "-c" in nats.argv


def test_admin_token_created_0600_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("MODELHUB_ADMIN_TOKEN", raising=False)
    token, path = admin_token(tmp_path)
    assert path == tmp_path / "admin-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 32
    assert admin_token(tmp_path) == (token, path)
    monkeypatch.setenv("MODELHUB_ADMIN_TOKEN", "from-env")
    assert admin_token(tmp_path) == ("from-env", None)


def test_stack_info_defaults(tmp_path):
    info = stack_info(tmp_path)
    assert info["gateway_url"] == "http://127.0.0.1:8000"
    assert info["running"] is False


# ---------------------------------------------------------------------------- supervision


def test_restart_killed_child_and_status(tmp_path, supervisor):
    proc, pids = supervisor()
    os.kill(pids["registry"], signal.SIGKILL)
    new = poll(
        lambda: (
            (running_services(tmp_path, ["registry"]) or {}).get("registry") not in (None, pids["registry"])
            and running_services(tmp_path, ["registry"])
        ),
        timeout=5,
    )
    assert new["registry"] != pids["registry"]
    assert state(tmp_path)["services"]["registry"]["restarts"] == 1
    assert running_services(tmp_path, ["gateway"])["gateway"] == pids["gateway"]

    info = stack_info(tmp_path)
    assert info["running"] is True
    result = CliRunner().invoke(stack_commands.status, ["--data-dir", str(tmp_path), "--json"])
    st = json.loads(result.output)
    port = st["services"]["registry"]["http_port"]
    assert st["services"]["registry"] == {
        "pid": new["registry"],
        "state": "running",
        "restarts": 1,
        "http_port": port,
        "metrics_url": f"http://127.0.0.1:{port}/metrics",
        "live_url": f"http://127.0.0.1:{port}/health/live",
        "ready_url": f"http://127.0.0.1:{port}/health/ready",
    }
    assert st["services"]["gateway"]["metrics_url"].endswith("/metrics")  # on its API port
    assert "http_port" not in st["services"]["gateway"]
    assert st["nats"]["state"] == "external"
    # services of the real table that this stand-in table lacks count as stopped
    assert st["services"]["deployer"]["state"] == "stopped"
    assert result.exit_code == 3


def test_second_supervisor_refused(tmp_path, supervisor):
    supervisor()
    second = start_supervisor(tmp_path)
    out, _ = second.communicate(timeout=20)
    assert second.returncode == 1
    assert b"already running" in out
    result = CliRunner().invoke(
        stack_commands.up, ["--data-dir", str(tmp_path), "--detach", "--port", str(free_port())]
    )
    assert result.exit_code == 1 and "already running" in result.output


def test_down_stops_everything_and_is_idempotent(tmp_path, supervisor):
    proc, pids = supervisor()
    runner = CliRunner()
    result = runner.invoke(stack_commands.down, ["--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "stopped" in result.output
    assert proc.wait(timeout=5) == 0
    for pid in pids.values():
        assert not pid_alive(pid)
    assert not (tmp_path / "supervisor.pid").exists()
    st = state(tmp_path)
    assert all(s["state"] == "stopped" for s in st["services"].values())
    result = runner.invoke(stack_commands.down, ["--data-dir", str(tmp_path)])
    assert result.exit_code == 0 and "nothing running" in result.output
    result = runner.invoke(stack_commands.status, ["--data-dir", str(tmp_path), "--json"])
    assert result.exit_code == 3
    assert json.loads(result.output)["services"]["registry"]["state"] == "stopped"


def test_down_fallback_kills_orphans_of_a_dead_supervisor(tmp_path, supervisor):
    proc, pids = supervisor()
    proc.kill()  # supervisor dies hard, its children survive
    proc.wait(timeout=5)
    assert all(pid_alive(p) for p in pids.values())
    result = CliRunner().invoke(stack_commands.down, ["--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    poll(lambda: not any(pid_alive(p) for p in pids.values()), timeout=5)


def test_down_leaves_a_recycled_pid_alone(tmp_path, external_env):
    # state.json names a live pid whose cmdline is not what we started
    other = subprocess.Popen([SLEEP, "30"])
    try:
        (tmp_path / "state.json").write_text(
            json.dumps(
                {
                    "services": {
                        "gateway": {
                            "pid": other.pid,
                            "state": "running",
                            "argv": [sys.executable, "-m", "modelhub_gateway"],
                        }
                    }
                }
            )
        )
        result = CliRunner().invoke(stack_commands.down, ["--data-dir", str(tmp_path)])
        assert result.exit_code == 0
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def _embedded_plan(tmp_path, monkeypatch, **kwargs):
    for var in ("MODELHUB_NATS_URL", "MODELHUB_MONGO_URL", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MODELHUB_SOMETHING", "secret-ish")
    monkeypatch.setenv("PIP_INDEX_URL", "https://pip.example/simple")  # custom envs need it
    monkeypatch.setenv("PYTHONPATH", "/somewhere/of/the/hub")
    monkeypatch.setattr(mongousers, "find_mongod", lambda: "/x/mongod")
    monkeypatch.setattr(natsconf, "find_nats_server", lambda: "/x/nats-server")
    monkeypatch.setattr(stack_build, "find_ray", lambda: "/x/ray")
    return build_plan(tmp_path, 8123, services=[("gateway", ["x"])], **kwargs)


def test_replica_nodes_are_sealed_join_the_head_and_carry_no_hub_secrets(tmp_path, monkeypatch):
    plan = _embedded_plan(tmp_path, monkeypatch, replica_nodes=2, probe=lambda: None)
    head = next(s for s in plan.servers if s.name == "ray")
    nodes = [s for s in plan.servers if s.kind == "replica-node"]
    assert [n.name for n in nodes] == ["replica-node-0", "replica-node-1"]
    assert "--resources" not in head.argv  # the head never offers the replica resource
    # the head is sealed too (a replica can start Ray tasks there), but keeps its own temp dir
    assert head.argv[:2] == ["unshare", "--mount"] and head.info["sealed"] is True
    assert [head.argv[i + 1] for i, a in enumerate(head.argv) if a == "--hide"] == [str(tmp_path)]
    assert not [k for k in head.env if k.startswith("MODELHUB_")] and "RAY_AUTH_TOKEN_PATH" not in head.env
    gcs = plan.stack["ray_address"]
    for node in nodes:
        argv = node.argv
        assert argv[:2] == ["unshare", "--mount"] and "--pid" in argv and "--mount-proc" in argv
        hidden = [argv[i + 1] for i, a in enumerate(argv) if a == "--hide"]
        assert hidden == [str(tmp_path), ray_temp_dir(tmp_path)]
        ray_argv = argv[argv.index("--") + 1 :]
        assert ray_argv[ray_argv.index("--address") + 1] == gcs
        assert json.loads(ray_argv[ray_argv.index("--resources") + 1]) == {"modelhub_replica": 1}
        assert not [k for k in node.env if k.startswith("MODELHUB_")]
        assert "RAY_AUTH_TOKEN_PATH" not in node.env and node.env["RAY_AUTH_TOKEN"]
        assert str(tmp_path) not in json.dumps(node.env)  # nothing that points into the data dir
        assert node.env["PIP_INDEX_URL"] == "https://pip.example/simple" and "PYTHONPATH" not in node.env
        assert node.restart_with == "ray" and node.info["sealed"] is True
    temp_dirs = [n.argv[n.argv.index("--temp-dir") + 1] for n in nodes]
    assert len(set(temp_dirs)) == 2 and ray_temp_dir(tmp_path) not in temp_dirs
    assert plan.stack["sealed"] is True and plan.stack["replica_nodes"] == 2


def test_a_kernel_that_refuses_namespaces_is_said_loudly(tmp_path, monkeypatch):
    plan = _embedded_plan(tmp_path, monkeypatch, probe=lambda: "unshare: Operation not permitted")
    (node,) = [s for s in plan.servers if s.kind == "replica-node"]
    assert node.argv[0] != "unshare" and node.info == {
        "sealed": False,
        "seal_error": "unshare: Operation not permitted",
        "resources": {"modelhub_replica": 1},
    }
    message = ready_message(plan.stack, None)
    assert "WARNING: the Ray head and replica nodes run UNSEALED" in message and "Operation not permitted" in message
    head = next(s for s in plan.servers if s.name == "ray")
    assert head.argv[0] != "unshare" and head.info["sealed"] is False


def test_no_replica_nodes_means_no_node(tmp_path, monkeypatch):
    plan = _embedded_plan(tmp_path, monkeypatch, replica_nodes=0, probe=lambda: None)
    assert [s.name for s in plan.servers] == ["nats", "mongo", "ray"]
    assert "replicas wait for a Ray node with the modelhub_replica resource" in ready_message(plan.stack, None)


def test_the_sandbox_probe_passes_on_this_machine():
    # the integration tests' replica nodes rely on it; a kernel without namespaces fails here first
    from modelhub import sandbox

    assert sandbox.probe() is None


def test_a_server_restarts_with_the_one_it_depends_on(tmp_path):
    from modelhub.supervisor.child import ChildSpec
    from modelhub.supervisor.loop import Supervisor

    head = ChildSpec("head", [SLEEP, "300"], dict(os.environ), kind="ray")
    node = ChildSpec("node", [SLEEP, "301"], dict(os.environ), kind="replica-node", restart_with="head")
    sup = Supervisor(tmp_path, [head, node], [], {}, echo=lambda m: None)
    sup.acquire()
    try:
        sup.start_all()
        head_child, node_child = sup.servers
        old_node = node_child.pid
        assert head_child.pid is not None
        os.kill(head_child.pid, signal.SIGKILL)

        def both_back():
            sup._check_children()
            return (
                head_child.state == node_child.state == "running"
                and node_child.pid != old_node
                and pid_alive(node_child.pid)
            )

        poll(both_back, timeout=20)
        assert not pid_alive(old_node)
        assert sup.state()["replica_nodes"]["node"]["restarts"] == 1
    finally:
        sup.stop_all()
        sup.release()


def test_bus_and_database_credentials_are_0600_and_reach_only_the_services(tmp_path, monkeypatch):
    plan = _embedded_plan(tmp_path, monkeypatch, probe=lambda: None)
    nats_pw = (tmp_path / "nats-password").read_text().strip()
    mongo_pw = (tmp_path / "mongo-password").read_text().strip()
    assert len(nats_pw) >= 32 and len(mongo_pw) >= 32 and nats_pw != mongo_pw
    for name in ("nats-password", "mongo-password", "nats.conf", "credentials.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    conf = (tmp_path / "nats.conf").read_text()
    assert f'password: "{nats_pw}"' in conf and 'user: "modelhub"' in conf
    creds = json.loads((tmp_path / "credentials.json").read_text())
    env = plan.services[0].env
    assert env["MODELHUB_NATS_URL"] == creds["nats_url"] and nats_pw in creds["nats_url"]
    assert env["MODELHUB_MONGO_URL"] == creds["mongo_url"] and mongo_pw in creds["mongo_url"]
    shown = json.dumps(plan.stack) + json.dumps([s.argv for s in plan.servers])
    assert nats_pw not in shown and mongo_pw not in shown
    node = next(s for s in plan.servers if s.kind == "replica-node")
    assert nats_pw not in json.dumps(node.env) and mongo_pw not in json.dumps(node.env)
    again = _embedded_plan(tmp_path, monkeypatch, probe=lambda: None)  # the next `up` reuses them
    assert again.services[0].env["MODELHUB_MONGO_URL"] == creds["mongo_url"].replace(
        str(plan.stack["ports"]["mongo"]), str(again.stack["ports"]["mongo"])
    )


def test_the_sandbox_drops_every_modelhub_variable():
    from modelhub import sandbox

    assert sandbox.clean_env(
        {"MODELHUB_SUPERVISOR_DIR": "/d", "MODELHUB_X": "1", "RAY_AUTH_TOKEN": "t", "PATH": "/bin"}
    ) == {"RAY_AUTH_TOKEN": "t", "PATH": "/bin"}


def test_workers_option_starts_that_many_inference_workers():
    names = [name for name, _ in services_table(3)]
    assert names == [
        "registry",
        "deployer",
        "scheduler",
        "inference-worker",
        "inference-worker-2",
        "inference-worker-3",
        "gateway",
    ]
    worker_argv = {tuple(argv) for name, argv in services_table(3) if name.startswith("inference-worker")}
    assert len(worker_argv) == 1  # the same program, sharing one task consumer
    assert services_table(1) == SERVICES


def test_ray_nodes_get_serve_data_plane_settings_unless_the_user_set_them(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_SERVE_USE_GRPC_BY_DEFAULT", "0")  # a user's own choice wins
    plan = _embedded_plan(tmp_path, monkeypatch, replica_nodes=1, probe=lambda: None)
    ray_servers = [s for s in plan.servers if s.kind in ("ray", "replica-node")]
    assert len(ray_servers) == 2
    for server in ray_servers:
        assert server.env["RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD"] == "0"
        assert server.env["RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP"] == "0"
        assert server.env["RAY_SERVE_USE_GRPC_BY_DEFAULT"] == "0"
        assert set(SERVE_TUNING) <= set(server.env)


def test_up_refuses_to_run_models_where_bubblewrap_cannot_jail_them(tmp_path, monkeypatch):
    why = "bubblewrap is not installed (apt-get install bubblewrap)"
    with pytest.raises(StackError, match="cannot jail models.*apt-get install bubblewrap.*--allow-unsealed"):
        _embedded_plan(tmp_path, monkeypatch, probe=lambda: None, jail_probe=lambda: why)


def test_with_allow_unsealed_the_stack_says_unsealed_everywhere(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELHUB_ALLOW_UNSEALED", "true")
    why = "bwrap refused: no user namespaces"
    plan = _embedded_plan(tmp_path, monkeypatch, probe=lambda: None, jail_probe=lambda: why)
    assert (plan.stack["models"], plan.stack["jail_error"]) == ("UNSEALED", why)
    gateway = next(s for s in plan.services if s.name == "gateway")
    assert gateway.env["MODELHUB_MODELS_UNSEALED"] == why and gateway.env["MODELHUB_ALLOW_UNSEALED"] == "true"
    assert "UNSEALED" in ready_message(plan.stack, None)


def test_where_bubblewrap_jails_models_the_stack_says_jailed(tmp_path, monkeypatch):
    plan = _embedded_plan(tmp_path, monkeypatch, probe=lambda: None, jail_probe=lambda: None)
    assert plan.stack["models"] == "jailed" and plan.stack["jail_error"] is None
    gateway = next(s for s in plan.services if s.name == "gateway")
    assert gateway.env["MODELHUB_ALLOW_UNSEALED"] == "false" and gateway.env["MODELHUB_MODELS_UNSEALED"] == ""
