"""The server kit every service shares: call context, error mapping, health,
reflection and graceful shutdown around a grpc.aio server."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import signal
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


async def _streamed(context: grpc.aio.ServicerContext, responses):
    """A streaming handler's responses, with its errors mapped to statuses."""
    try:
        # Servicers either yield responses or write them with context.write.
        if inspect.isawaitable(responses):
            await responses
            return
        async for response in responses:
            yield response
    except Exception as error:
        await _failed(context, error)


def wrap_handler(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """`handler` with the call context every service gets: the rpc and request id
    bound to the logging context, ServiceError mapped to a rich status, any other
    exception to a bare INTERNAL, unparsable requests to INVALID_ARGUMENT (for a
    stream, each undecodable message reaches the handler as an Undecodable).

    Built once per method at registration: wrapping in an interceptor built a new
    handler and closures on every call, and grpc.aio awaits an interceptor chain
    per call."""
    deserializer = _tolerant(handler.request_deserializer)
    serializer = handler.response_serializer
    if handler.unary_unary:
        behavior = handler.unary_unary

        async def unary_unary(request, context):
            await _begin(method, context, request)
            try:
                return await behavior(request, context)
            except Exception as error:
                await _failed(context, error)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, request_deserializer=deserializer, response_serializer=serializer
        )
    if handler.unary_stream:
        stream_behavior = handler.unary_stream

        async def unary_stream(request, context):
            await _begin(method, context, request)
            async for response in _streamed(context, stream_behavior(request, context)):
                yield response

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, request_deserializer=deserializer, response_serializer=serializer
        )
    if handler.stream_stream:
        streams = handler.stream_stream

        async def stream_stream(requests, context):
            await _begin(method, context)
            async for response in _streamed(context, streams(requests, context)):
                yield response

        return grpc.stream_stream_rpc_method_handler(
            stream_stream, request_deserializer=deserializer, response_serializer=serializer
        )
    return handler


class _WrappedGeneric(grpc.GenericRpcHandler):
    """A generic handler whose method handlers are wrapped once, on first use."""

    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self._inner = inner
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    def service(self, handler_call_details):
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is None or known[0] is not handler:
            known = self._wrapped[method] = (handler, wrap_handler(method, handler))
        return known[1]


class _Registrar:
    """What a generated add_*_to_server sees: it wraps each handler, then registers."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers) -> None:
        self._server.add_generic_rpc_handlers(tuple(_WrappedGeneric(h) for h in handlers))

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        self._server.add_registered_method_handlers(
            service,
            {
                name: wrap_handler(f"/{service}/{name}", handler)
                for name, handler in handlers.items()
            },
        )


class CallContextInterceptor(grpc.aio.ServerInterceptor):
    """The same call context as an interceptor, for a server whose handlers were not
    registered through create_host (it wraps once per method, too)."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is None or known[0] is not handler:
            known = self._wrapped[method] = (handler, wrap_handler(method, handler))
        return known[1]


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
    on_start: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def start(self) -> None:
        for hook in self.on_start:
            await hook()
        await self.server.start()
        for name in ["", *self.service_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("server_started", port=self.port, services=self.service_names)

    async def stop(self, grace: float | None = 5.0) -> None:
        """Health goes NOT_SERVING first, then calls in flight get `grace` seconds."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        for hook in reversed(self.on_stop):
            await hook()
        log.info("server_stopped", port=self.port)


DEFAULT_OPTIONS = (
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
)


def create_host(
    bindings: list[ServiceBinding], address: str, interceptors: Iterable[Any] = ()
) -> ServiceHost:
    server = grpc.aio.server(interceptors=list(interceptors) or None, options=DEFAULT_OPTIONS)
    registrar = _Registrar(server)
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
    return ServiceHost(server=server, port=port, health=health, service_names=names)


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
