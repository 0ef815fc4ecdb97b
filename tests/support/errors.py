"""Reading a refused call: its status, ErrorInfo reason and field violations."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest

from services.kit.status import error_info, field_violations


@dataclass(frozen=True)
class Rejection:
    reason: str
    violations: dict[str, str]
    error: grpc.aio.AioRpcError


async def rejected(call, code: grpc.StatusCode, reason: str | None = None) -> Rejection:
    """The refusal of a call that must fail with `code` (and `reason`, when given)."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == code, raised.value.details()
    info = error_info(raised.value)
    assert info is not None, raised.value.details()
    if reason is not None:
        assert info.reason == reason, (info.reason, raised.value.details())
    return Rejection(info.reason, field_violations(raised.value), raised.value)
