"""The one way a test expects a refused call: its status code and ErrorInfo reason."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from services.kit.status import error_info

# Far beyond any answer's time on a busy machine: a hang fails here, not after 300 s.
CALL_DEADLINE_SECONDS = 30.0


async def expect_error(call, code, reason=None) -> grpc.aio.AioRpcError:
    """Awaits `call` (a gRPC call or any awaitable making one), which must fail with
    `code` and, when given, the ErrorInfo `reason`; returns the error to look into."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await asyncio.wait_for(call, CALL_DEADLINE_SECONDS)
    error = raised.value
    assert error.code() == code, (error.code(), error.details())
    if reason is not None:
        info = error_info(error)
        assert info is not None and info.reason == reason, (info, error.details())
    return error
