"""Wires the gateway: one hypercorn server on one port speaking Connect,
gRPC-Web and native gRPC (HTTP/2 cleartext), in front of grpc.aio channels to
the ledger, games and campaigns services."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.gateway.api import (
    CAMPAIGNS,
    GAMES,
    PROGRESS,
    REFLECTION_RULE,
    REWARDS,
    WALLET_RULES,
    WALLET_SERVICE,
)
from services.gateway.codecs import gateway_codecs
from services.gateway.domain import (
    CorsPolicy,
    DeadlinePolicy,
    RateLimiter,
)
from services.gateway.edge import Edge
from services.gateway.reflection import reflection_endpoints
from services.gateway.service import Gatekeeper
from services.gateway.servicer import (
    GateInterceptor,
    ServiceApplication,
    Upstream,
    WalletServicer,
    forwarding_handlers,
    service_application,
    wallet_handlers,
)
from services.gateway.shutdown import Shutdown
from services.gateway.tokens import (
    JwksFile,
    JwksUrl,
    KeySource,
    SharedSecret,
    TokenVerifier,
    dev_secret,
)
from services.gateway.webapps import DevSignIn, WebApps
from services.kit.clock import Clock, SystemClock
from services.kit.config import (
    CAMPAIGNS_ADDRESS,
    GAMES_ADDRESS,
    GATEWAY_ADDRESS,
    GATEWAY_METRICS_ADDRESS,
    LEDGER_ADDRESS,
    PROGRESS_ADDRESS,
    REWARDS_ADDRESS,
    ServiceSettings,
    setting,
)
from services.kit.http_server import listening_socket
from services.kit.metrics import Metrics
from services.kit.metrics_http import MetricsEndpoint
from services.kit.outgoing import open_channel

log = structlog.get_logger()

READINESS_TIMEOUT_SECONDS = 1.0
ANSWER_SECONDS = 1.0
# A gateway should notice a returning upstream within a second or two, not
# after grpc's default backoff of up to two minutes. grpc.min_reconnect_backoff_ms
# stays at its default: grpc core also takes it as each connection attempt's
# deadline (grpc/grpc#12830), and at 100 ms a busy machine failed first calls with
# "tcp handshaker shutdown".
UPSTREAM_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


def upstream_channel(target: str) -> grpc.aio.Channel:
    """The kit's channel (request ids forwarded), with fast reconnects."""
    return open_channel(target, UPSTREAM_CHANNEL_OPTIONS)


def forwarding_channel(target: str) -> grpc.aio.Channel:
    """A channel for forwarded calls, which add the request id themselves."""
    return grpc.aio.insecure_channel(target, options=UPSTREAM_CHANNEL_OPTIONS)


@dataclass(frozen=True, kw_only=True)
class GatewaySettings(ServiceSettings):
    """Everything the gateway reads from its environment (see docs/gateway.md)."""

    env_prefix: ClassVar[str] = "GATEWAY"
    listen: str = GATEWAY_ADDRESS
    metrics_listen: str = GATEWAY_METRICS_ADDRESS
    ledger_target: str = LEDGER_ADDRESS
    # Empty means the gateway does not expose that service.
    games_target: str | None = GAMES_ADDRESS
    campaigns_target: str | None = CAMPAIGNS_ADDRESS
    rewards_target: str | None = REWARDS_ADDRESS
    progress_target: str | None = PROGRESS_ADDRESS
    jwt_issuer: str = "loyalty-arcade-dev"
    jwt_audience: str = "loyalty-arcade"
    jwt_leeway_seconds: float = 30.0
    jwt_secret: str = ""
    jwt_secret_file: Path = Path("var/gateway-jwt.secret")
    jwks_url: str = ""
    jwks_file: str = ""
    cors_origins: tuple[str, ...] = ("http://localhost:5173", "http://localhost:3000")
    member_rate_per_second: float = setting(20.0, "GATEWAY_MEMBER_RATE")
    member_burst: int = 40
    address_rate_per_second: float = setting(200.0, "GATEWAY_ADDRESS_RATE")
    address_burst: int = 400
    default_deadline_seconds: float = 5.0
    max_deadline_seconds: float = 30.0
    max_stream_seconds: float = 3600.0
    max_body_bytes: int = 256 * 1024
    # gRPC reflection of the exposed methods (what grpcurl lists and describes).
    reflection: bool = True
    # The built web apps (`make web`) served at /app/ and /console/; empty: none.
    web_dir: Path | None = Path(__file__).resolve().parents[2] / "web" / "dist"
    # POST /dev/token mints tokens for the apps' development sign-in. It exists
    # only with the development secret, never with JWKS keys, whatever this says.
    dev_sign_in: bool = True
    # More services to re-expose, each with its target (tests use this).
    extra_upstreams: tuple[tuple[Upstream, str], ...] = ()

    def upstreams(self) -> list[tuple[Upstream, str]]:
        configured = [
            (GAMES, self.games_target),
            (CAMPAIGNS, self.campaigns_target),
            (REWARDS, self.rewards_target),
            (PROGRESS, self.progress_target),
        ]
        chosen = [(upstream, target) for upstream, target in configured if target]
        return [*chosen, *self.extra_upstreams]

    def key_source(self) -> KeySource:
        """Public keys when configured (production), else the development secret."""
        if self.jwks_file:
            return JwksFile(Path(self.jwks_file))
        if self.jwks_url:
            return JwksUrl(self.jwks_url)
        return SharedSecret(dev_secret(self.jwt_secret, self.jwt_secret_file))


class UpstreamHealth:
    """Readiness: every upstream's gRPC health check says SERVING."""

    def __init__(self, channels: dict[str, grpc.aio.Channel]) -> None:
        self._stubs = {name: health_pb2_grpc.HealthStub(ch) for name, ch in channels.items()}
        self.draining = False

    async def check(self) -> dict[str, str]:
        names = list(self._stubs)
        results = await asyncio.gather(*(self._check_one(name) for name in names))
        states = dict(zip(names, results, strict=True))
        if self.draining:
            states["gateway"] = "NOT_SERVING"
        return states

    async def _check_one(self, name: str) -> str:
        try:
            response = await self._stubs[name].Check(
                health_pb2.HealthCheckRequest(), timeout=READINESS_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as error:
            return error.code().name
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def _quiet_cancelled_connections(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """The loop's exception handler while a gateway serves. A connection still
    open when the grace period ends (an HTTP/2 client that never sent a request
    is one: hypercorn only closes idle connections that have had one) is
    cancelled, and Python 3.11's asyncio.streams reports that cancellation as an
    error with a traceback (CPython gh-113538, fixed in 3.12). A cancellation is
    the stop working as intended, so that report alone is dropped."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        log.debug("connection_cancelled_at_stop")
        return
    loop.default_exception_handler(context)


@dataclass
class GatewayHost:
    """A built gateway: `.port`, `await start()`, `await stop(grace)`."""

    app: Edge
    port: int
    channels: dict[str, grpc.aio.Channel]
    metrics: Metrics
    _socket: socket.socket
    _health: UpstreamHealth
    _shutdown: Shutdown
    _grace: float
    _metrics_endpoint: MetricsEndpoint
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task | None = None
    # Gateways serving in this process, so the exception handler goes with the last.
    _serving: ClassVar[int] = 0

    @property
    def metrics_port(self) -> int:
        """Where Prometheus scrapes the gateway (0: metrics are not served)."""
        return self._metrics_endpoint.port

    async def start(self) -> None:
        await self._metrics_endpoint.start()
        config = HypercornConfig()
        # Hypercorn takes over our already-bound socket, so port 0 works.
        config.bind = [f"fd://{self._socket.detach()}"]
        # Room to write the GATEWAY_STOPPING answers of the calls ended at the grace.
        config.graceful_timeout = self._grace + ANSWER_SECONDS
        config.accesslog = None
        config.keep_alive_timeout = 75
        # gRPC clients keep one HTTP/2 connection for every call; hypercorn's default
        # of 1,000 requests per connection sent GOAWAY and failed the calls in flight.
        config.keep_alive_max_requests = 2**31 - 1
        loop = asyncio.get_running_loop()
        if loop.get_exception_handler() is None:
            loop.set_exception_handler(_quiet_cancelled_connections)
        GatewayHost._serving += 1
        self._task = asyncio.create_task(
            hypercorn_serve(self.app, config, shutdown_trigger=self._stopping.wait)
        )
        log.info("server_started", port=self.port, metrics_port=self.metrics_port)

    async def stop(self, grace: float | None = None) -> None:
        """Readiness turns false and open streams end with UNAVAILABLE at once
        (clients resume them); unary calls in flight get the grace period, then
        end the same way; then the upstream channels close."""
        if self._task is None:
            return
        grace = self._grace if grace is None else min(grace, self._grace)
        self._health.draining = True
        self._shutdown.end_streams()
        loop = asyncio.get_running_loop()
        calls_end = loop.call_later(grace, self._shutdown.end_calls)
        self._stopping.set()
        try:
            await self._task
        finally:
            calls_end.cancel()
            self._task = None
            GatewayHost._serving -= 1
        for channel in self.channels.values():
            await channel.close(grace)
        await self._metrics_endpoint.stop()
        if (
            GatewayHost._serving == 0
            and loop.get_exception_handler() is _quiet_cancelled_connections
        ):
            loop.set_exception_handler(None)
        log.info("server_stopped", port=self.port)


async def build_server(
    settings: GatewaySettings, address: str | None = None, clock: Clock | None = None
) -> GatewayHost:
    """The gateway on `address` (default: settings.listen; port 0 picks a free port)."""
    clock = clock or SystemClock()
    metrics = Metrics.of(settings)
    deadlines = DeadlinePolicy(
        default_seconds=settings.default_deadline_seconds,
        max_seconds=settings.max_deadline_seconds,
        stream_max_seconds=settings.max_stream_seconds,
    )
    keys = settings.key_source()
    verifier = TokenVerifier(
        keys,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway_seconds=settings.jwt_leeway_seconds,
        clock=clock,
    )
    gatekeeper = Gatekeeper(
        verifier,
        member_limits=RateLimiter(settings.member_burst, settings.member_rate_per_second),
        address_limits=RateLimiter(settings.address_burst, settings.address_rate_per_second),
        clock=clock,
    )
    ledger_channel = upstream_channel(settings.ledger_target)
    channels = {"ledger": ledger_channel}
    rules = {f"{WALLET_SERVICE.full_name}/{name}": rule for name, rule in WALLET_RULES.items()}
    for upstream, target in settings.upstreams():
        channels[upstream.name] = forwarding_channel(target)
        rules.update(upstream.procedures())
    codecs = gateway_codecs()
    shutdown = Shutdown()
    options = {
        "interceptors": [GateInterceptor(gatekeeper, rules, shutdown, metrics.rpc)],
        "read_max_bytes": settings.max_body_bytes,
        "codecs": codecs,
    }
    wallet = WalletServicer(
        ledger_grpc.LedgerServiceStub(ledger_channel), deadlines, metrics.upstream
    )
    apps = [service_application(WALLET_SERVICE, wallet_handlers(wallet), **options)]
    for upstream, _target in settings.upstreams():
        handlers = forwarding_handlers(
            upstream, channels[upstream.name], deadlines, metrics.upstream
        )
        apps.append(service_application(upstream.service, handlers, **options))
    if settings.reflection:
        # Built from the same descriptors and allowlists as the apps above.
        exposed = {
            WALLET_SERVICE: WALLET_RULES,
            **{upstream.service: upstream.rules for upstream, _ in settings.upstreams()},
        }
        for name, endpoints in reflection_endpoints(exposed).items():
            rules.update({f"{name}/{method}": REFLECTION_RULE for method in endpoints})
            apps.append(ServiceApplication(name, endpoints, **options))
    routes = {app.service_name: app for app in apps}
    health = UpstreamHealth(channels)
    pages: list[WebApps | DevSignIn] = []
    if settings.web_dir is not None:
        pages.append(WebApps(settings.web_dir))
    if settings.dev_sign_in and isinstance(keys, SharedSecret):
        pages.append(DevSignIn(keys.secret, settings.jwt_issuer, settings.jwt_audience, clock))
    edge = Edge(
        routes,
        codecs=[codec.name() for codec in codecs],
        cors=CorsPolicy.of(settings.cors_origins),
        max_body_bytes=settings.max_body_bytes,
        readiness=health.check,
        clock=clock,
        metrics=metrics.http,
        pages=pages,
    )
    sock = listening_socket(address or settings.listen)
    return GatewayHost(
        app=edge,
        port=sock.getsockname()[1],
        channels=channels,
        metrics=metrics,
        _socket=sock,
        _health=health,
        _shutdown=shutdown,
        _grace=settings.shutdown_grace_seconds,
        _metrics_endpoint=MetricsEndpoint(metrics),
    )
