"""ServiceError -> google.rpc.Status with ErrorInfo and BadRequest details, and back."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.kit.errors import InvalidArgument, ServiceError
from services.kit.text import clipped

ERROR_DOMAIN = "loyalty.arcade"
# Status details travel as trailing metadata, which clients cap (8 KiB by default
# in grpcio): whatever a use case put in an error, the status stays well inside.
MAX_MESSAGE = 1_000
MAX_DETAIL_TEXT = 300
MAX_VIOLATIONS = 20


def to_rpc_status(error: ServiceError) -> grpc.Status:
    return rpc_status.to_status(status_message(error))


def status_message(error: ServiceError) -> status_pb2.Status:
    """The google.rpc.Status of `error`, as a message (a stream carries it in an answer)."""
    details = []
    info = error_details_pb2.ErrorInfo(
        reason=error.reason,
        domain=ERROR_DOMAIN,
        metadata={
            clipped(key, MAX_DETAIL_TEXT): clipped(value, MAX_DETAIL_TEXT)
            for key, value in error.metadata.items()
        },
    )
    details.append(_pack(info))
    if isinstance(error, InvalidArgument):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=clipped(violation.field, MAX_DETAIL_TEXT),
                    description=clipped(violation.description, MAX_DETAIL_TEXT),
                )
                for violation in error.violations[:MAX_VIOLATIONS]
            ]
        )
        details.append(_pack(bad_request))
    return status_pb2.Status(
        code=code_pb2.Code.Value(error.status_name),
        message=clipped(error.message, MAX_MESSAGE),
        details=details,
    )


def _pack(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def error_info(error: grpc.aio.AioRpcError | grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo a peer attached to a failed call, for branching on its reason."""
    status = rpc_status.from_call(error)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def field_violations(error: grpc.aio.AioRpcError | grpc.RpcError) -> dict[str, str]:
    """field -> description from a peer's BadRequest detail."""
    status = rpc_status.from_call(error)
    found: dict[str, str] = {}
    if status is None:
        return found
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            found.update({v.field: v.description for v in bad_request.field_violations})
    return found
