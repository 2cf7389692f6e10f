"""Several gateways behind one port (modelhub.gateways, modelhub_gateway.api.listen): one listening
socket bound by the supervisor and inherited by each gateway process; nobody else can bind the port;
a killed gateway's share of new connections goes to the others."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from modelhub import gateways
from modelhub.stack.services import SERVICES, services_table
from modelhub.supervisor import StackError
from modelhub.supervisor.child import ChildSpec
from modelhub_gateway.api.listen import inherited_socket
from modelhub_gateway.settings import GatewaySettings

pytestmark = pytest.mark.timeout(60)

# A stand-in gateway: accepts on the inherited descriptor, answers each connection with its name.
ACCEPTOR = textwrap.dedent("""
    import os, sys
    from modelhub_gateway.api.listen import inherited_socket
    sock = inherited_socket(int(os.environ["MODELHUB_GATEWAY_FD"]))
    print("ready", flush=True)
    while True:
        conn, _ = sock.accept()
        conn.sendall(os.environ["MODELHUB_GATEWAY_INSTANCE"].encode())
        conn.close()
""")


def ask(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        return conn.recv(64).decode()


def test_gateways_table_names_and_the_first_keeps_its_name():
    assert gateways.names(3) == ["gateway", "gateway-2", "gateway-3"]
    table = services_table(workers=2, gateway_count=3)
    assert [n for n, _ in table] == [
        "registry",
        "deployer",
        "scheduler",
        "inference-worker",
        "inference-worker-2",
        "gateway",
        "gateway-2",
        "gateway-3",
    ]
    assert len({tuple(argv) for n, argv in table if gateways.is_gateway(n)}) == 1
    assert services_table(1, 1) == SERVICES
    assert not gateways.is_gateway("gateway-x") and not gateways.is_gateway("registry")


def test_only_gateways_inherit_the_socket_each_with_its_own_name():
    sock = gateways.listen(0)
    try:
        specs = [ChildSpec(n, ["x"], {"A": "1"}) for n in ("registry", "gateway", "gateway-2")]
        gateways.share(specs, sock)
        registry, first, second = specs
        assert registry.pass_fds == () and "MODELHUB_GATEWAY_FD" not in registry.env
        for spec in (first, second):
            assert spec.pass_fds == (sock.fileno(),)
            assert spec.env["MODELHUB_GATEWAY_FD"] == str(sock.fileno()) and spec.env["A"] == "1"
        assert (first.env["MODELHUB_GATEWAY_INSTANCE"], second.env["MODELHUB_GATEWAY_INSTANCE"]) == (
            "gateway",
            "gateway-2",
        )
        # the settings the gateway reads are those names
        # pydantic-settings' __init__ takes _env_file; the signature pyright builds from the fields does not
        settings = GatewaySettings(_env_file=None, **{"gateway_fd": 3, "gateway_instance": "gateway-2"})  # pyright: ignore[reportCallIssue]
        assert (settings.gateway_fd, settings.gateway_instance) == (3, "gateway-2")
    finally:
        sock.close()


def test_a_taken_port_is_refused_with_a_message():
    sock = gateways.listen(0)
    try:
        with pytest.raises(StackError, match="already in use"):
            gateways.listen(sock.getsockname()[1])
    finally:
        sock.close()


def test_nobody_else_can_join_the_port_not_even_with_so_reuseport():
    sock = gateways.listen(0)
    try:
        with socket.socket() as intruder:
            intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            with pytest.raises(OSError):
                intruder.bind(("127.0.0.1", sock.getsockname()[1]))
    finally:
        sock.close()


def test_an_inherited_descriptor_must_be_a_listening_tcp_socket(tmp_path):
    with open(tmp_path / "f", "w") as f, pytest.raises(OSError):
        inherited_socket(os.dup(f.fileno()))  # not a socket at all
    with socket.socket() as unbound, pytest.raises(ValueError, match="not a listening TCP socket"):
        inherited_socket(unbound.fileno())
    with socket.socket(socket.AF_UNIX) as unix, pytest.raises(ValueError):
        inherited_socket(unix.fileno())


def test_two_processes_share_the_port_and_one_killed_loses_no_new_connection():
    sock = gateways.listen(0)
    port = sock.getsockname()[1]
    specs = [ChildSpec(n, [sys.executable, "-c", ACCEPTOR], dict(os.environ)) for n in gateways.names(2)]
    gateways.share(specs, sock)
    procs = [
        subprocess.Popen(s.argv, env=s.env, pass_fds=s.pass_fds, close_fds=True, stdout=subprocess.PIPE, text=True)
        for s in specs
    ]
    try:
        assert [p.stdout.readline().strip() for p in procs] == ["ready", "ready"]
        seen = {ask(port) for _ in range(200)}
        assert seen == {"gateway", "gateway-2"}  # the kernel hands connections to both
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait(5)
        time.sleep(0.1)
        assert {ask(port) for _ in range(50)} == {"gateway"}  # every connection answered, by the survivor
    finally:
        for p in procs:
            p.kill()
            p.wait(5)
        sock.close()
