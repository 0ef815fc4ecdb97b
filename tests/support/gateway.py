"""Gateway helpers the gateway and e2e tests share: test settings and tokens,
a real upstream that records and misbehaves on request, the Node clients'
descriptor set and call specs, and plain HTTP for what client libraries hide."""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.descriptor import FileDescriptor
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from services.gateway import descriptors as gateway_descriptors
from services.gateway.domain import AccessRule, Audience
from services.gateway.server import GatewaySettings
from services.gateway.servicer import Upstream
from services.gateway.tokens import issue_token
from services.kit.clock import Clock
from services.kit.errors import NotFound
from services.kit.status import ERROR_DOMAIN, to_rpc_status

REPO = Path(__file__).resolve().parents[2]
NODE_CLIENT = REPO / "tests" / "gateway" / "js" / "call.mjs"
SECRET = b"a-test-secret-that-is-long-enough-for-hs256"
ISSUER = "loyalty-arcade-test"
AUDIENCE = "loyalty-arcade"
BROWSER_ORIGIN = "http://app.example.test"

# The gRPC health service re-exposed as if it were a player API: a small,
# real upstream with a unary and a streaming method to prove the bridging.
HEALTH = Upstream(
    name="health",
    service=health_pb2.DESCRIPTOR.services_by_name["Health"],
    rules={"Check": AccessRule(Audience.PLAYER), "Watch": AccessRule(Audience.PLAYER)},
)
HEALTH_SERVICE = HEALTH.service.full_name


class Tokens:
    """Tokens signed with the tests' secret, on the tests' clock (the system
    clock for a gateway process)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def issue(self, subject: str = "m-1", roles: list[str] | None = None, ttl: int = 3600) -> str:
        return issue_token(
            SECRET,
            subject=subject,
            roles=roles if roles is not None else ["player"],
            issuer=ISSUER,
            audience=AUDIENCE,
            now_us=self._clock.now_us(),
            ttl_seconds=ttl,
        )


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


BUSY = status_pb2.Status(
    code=code_pb2.RESOURCE_EXHAUSTED,
    message="the wheel is busy",
    details=[
        any_pb2.Any(
            type_url="type.googleapis.com/google.rpc.ErrorInfo",
            value=error_details_pb2.ErrorInfo(
                reason="WHEEL_BUSY", domain=ERROR_DOMAIN
            ).SerializeToString(),
        ),
        any_pb2.Any(
            type_url="type.googleapis.com/google.rpc.RetryInfo",
            value=error_details_pb2.RetryInfo(
                retry_delay=duration_pb2.Duration(seconds=3, nanos=500_000_000)
            ).SerializeToString(),
        ),
    ],
)


class ProbeHealth(health_pb2_grpc.HealthServicer):
    """A real upstream speaking the health contract that also records what
    reached it and misbehaves on request (by the `service` field of a Check):
    "refuse" answers NOT_FOUND with the kit's ErrorInfo, "busy" answers
    RESOURCE_EXHAUSTED with an ErrorInfo and a RetryInfo, "crash" raises,
    "hang" never answers. `watching` and `hanging` are set when a Watch or a
    hanging Check reaches it: the call is open end to end."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.statuses: asyncio.Queue[int] = asyncio.Queue()
        self.watching = asyncio.Event()
        self.hanging = asyncio.Event()

    def _record(self, request, context) -> None:
        self.seen.append(
            {
                "service": request.service,
                "metadata": dict(context.invocation_metadata()),
                "time_remaining": context.time_remaining(),
            }
        )

    async def Check(self, request, context):
        self._record(request, context)
        if request.service == "refuse":
            error = NotFound("ACCOUNT_NOT_FOUND", "no account m-9", {"account_id": "m-9"})
            await context.abort_with_status(to_rpc_status(error))
        if request.service == "busy":
            await context.abort_with_status(rpc_status.to_status(BUSY))
        if request.service == "crash":
            raise RuntimeError("secret internal detail /var/lib/ledger.db")
        if request.service == "hang":
            self.hanging.set()
            await asyncio.Event().wait()
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    async def Watch(self, request, context):
        self._record(request, context)
        self.watching.set()
        yield health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
        while True:
            yield health_pb2.HealthCheckResponse(status=await self.statuses.get())


@dataclasses.dataclass
class HealthUpstream:
    server: grpc.aio.Server
    probe: ProbeHealth
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


async def start_health_upstream(port: int = 0) -> HealthUpstream:
    server = grpc.aio.server()
    probe = ProbeHealth()
    health_pb2_grpc.add_HealthServicer_to_server(probe, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return HealthUpstream(server, probe, bound)


def gateway_settings(**overrides: Any) -> GatewaySettings:
    base = GatewaySettings(
        games_target=None,
        campaigns_target=None,
        rewards_target=None,
        progress_target=None,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_secret=SECRET.decode(),
        cors_origins=(BROWSER_ORIGIN,),
        member_burst=1000,
        address_burst=1000,
        shutdown_grace_seconds=1.0,
    )
    return dataclasses.replace(base, **overrides)


def probe_settings(upstream: HealthUpstream, **overrides: Any) -> GatewaySettings:
    """Settings whose ledger and re-exposed health service are the probe upstream."""
    return gateway_settings(
        ledger_target=upstream.target,
        extra_upstreams=((HEALTH, upstream.target),),
        **overrides,
    )


# Node clients ---------------------------------------------------------------


def node_packages() -> Path | None:
    """The Node packages the project pins, when `make setup` (npm ci) installed them."""
    installed = REPO / "node_modules" / ".package-lock.json"
    return REPO / "node_modules" if installed.exists() else None


def descriptor_set(*files: FileDescriptor) -> bytes:
    """The files and everything they import, serialized for the JS runtime."""
    return gateway_descriptors.descriptor_set(*files).SerializeToString()


def node_call(transport: str, port: int, service: str, **fields: Any) -> dict[str, Any]:
    """One call for the Node client: gRPC takes host:port, the web transports a URL."""
    address = f"127.0.0.1:{port}"
    url = address if transport == "grpc" else f"http://{address}"
    return {"transport": transport, "url": url, "service": service, **fields}


NodeRunner = Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]


# Plain HTTP -----------------------------------------------------------------


@dataclasses.dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def http_request(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> HttpResponse:
    """A plain HTTP/1.1 exchange, for what client libraries hide (status, headers)."""

    def exchange() -> HttpResponse:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return HttpResponse(
                response.status,
                {key.lower(): value for key, value in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    return await asyncio.to_thread(exchange)


def connect_headers(token: str | None = None, **extra: str) -> dict[str, str]:
    """Headers of a Connect unary JSON call, as curl would send them."""
    headers = {"content-type": "application/json", "connect-protocol-version": "1", **extra}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return headers


def enveloped(message: bytes, flags: int = 0) -> bytes:
    """One message framed as Connect and gRPC streams frame them."""
    return bytes([flags]) + len(message).to_bytes(4, "big") + message


def envelopes(body: bytes) -> list[tuple[int, bytes]]:
    """The (flags, message) frames of a stream's body, in order."""
    frames = []
    while body:
        size = int.from_bytes(body[1:5], "big")
        frames.append((body[0], body[5 : 5 + size]))
        body = body[5 + size :]
    return frames
