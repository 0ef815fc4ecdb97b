"""The HTTP edge in front of the Connect applications: request ids, CORS,
body size, liveness and readiness, and routing by service path."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from services.gateway.domain import CorsPolicy
from services.kit.clock import Clock
from services.kit.server import REQUEST_ID_HEADER, request_id_from

log = structlog.get_logger()

ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]

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
PREFLIGHT_MAX_AGE_SECONDS = "7200"


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
        routes: Mapping[str, ASGIApp],
        *,
        cors: CorsPolicy,
        max_body_bytes: int,
        readiness: Callable[[], Awaitable[dict[str, str]]],
        clock: Clock,
    ) -> None:
        self._routes = routes
        self._cors = cors
        self._max_body_bytes = max_body_bytes
        self._readiness = readiness
        self._clock = clock

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
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
        status_seen: list[int] = []

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_seen.append(message["status"])
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self._dispatch(scope, receive, send_with_headers, origin)
        log.info(
            "http_request",
            method=scope["method"],
            http_version=scope.get("http_version"),
            content_type=_header(scope, b"content-type"),
            status=status_seen[0] if status_seen else None,
            duration_ms=round((self._clock.now_us() - started_us) / 1000, 3),
        )

    async def _dispatch(self, scope: dict, receive, send, origin: str | None) -> None:
        path, method = scope["path"], scope["method"]
        if method == "OPTIONS":
            await self._preflight(send, origin)
            return
        if path == "/healthz":
            await _plain_response(send, 200, {"status": "alive"})
            return
        if path == "/readyz":
            upstreams = await self._readiness()
            ready = all(state == "SERVING" for state in upstreams.values())
            body = {"status": "ready" if ready else "not_ready", "upstreams": upstreams}
            await _plain_response(send, 200 if ready else 503, body)
            return
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body_bytes:
            await _plain_response(
                send, 413, {"code": "resource_exhausted", "message": "request body too large"}
            )
            return
        service = path.rsplit("/", 1)[0]
        app = self._routes.get(service)
        if app is None:
            await _plain_response(
                send, 404, {"code": "unimplemented", "message": "no such service"}
            )
            return
        await app(scope, receive, send)

    async def _preflight(self, send, origin: str | None) -> None:
        if origin is None or not self._cors.allows(origin):
            await _plain_response(
                send, 403, {"code": "permission_denied", "message": "origin not allowed"}
            )
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

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
