"""The HTTP edge in front of the Connect applications: request ids, CORS,
body size, liveness and readiness, plain pages (the web apps and the
development sign-in, webapps.py), and routing by service and method path,
with an explained refusal (refusals.py) for whatever no handler can take;
every request counted by route (the exposed methods' names, or one of a few
fixed names: never a path a client made up) and HTTP status."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from connectrpc.method import MethodInfo, StreamType

from services.gateway.domain import CorsPolicy
from services.gateway.refusals import (
    BareStatusExplainer,
    body_too_large,
    explain_bare_status,
    origin_not_allowed,
    send_refusal,
    unknown_method,
    unknown_service,
)
from services.kit.clock import Clock
from services.kit.http_server import answer_lifespan
from services.kit.metrics import HttpMetrics
from services.kit.server import REQUEST_ID_HEADER, request_id_from

log = structlog.get_logger()


class Page(Protocol):
    """A plain HTTP route beside the RPCs (the web apps, the dev sign-in)."""

    def handles(self, scope: dict) -> bool: ...

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None: ...


class ServedService(Protocol):
    """An ASGI app serving one protobuf service, and the methods it exposes."""

    @property
    def methods(self) -> Mapping[str, MethodInfo]: ...

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None: ...


ALLOWED_METHODS = "GET, POST"
ALLOWED_HEADERS = ", ".join(
    [
        "Authorization",
        "Content-Type",
        "Content-Encoding",
        "Accept-Encoding",
        "Connect-Protocol-Version",
        "Connect-Timeout-Ms",
        "Connect-Content-Encoding",
        "Connect-Accept-Encoding",
        "Grpc-Timeout",
        "Grpc-Accept-Encoding",
        "X-Grpc-Web",
        "X-User-Agent",
        "X-Request-Id",
    ]
)
EXPOSED_HEADERS = ", ".join(
    [
        "Grpc-Status",
        "Grpc-Message",
        "Grpc-Status-Details-Bin",
        "X-Request-Id",
        "Retry-After",
        "Content-Encoding",
        "Connect-Content-Encoding",
    ]
)
# How long a refusal waits for the rest of a request it will not serve.
DRAIN_SECONDS = 1.0
PREFLIGHT_MAX_AGE_SECONDS = "7200"


@dataclass(frozen=True, slots=True)
class Route:
    """What a request went to, as the metrics name it; a stream's lifetime is no latency."""

    name: str
    stream: bool = False


PREFLIGHT = Route("preflight")
LIVENESS = Route("/healthz")
READINESS = Route("/readyz")
# The web apps' files and the development sign-in.
PAGE = Route("page")
# Every path that names no exposed method: one label, whatever a client sends.
UNMATCHED = Route("unmatched")


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


async def _plain_response(send, status: int, body: dict[str, Any], headers=()) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": payload, "more_body": False})


class Edge:
    """One ASGI app for the whole port."""

    def __init__(
        self,
        routes: Mapping[str, ServedService],
        *,
        codecs: Sequence[str],
        cors: CorsPolicy,
        max_body_bytes: int,
        readiness: Callable[[], Awaitable[dict[str, str]]],
        clock: Clock,
        metrics: HttpMetrics,
        pages: Sequence[Page] = (),
    ) -> None:
        self._routes = routes
        self._pages = pages
        self._codecs = codecs
        self._cors = cors
        self._max_body_bytes = max_body_bytes
        self._readiness = readiness
        self._clock = clock
        self._metrics = metrics
        self._named = {
            (service, name): Route(f"{service}/{name}", info.stream_type != StreamType.UNARY)
            for service, app in routes.items()
            for name, info in app.methods.items()
        }

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request_id = request_id_from(
            (key.decode("latin-1"), value.decode("latin-1")) for key, value in scope["headers"]
        )
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id, path=scope["path"])
        # Downstream handlers see exactly the id we return and forward.
        scope["headers"] = [
            *(item for item in scope["headers"] if item[0] != REQUEST_ID_HEADER.encode()),
            (REQUEST_ID_HEADER.encode(), request_id.encode()),
        ]
        extra = [(REQUEST_ID_HEADER.encode(), request_id.encode())]
        origin = _header(scope, b"origin")
        if origin is not None and self._cors.allows(origin):
            extra += [
                (b"access-control-allow-origin", origin.encode()),
                (b"access-control-expose-headers", EXPOSED_HEADERS.encode()),
                (b"vary", b"Origin"),
            ]
        started_us = self._clock.now_us()
        started = time.perf_counter()
        status_seen: list[int] = []

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_seen.append(message["status"])
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        route = await self._dispatch(scope, receive, send_with_headers, origin)
        if status_seen:
            elapsed = None if route.stream else time.perf_counter() - started
            self._metrics.answered(route.name, status_seen[0], elapsed)
        log.info(
            "http_request",
            method=scope["method"],
            http_version=scope.get("http_version"),
            content_type=_header(scope, b"content-type"),
            status=status_seen[0] if status_seen else None,
            duration_ms=round((self._clock.now_us() - started_us) / 1000, 3),
        )

    async def _dispatch(self, scope: dict, receive, send, origin: str | None) -> Route:
        path, method = scope["path"], scope["method"]
        if method == "OPTIONS":
            await self._preflight(send, origin)
            return PREFLIGHT
        if path == "/healthz":
            await _plain_response(send, 200, {"status": "alive"})
            return LIVENESS
        if path == "/readyz":
            upstreams = await self._readiness()
            ready = all(state == "SERVING" for state in upstreams.values())
            body = {"status": "ready" if ready else "not_ready", "upstreams": upstreams}
            await _plain_response(send, 200 if ready else 503, body)
            return READINESS
        for page in self._pages:
            if page.handles(scope):
                await page(scope, receive, send)
                return PAGE
        content_type = _header(scope, b"content-type")
        trailers = _header(scope, b"te") == "trailers" and "http.response.trailers" in scope.get(
            "extensions", {}
        )

        async def refuse(refusal, read_body: bool = True) -> None:
            if read_body:
                await self._drain(receive)
            await send_refusal(send, refusal, content_type, trailers=trailers)

        service, _, name = path.removeprefix("/").partition("/")
        route = self._named.get((service, name), UNMATCHED)
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body_bytes:
            await refuse(body_too_large(self._max_body_bytes), read_body=False)
            return route
        app = self._routes.get(service)
        if app is None:
            await refuse(unknown_service(service, name, self._routes))
            return route
        method = app.methods.get(name)
        if method is None:
            await refuse(unknown_method(service, name, app.methods))
            return route

        def explain(status: int):
            return explain_bare_status(status, content_type, method, self._codecs)

        await app(
            scope, receive, BareStatusExplainer(send, explain, content_type, trailers=trailers)
        )
        return route

    async def _drain(self, receive) -> None:
        """Reads what the client sends before refusing it: a gRPC client whose
        stream is answered and closed while it is still sending its request
        reports INTERNAL ("Failed execute_batch") instead of our status. Bounded
        in bytes and time, for a client stream that never half-closes."""
        received = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_SECONDS):
                while received <= self._max_body_bytes:
                    message = await receive()
                    if message["type"] != "http.request":
                        return
                    received += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        return

    async def _preflight(self, send, origin: str | None) -> None:
        if origin is None or not self._cors.allows(origin):
            await send_refusal(send, origin_not_allowed(origin), None)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [
                    (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
                    (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                    (b"access-control-max-age", PREFLIGHT_MAX_AGE_SECONDS.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"", "more_body": False})
