"""Errors as the gateway sends them: a clear code and message with the
google.rpc details (ErrorInfo reason, BadRequest field violations...), readable
on every protocol, and the translation of upstream failures.

Over Connect JSON each detail carries `debug`, the detail as JSON, beside its
base64 `value`, so a person with curl reads the reason and the field violations.
"""

from __future__ import annotations

import base64
import difflib
import json
import urllib.parse
from collections.abc import Iterable, Mapping

import grpc
import structlog
from connectrpc.code import Code
from connectrpc.errors import ConnectError, ErrorDetail
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from protobuf import message_to_json_value
from protobuf.wkt import Any as WireAny
from protobuf.wkt import FileDescriptorSet as WireFileDescriptorSet

from services.gateway.descriptors import descriptor_set
from services.gateway.service import RateLimited
from services.kit.errors import ServiceError
from services.kit.status import ERROR_DOMAIN, error_info, to_rpc_status

log = structlog.get_logger()

GRPC_STATUS_DETAILS_KEY = "grpc-status-details-bin"
# Upstream statuses whose message and details may reach clients: the rest
# (INTERNAL, UNKNOWN, DATA_LOSS...) could carry internal detail.
PASSED_THROUGH = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)
# What the client hears when an upstream fails in a way that must not leak.
UPSTREAM_FAILURES = {
    grpc.StatusCode.UNAVAILABLE: (Code.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", "is unavailable"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (
        Code.DEADLINE_EXCEEDED,
        "UPSTREAM_DEADLINE_EXCEEDED",
        "did not answer in time",
    ),
    grpc.StatusCode.CANCELLED: (Code.CANCELED, "UPSTREAM_CANCELLED", "cancelled the call"),
    grpc.StatusCode.UNIMPLEMENTED: (
        Code.UNIMPLEMENTED,
        "UPSTREAM_UNIMPLEMENTED",
        "lacks this call",
    ),
}

# A misspelling is short; a longer client string is not compared with the names.
MAX_GUESSED = 100

# connectrpc writes a detail's `debug` only when the ErrorDetail holds a message
# of its own protobuf runtime (protobuf-py); from a packed Any it sends the
# base64 value alone, and the google.protobuf messages grpcio uses are another
# runtime. protobuf-py's public FileDescriptorSet.to_registry() turns
# descriptors into message types, so every google.rpc detail type is registered
# once, from the same google.protobuf descriptors, and each detail is unpacked
# into it. No private module of either library is touched, and a detail of a type
# outside the registry still travels, as its value without debug.
_DETAIL_TYPES = WireFileDescriptorSet.from_binary(
    descriptor_set(error_details_pb2.DESCRIPTOR).SerializeToString()
).to_registry()


def did_you_mean(given: str, choices: Iterable[str]) -> str:
    """A hint naming the choice closest to a misspelling (compared without case or
    underscores, so memberid finds memberId), or nothing."""
    if len(given) > MAX_GUESSED:
        return ""
    folded = {choice.lower().replace("_", ""): choice for choice in choices}
    guess = difflib.get_close_matches(given.lower().replace("_", ""), folded, n=1)
    return f"did you mean {folded[guess[0]]!r}? " if guess else ""


def error_detail(packed: any_pb2.Any) -> ErrorDetail:
    """One google.rpc detail as connectrpc sends it, with its JSON when its type is known."""
    wire = WireAny(type_url=packed.type_url, value=packed.value)
    message_type = _DETAIL_TYPES.message(packed.TypeName())
    if message_type is None:
        return ErrorDetail(wire)
    try:
        message = wire.unpack(message_type)
    except ValueError:  # bytes that do not parse as their type: pass them on as they are
        return ErrorDetail(wire)
    return ErrorDetail(wire if message is None else message)


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def code_of(grpc_code: int) -> Code:
    name = code_pb2.Code.Name(grpc_code)
    return Code.CANCELED if name == "CANCELLED" else Code[name]


def grpc_code_name(code: Code) -> str:
    """The gRPC spelling of a Connect code (CANCELED is CANCELLED there)."""
    return "CANCELLED" if code is Code.CANCELED else code.name


def grpc_code_of(code: Code) -> int:
    return code_pb2.Code.Value(grpc_code_name(code))


def status_error(status: status_pb2.Status) -> ConnectError:
    """A google.rpc.Status (code, message, details) as a ConnectError."""
    details = [error_detail(packed) for packed in status.details]
    return ConnectError(code_of(status.code), status.message, details)


def connect_error(error: ServiceError) -> ConnectError:
    """The kit's rich status (ErrorInfo, BadRequest) for a gateway refusal; a rate
    limit also says when to come back in a RetryInfo, which gRPC clients honour."""
    trailers = dict(to_rpc_status(error).trailing_metadata)
    status = status_pb2.Status.FromString(trailers[GRPC_STATUS_DETAILS_KEY])
    if isinstance(error, RateLimited):
        delay = duration_pb2.Duration(seconds=error.retry_after)
        status.details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    return status_error(status)


def failure(
    code: Code, reason: str, message: str, metadata: Mapping[str, str] | None = None
) -> ConnectError:
    """A gateway refusal with its ErrorInfo reason."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)
    return ConnectError(code, message, [error_detail(_pack(info))])


def upstream_error(upstream: str, error: grpc.aio.AioRpcError) -> ConnectError:
    """An upstream's refusal with its ErrorInfo reason kept; failures that could
    leak internal detail become a generic status naming only the upstream."""
    code = error.code()
    info = error_info(error)
    status = rpc_status.from_call(error)
    if code in PASSED_THROUGH and status is not None and info and info.domain == ERROR_DOMAIN:
        return status_error(status)
    log.warning("upstream_failed", upstream=upstream, code=code.name, detail=error.details())
    connect_code, reason, what = UPSTREAM_FAILURES.get(
        code, (Code.INTERNAL, "UPSTREAM_FAILED", "failed")
    )
    return failure(connect_code, reason, f"the {upstream} service {what}")


def as_connect_error(error: Exception) -> ConnectError:
    """The last line: whatever failed becomes a clear status, never a traceback to the client."""
    if isinstance(error, ConnectError):
        return error
    if isinstance(error, ServiceError):
        log.info("rpc_rejected", code=error.status_name, reason=error.reason)
        return connect_error(error)
    log.error("rpc_internal_error", exc_info=error)
    return failure(Code.INTERNAL, "INTERNAL", "internal error; see the gateway log")


# Written by the gateway itself, for requests that never reach a handler --------


def connect_error_body(error: ConnectError) -> bytes:
    """The Connect protocol's JSON error body, with each detail's debug JSON as
    connectrpc writes it for handlers' errors."""
    details = []
    for detail in error.details:
        entry = {
            "type": detail.type_name,
            # Connect sends base64 without padding.
            "value": base64.b64encode(detail.message_bytes).decode().rstrip("="),
        }
        message = detail.value()
        if message is not None:
            entry["debug"] = message_to_json_value(message)
        details.append(entry)
    body = {"code": error.code.value, "message": error.message, "details": details}
    return json.dumps(body, ensure_ascii=False).encode()


def grpc_status_headers(error: ConnectError) -> list[tuple[bytes, bytes]]:
    """A gRPC status as the headers of a trailers-only response, which gRPC and
    gRPC-Web clients read like any status (grpcurl prints its message)."""
    code = grpc_code_of(error.code)
    status = status_pb2.Status(
        code=code,
        message=error.message,
        details=[
            any_pb2.Any(type_url=f"type.googleapis.com/{d.type_name}", value=d.message_bytes)
            for d in error.details
        ],
    )
    return [
        (b"grpc-status", str(code).encode()),
        (b"grpc-message", urllib.parse.quote(error.message, safe="").encode()),
        (
            GRPC_STATUS_DETAILS_KEY.encode(),
            base64.b64encode(status.SerializeToString()).rstrip(b"="),
        ),
    ]
