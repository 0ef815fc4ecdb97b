"""The server kit every service shares: call context, error mapping, RPC metrics,
health, reflection and graceful shutdown around a grpc.aio server."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from structlog.contextvars import bind_contextvars, clear_contextvars

from services.kit.errors import FieldViolation, InvalidArgument, ServiceError
from services.kit.metrics import NO_METER, CallMeter, Metrics, NoMeter
from services.kit.metrics_http import MetricsEndpoint
from services.kit.status import to_rpc_status
from services.kit.text import clipped

log = structlog.get_logger()

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_LENGTH = 128
MAX_LOGGED_MESSAGE = 300


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Stands in for a request whose bytes did not parse, so the handler can
    answer INVALID_ARGUMENT instead of grpc's INTERNAL."""

    error: str


def request_id_from(metadata: Iterable[tuple[str, Any]] | None) -> str:
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str):
            value = value.strip()
            if 0 < len(value) <= MAX_REQUEST_ID_LENGTH and value.isprintable():
                return value
    return new_request_id()


# A random prefix per process and a counter: unique, and no getrandom syscall per
# call as uuid4 made (the ledger's unary profile showed it).
_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as error:  # any parse failure is the caller's bad input
            return Undecodable(str(error) or type(error).__name__)

    return deserialize


async def _abort(context: grpc.aio.ServicerContext, error: ServiceError) -> None:
    level = "error" if error.status_name in ("INTERNAL", "UNKNOWN") else "info"
    log.log(
        20 if level == "info" else 40,
        "rpc_rejected",
        code=error.status_name,
        reason=error.reason,
        error_message=clipped(error.message, MAX_LOGGED_MESSAGE),
    )
    await context.abort_with_status(to_rpc_status(error))


def _undecodable(request: Undecodable) -> InvalidArgument:
    return InvalidArgument(
        [FieldViolation("request", f"the request does not parse: {request.error}")],
        reason="MALFORMED_REQUEST",
    )


async def _internal(context: grpc.aio.ServicerContext) -> None:
    log.exception("rpc_internal_error")
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the service log")


async def _begin(method: str, context: grpc.aio.ServicerContext, request: Any = None) -> None:
    """Bind the call's logging context; refuse a request that did not parse."""
    # Each call runs in a task of its own, with its own copy of the context.
    clear_contextvars()
    bind_contextvars(rpc=method, request_id=request_id_from(context.invocation_metadata()))
    if isinstance(request, Undecodable):
        await _abort(context, _undecodable(request))


async def _failed(context: grpc.aio.ServicerContext, error: Exception) -> None:
    """Map what a handler raised to its status (re-raising cancellation and aborts)."""
    if isinstance(error, ServiceError):
        await _abort(context, error)
    elif isinstance(error, asyncio.CancelledError | grpc.aio.AbortError):
        raise error
    else:
        await _internal(context)


def _code_name(error: BaseException, context: grpc.aio.ServicerContext) -> str:
    """The status a call that raised `error` ends with, as its metrics label it."""
    if isinstance(error, ServiceError):
        return error.status_name
    if isinstance(error, grpc.aio.AbortError):
        code = context.code()
        return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        # The client went away or its deadline passed: grpc cancelled the handler.
        return "CANCELLED"
    return "INTERNAL"


async def _stream_call(
    method: str,
    context: grpc.aio.ServicerContext,
    request: Any,
    responses: Callable[[], Any],
    meter: CallMeter | NoMeter,
):
    """A streaming handler's responses with the call context: its errors mapped
    to statuses, and the stream counted with its code when it ends."""
    code = "OK"
    try:
        await _begin(method, context, request)
        try:
            produced = responses()
            # Servicers either yield responses or write them with context.write.
            if inspect.isawaitable(produced):
                await produced
                return
            async for response in produced:
                yield response
        except Exception as error:
            await _failed(context, error)
    except BaseException as error:
        code = _code_name(error, context)
        raise
    finally:
        meter.ended(code)


def wrap_handler(
    method: str, handler: grpc.RpcMethodHandler, meter: CallMeter | NoMeter = NO_METER
) -> grpc.RpcMethodHandler:
    """`handler` with the call context every service gets: the rpc and request id
    bound to the logging context, ServiceError mapped to a rich status, any other
    exception to a bare INTERNAL, unparsable requests to INVALID_ARGUMENT (for a
    stream, each undecodable message reaches the handler as an Undecodable), and
    the call counted by `meter` with its status code (unary calls with their latency).

    Built once per method at registration: wrapping in an interceptor built a new
    handler and closures on every call, and grpc.aio awaits an interceptor chain
    per call. The meter's children are looked up once per code, so measuring a
    call costs two clock reads, a counter and a histogram (about a microsecond)."""
    deserializer = _tolerant(handler.request_deserializer)
    serializer = handler.response_serializer
    clock = time.perf_counter
    if handler.unary_unary:
        behavior = handler.unary_unary

        async def unary_unary(request, context):
            started = clock()
            try:
                await _begin(method, context, request)
                response = await behavior(request, context)
            except BaseException as error:
                meter.answered(_code_name(error, context), clock() - started)
                if isinstance(error, Exception):
                    await _failed(context, error)
                raise
            meter.answered("OK", clock() - started)
            return response

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, request_deserializer=deserializer, response_serializer=serializer
        )
    if handler.unary_stream:
        stream_behavior = handler.unary_stream

        async def unary_stream(request, context):
            def responses():
                return stream_behavior(request, context)

            async for response in _stream_call(method, context, request, responses, meter):
                yield response

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, request_deserializer=deserializer, response_serializer=serializer
        )
    if handler.stream_stream:
        streams = handler.stream_stream

        async def stream_stream(requests, context):
            def responses():
                return streams(requests, context)

            async for response in _stream_call(method, context, None, responses, meter):
                yield response

        return grpc.stream_stream_rpc_method_handler(
            stream_stream, request_deserializer=deserializer, response_serializer=serializer
        )
    return handler


class _Wrapping:
    """Each method's handler wrapped once (again only if grpc hands over another)."""

    def __init__(self, metrics: Metrics | None) -> None:
        self._metrics = metrics
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        known = self._wrapped.get(method)
        if known is None or known[0] is not handler:
            meter = self._metrics.rpc.method(method) if self._metrics is not None else NO_METER
            known = self._wrapped[method] = (handler, wrap_handler(method, handler, meter))
        return known[1]


class _WrappedGeneric(grpc.GenericRpcHandler):
    """A generic handler whose method handlers are wrapped once, on first use."""

    def __init__(self, inner: grpc.GenericRpcHandler, wrapping: _Wrapping) -> None:
        self._inner = inner
        self._wrapping = wrapping

    def service(self, handler_call_details):
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        return self._wrapping.wrap(handler_call_details.method, handler)


class _Registrar:
    """What a generated add_*_to_server sees: it wraps each handler, then registers."""

    def __init__(self, server: grpc.aio.Server, metrics: Metrics | None) -> None:
        self._server = server
        self._wrapping = _Wrapping(metrics)

    def add_generic_rpc_handlers(self, handlers) -> None:
        self._server.add_generic_rpc_handlers(
            tuple(_WrappedGeneric(h, self._wrapping) for h in handlers)
        )

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        self._server.add_registered_method_handlers(
            service,
            {
                name: self._wrapping.wrap(f"/{service}/{name}", handler)
                for name, handler in handlers.items()
            },
        )


class CallContextInterceptor(grpc.aio.ServerInterceptor):
    """The same call context as an interceptor, for a server whose handlers were not
    registered through create_host (it wraps once per method, too)."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._wrapping = _Wrapping(metrics)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return self._wrapping.wrap(handler_call_details.method, handler)


@dataclass
class ServiceBinding:
    """One gRPC service to mount: its generated add_*_to_server, servicer and full name."""

    register: Callable[[Any, grpc.aio.Server], None]
    servicer: Any
    full_name: str


@dataclass
class ServiceHost:
    """A built server with what must start and stop with it."""

    server: grpc.aio.Server
    port: int
    health: HealthServicer
    service_names: list[str]
    metrics: Metrics
    metrics_endpoint: MetricsEndpoint
    on_start: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def metrics_port(self) -> int:
        """Where Prometheus scrapes this server (0: metrics are not served)."""
        return self.metrics_endpoint.port

    async def start(self) -> None:
        for hook in self.on_start:
            await hook()
        await self.metrics_endpoint.start()
        await self.server.start()
        for name in ["", *self.service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "server_started",
            port=self.port,
            metrics_port=self.metrics_port,
            services=self.service_names,
        )

    async def stop(self, grace: float | None = 5.0) -> None:
        """Health goes NOT_SERVING first, then calls in flight get `grace` seconds;
        metrics are served until then (a scrape still sees the last calls)."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.metrics_endpoint.stop()
        for hook in reversed(self.on_stop):
            await hook()
        log.info("server_stopped", port=self.port)


DEFAULT_OPTIONS = (
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
)


def create_host(
    bindings: list[ServiceBinding],
    address: str,
    interceptors: Iterable[Any] = (),
    metrics: Metrics | None = None,
) -> ServiceHost:
    """The services in `bindings` on `address`, each call counted in `metrics`
    (a registry of the host's own when not given), which are served on
    `metrics.listen` while the host runs."""
    metrics = metrics or Metrics()
    server = grpc.aio.server(interceptors=list(interceptors) or None, options=DEFAULT_OPTIONS)
    registrar = _Registrar(server, metrics)
    for binding in bindings:
        binding.register(binding.servicer, registrar)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = [binding.full_name for binding in bindings]
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind {address}")
    return ServiceHost(
        server=server,
        port=port,
        health=health,
        service_names=names,
        metrics=metrics,
        metrics_endpoint=MetricsEndpoint(metrics),
    )


async def serve(host: ServiceHost, grace: float) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await host.start()
    await stopping.wait()
    log.info("shutdown_requested", grace_seconds=grace)
    await host.stop(grace)
