"""A service's metrics on a port of its own: GET /metrics, in Prometheus' text
format (or OpenMetrics, when the scraper asks for it).

Served by hypercorn on the service's own event loop, so a scrape reads the
figures that live in the store through the store (the same unit of work, on any
engine) and never runs on a thread of its own beside the loop. The socket is
bound when the endpoint is built, like the gRPC port, so port 0 works."""

from __future__ import annotations

import asyncio

import structlog
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig
from prometheus_client import make_asgi_app

from services.kit.http_server import answer_lifespan, listening_socket
from services.kit.metrics import Metrics

log = structlog.get_logger()

PATHS = ("/metrics", "/")
# A scrape is one short answer: nothing is left to finish at a stop.
GRACE_SECONDS = 1.0


async def _plain(send, status: int, text: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": text.encode()})


class MetricsEndpoint:
    """`metrics` served on `metrics.listen`; nothing at all when it is empty."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._exposition = make_asgi_app(metrics.registry)
        self._socket = listening_socket(metrics.listen) if metrics.listen else None
        # The bound port (0 when metrics are not served).
        self.port: int = self._socket.getsockname()[1] if self._socket is not None else 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if self._socket is None:
            return
        config = HypercornConfig()
        config.bind = [f"fd://{self._socket.detach()}"]
        config.accesslog = None
        config.graceful_timeout = GRACE_SECONDS
        self._task = asyncio.create_task(
            hypercorn_serve(self._app, config, shutdown_trigger=self._stopping.wait),
            name="metrics-endpoint",
        )
        log.info("metrics_serving", port=self.port, path=PATHS[0])

    async def stop(self) -> None:
        if self._task is None:
            if self._socket is not None and self._socket.fileno() != -1:
                self._socket.close()
            return
        self._stopping.set()
        await self._task
        self._task = None

    async def _app(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] not in PATHS:
            await _plain(send, 404, "metrics are at /metrics\n")
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _plain(send, 405, "GET /metrics\n")
            return
        await self._metrics.refresh()
        await self._exposition(scope, receive, send)
