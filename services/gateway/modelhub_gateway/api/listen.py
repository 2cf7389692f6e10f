"""Where the gateway listens: its own socket on `gateway_host:gateway_port`, or a listening
socket it inherited (`gateway_fd`).

Several gateways serve one port (`modelhub up --gateways N`) by sharing one listening socket: the
supervisor binds it once and hands the same descriptor to each gateway process, and the kernel
gives each new connection to one of the processes waiting in accept(). This is how uvicorn's and
gunicorn's workers share a port, but with each gateway a supervised process of its own (restarted
alone, shown alone in `modelhub status`). SO_REUSEPORT would also do it without a parent, but any
process of the same user could then bind the same port and take a share of the connections (and
of their tokens); a model's replica runs as that user. With one inherited socket nobody else can
bind the port while the supervisor holds it.
"""

import socket

import uvicorn
from fastapi import FastAPI

from modelhub_gateway.settings import GatewaySettings


def inherited_socket(fd: int) -> socket.socket:
    """The listening TCP socket behind descriptor `fd`; refuses anything else (a wrong number in
    the environment must not make the gateway serve on some other file)."""
    sock = socket.socket(fileno=fd)  # family and type are read from the descriptor
    if (
        sock.type != socket.SOCK_STREAM
        or sock.family not in (socket.AF_INET, socket.AF_INET6)
        or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    ):
        sock.detach()
        raise ValueError(f"descriptor {fd} is not a listening TCP socket")
    return sock


def serve(app: FastAPI, settings: GatewaySettings) -> None:
    """Serve `app` until stopped, on the inherited socket when there is one."""
    config = uvicorn.Config(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level="info",
        proxy_headers=False,
        log_config=None,
    )  # its loggers write JSON lines too
    server = uvicorn.Server(config)
    if settings.gateway_fd is None:
        server.run()
    else:
        server.run(sockets=[inherited_socket(settings.gateway_fd)])
