"""Errors a use case raises; the gRPC layer turns them into rich statuses.

Pure Python so domains and services can raise them without importing grpc.
`reason` is the UPPER_SNAKE ErrorInfo reason clients branch on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str


class ServiceError(Exception):
    status_name = "UNKNOWN"

    def __init__(self, reason: str, message: str, metadata: Mapping[str, str] | None = None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata = {key: str(value) for key, value in (metadata or {}).items()}


class InvalidArgument(ServiceError):
    status_name = "INVALID_ARGUMENT"

    def __init__(
        self,
        violations: Iterable[FieldViolation],
        reason: str = "INVALID_ARGUMENT",
        message: str | None = None,
    ):
        self.violations = list(violations)
        summary = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(reason, message or f"invalid request: {summary}")


class NotFound(ServiceError):
    status_name = "NOT_FOUND"


class AlreadyExists(ServiceError):
    status_name = "ALREADY_EXISTS"


class FailedPrecondition(ServiceError):
    status_name = "FAILED_PRECONDITION"


class PermissionDenied(ServiceError):
    status_name = "PERMISSION_DENIED"


class Unauthenticated(ServiceError):
    status_name = "UNAUTHENTICATED"


class ResourceExhausted(ServiceError):
    status_name = "RESOURCE_EXHAUSTED"


class Unavailable(ServiceError):
    status_name = "UNAVAILABLE"


class Violations:
    """Collects field violations so one response names every bad field at once."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def check(self, ok: bool, field: str, description: str) -> bool:
        if not ok:
            self.add(field, description)
        return ok

    def raise_if_any(self, reason: str = "INVALID_ARGUMENT") -> None:
        if self.items:
            raise InvalidArgument(self.items, reason=reason)
