"""The server kit every service shares: call context, error mapping, health,
reflection and graceful shutdown around a grpc.aio server."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
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
    return uuid.uuid4().hex


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


@contextlib.asynccontextmanager
async def _call_context(request, context: grpc.aio.ServicerContext, bind: Callable[[], None]):
    """Around every call: its logging context, and errors mapped to statuses."""
    bind()
    if isinstance(request, Undecodable):
        await _abort(context, _undecodable(request))
    try:
        yield
    except ServiceError as error:
        await _abort(context, error)
    except (asyncio.CancelledError, grpc.aio.AbortError):
        raise
    except Exception:
        await _internal(context)


class CallContextInterceptor(grpc.aio.ServerInterceptor):
    """Binds rpc and request id to the logging context of each call, maps
    ServiceError to rich statuses and unparsable requests to INVALID_ARGUMENT."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        request_id = request_id_from(handler_call_details.invocation_metadata)
        method = handler_call_details.method

        def bind() -> None:
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(rpc=method, request_id=request_id)

        if handler.unary_unary:
            behavior = handler.unary_unary

            async def unary_unary(request, context):
                async with _call_context(request, context, bind):
                    return await behavior(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary,
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            stream_behavior = handler.unary_stream

            async def unary_stream(request, context):
                async with _call_context(request, context, bind):
                    responses = stream_behavior(request, context)
                    # Servicers either yield responses or write them with context.write.
                    if inspect.isawaitable(responses):
                        await responses
                        return
                    async for response in responses:
                        yield response

            return grpc.unary_stream_rpc_method_handler(
                unary_stream,
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler


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
    server = grpc.aio.server(
        interceptors=[CallContextInterceptor(), *interceptors], options=DEFAULT_OPTIONS
    )
    for binding in bindings:
        binding.register(binding.servicer, server)
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
