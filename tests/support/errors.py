"""What a refused call says: one way for every test to expect an error."""

from __future__ import annotations

import grpc
import pytest

from services.kit.status import error_info


async def expect_error(call, code, reason=None) -> grpc.aio.AioRpcError:
    """Await `call` (a pending RPC or any awaitable making one), which must fail
    with status `code` and, when `reason` is given, that ErrorInfo reason; returns
    the error to look further (services.kit.status.field_violations, ...)."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    error = raised.value
    assert error.code() == code, (error.code(), error.details())
    if reason is not None:
        info = error_info(error)
        assert info is not None, error.details()
        assert info.reason == reason, (info.reason, error.details())
    return error
