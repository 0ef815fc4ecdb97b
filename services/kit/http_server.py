"""What the suite's HTTP servers share (the gateway, and every service's metrics
endpoint): a socket bound before the server starts, so port 0 gives the real port
at once and hypercorn takes the socket over, and the ASGI lifespan answered."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any


def listening_socket(address: str) -> socket.socket:
    """A non-blocking TCP socket bound to "host:port" ("[::1]:port" for IPv6), listening."""
    host, _, port = address.rpartition(":")
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), int(port)))
        sock.listen(1024)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def answer_lifespan(
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """An app with nothing to set up or tear down, as the ASGI lifespan protocol asks."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
