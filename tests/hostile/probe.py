"""Talking to a gRPC service knowing only what its reflection service says: which
RPCs it offers, how to send them raw request bytes, and whether an answer is acceptable."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

SKIPPED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.")
DETAILS_KEY = "grpc-status-details-bin"
# Status message plus details; a hostile input echoed in full would be far larger.
MAX_ERROR_BYTES = 4096

ALLOWED = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.ABORTED,
    }
)
CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


@dataclass(frozen=True)
class Rpc:
    service: str
    method: MethodDescriptor

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method.name}"

    @property
    def streaming(self) -> bool:
        return self.method.server_streaming


@dataclass(frozen=True)
class Catalog:
    rpcs: tuple[Rpc, ...]  # unary and server-streaming
    unsupported: tuple[str, ...]  # paths of client- and bidirectional-streaming methods

    def find(self, path: str) -> Rpc:
        for rpc in self.rpcs:
            if rpc.path == path:
                return rpc
        raise LookupError(f"reflection no longer lists {path}")


async def reflect(channel: grpc.aio.Channel, timeout: float = 10.0) -> Catalog:
    """Every method the server lists, with descriptors from its own file descriptors.

    The reflection stub is driven directly over the aio channel: the sync
    ProtoReflectionDescriptorDatabase would block the event loop the server runs on."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    stream = stub.ServerReflectionInfo(timeout=timeout)
    await stream.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    listed = await stream.read()
    names = [
        service.name
        for service in listed.list_services_response.service
        if not service.name.startswith(SKIPPED_SERVICES)
    ]
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for name in names:
        await stream.write(reflection_pb2.ServerReflectionRequest(file_containing_symbol=name))
        answer = await stream.read()
        if answer.HasField("error_response"):
            raise LookupError(f"reflection does not describe {name}: {answer.error_response}")
        for serialized in answer.file_descriptor_response.file_descriptor_proto:
            file = descriptor_pb2.FileDescriptorProto.FromString(serialized)
            files[file.name] = file
    await stream.done_writing()
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    for name in files:
        _add_with_dependencies(pool, files, name, added)
    rpcs, unsupported = [], []
    for name in names:
        for method in pool.FindServiceByName(name).methods:
            rpc = Rpc(name, method)
            if method.client_streaming:
                unsupported.append(rpc.path)
            else:
                rpcs.append(rpc)
    return Catalog(tuple(rpcs), tuple(unsupported))


def _add_with_dependencies(pool, files, name: str, added: set[str]) -> None:
    if name in added:
        return
    if name not in files:
        raise LookupError(f"reflection sent no descriptor for {name}")
    for dependency in files[name].dependency:
        _add_with_dependencies(pool, files, dependency, added)
    pool.Add(files[name])
    added.add(name)


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    message: str = ""
    details_size: int = 0  # bytes of grpc-status-details-bin
    details_code: int | None = None  # the code inside those details, when there are any
    reason: str = ""  # the ErrorInfo reason, when the service gave one

    @property
    def error_size(self) -> int:
        return len(self.message.encode("utf-8", "replace")) + self.details_size

    def __str__(self) -> str:
        reason = f" [{self.reason}]" if self.reason else ""
        message = self.message if len(self.message) <= 300 else f"{self.message[:300]}…"
        return f"{self.code.name}{reason} {message!r} ({self.error_size} bytes of error)"


def _as_is(payload: bytes) -> bytes:
    return payload


async def send(channel: grpc.aio.Channel, rpc: Rpc, payload: bytes, timeout: float) -> Outcome:
    """Sends raw request bytes. A stream is read up to its first message (then
    cancelled: it is working) or its status, whichever comes first."""
    response_class = message_factory.GetMessageClass(rpc.method.output_type)
    try:
        if not rpc.streaming:
            call = channel.unary_unary(
                rpc.path, request_serializer=_as_is, response_deserializer=response_class.FromString
            )
            await call(payload, timeout=timeout)
            return Outcome(grpc.StatusCode.OK)
        stream = channel.unary_stream(
            rpc.path, request_serializer=_as_is, response_deserializer=response_class.FromString
        )(payload, timeout=timeout)
        first = await stream.read()
        if first is grpc.aio.EOF:
            return Outcome(await stream.code(), await stream.details() or "")
        stream.cancel()
        return Outcome(grpc.StatusCode.OK)
    except grpc.aio.AioRpcError as error:
        return _failure(error)


def _failure(error: grpc.aio.AioRpcError) -> Outcome:
    details = b""
    for key, value in error.trailing_metadata() or ():
        if key == DETAILS_KEY:
            details = value
    if not details:
        return Outcome(error.code(), error.details() or "")
    status = status_pb2.Status.FromString(details)
    reason = ""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
    return Outcome(error.code(), error.details() or "", len(details), status.code, reason)


async def serving(channel: grpc.aio.Channel, service: str = "", timeout: float = 5.0) -> bool:
    """True when the health service answers SERVING for `service` ("": the server)."""
    try:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
    except grpc.aio.AioRpcError:
        return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


async def problems(
    outcome: Outcome, rpc: Rpc, upstreams_up: Callable[[], Awaitable[bool]]
) -> list[str]:
    """What is wrong with an answer; empty when it is acceptable."""
    found = []
    code = outcome.code
    if outcome.details_code is not None and outcome.details_code != code.value[0]:
        # grpc replaced the service's answer, e.g. with RESOURCE_EXHAUSTED for metadata
        # past its size limit while the details of the original error still arrived.
        said = CODE_NAMES.get(outcome.details_code, outcome.details_code)
        found.append(f"{code.name} though the service's status details say {said}")
    if code == grpc.StatusCode.UNAVAILABLE:
        # Only an unreachable dependency excuses it, or a deliberate "try again"
        # whose reason does not claim a dependency is down when it is up.
        deliberate = outcome.reason and not outcome.reason.endswith("_UNAVAILABLE")
        if not deliberate and await upstreams_up():
            found.append("UNAVAILABLE while every upstream is SERVING")
    elif code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        # A quota the service enforces names its reason; grpc's own (metadata or
        # message too large) has none.
        if not outcome.reason:
            found.append("RESOURCE_EXHAUSTED from the transport, not from the service")
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        if not rpc.streaming:
            found.append("no answer before the deadline")
    elif code not in ALLOWED:
        found.append(f"{code.name} is never an acceptable answer")
    if outcome.error_size > MAX_ERROR_BYTES:
        found.append(f"the error is {outcome.error_size} bytes (limit {MAX_ERROR_BYTES})")
    return found


async def send_all(
    channel: grpc.aio.Channel, rpc: Rpc, payloads: list[bytes], timeout: float
) -> list[Outcome]:
    """Unary calls one after another (each may change state the next one sees, in
    the same order every run); streams only read, so they wait out their window together."""
    if rpc.streaming:
        return list(
            await asyncio.gather(*(send(channel, rpc, payload, timeout) for payload in payloads))
        )
    return [await send(channel, rpc, payload, timeout) for payload in payloads]
