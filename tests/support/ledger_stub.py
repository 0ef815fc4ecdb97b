"""A real ledger without a network: the ledger's own servicer over a temporary
store, behind the methods of a LedgerServiceStub, for service tests that run a
service's use cases with no gRPC at all. Its answers are the ledger's, and a
test can make it unreachable."""

from __future__ import annotations

import grpc

from services.kit.clock import Clock
from services.kit.errors import ServiceError
from services.kit.feeds import CommitSignal
from services.kit.status import to_rpc_status
from services.ledger.service import LedgerService
from services.ledger.servicer import LedgerServicer
from services.ledger.store import LedgerStore

STATUS_CODES = {code.name: code for code in grpc.StatusCode}


def _rpc_error(code: grpc.StatusCode, details: str, trailing=()) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailing), details=details
    )


class InProcessLedger:
    """Open with `await ledger.open()`; `reachable = False` makes every call
    UNAVAILABLE, and `refuse_next[method] = code` fails that method's next call
    with `code` (INVALID_ARGUMENT, say) before the ledger sees it."""

    def __init__(self, path, clock: Clock) -> None:
        self.store = LedgerStore(path)
        self._servicer = LedgerServicer(LedgerService(self.store, clock, CommitSignal()))
        self.reachable = True
        self.refuse_next: dict[str, grpc.StatusCode] = {}
        self.calls: list[str] = []

    async def open(self) -> None:
        await self.store.open()

    async def close(self) -> None:
        await self.store.close()

    def __getattr__(self, method: str):
        if not method[:1].isupper():
            raise AttributeError(method)
        handler = getattr(self._servicer, method)

        async def call(request, timeout=None, **_):
            self.calls.append(method)
            if not self.reachable:
                raise _rpc_error(grpc.StatusCode.UNAVAILABLE, "the ledger is unreachable")
            if method in self.refuse_next:
                raise _rpc_error(self.refuse_next.pop(method), "refused by the test")
            try:
                return await handler(request, None)
            except ServiceError as error:
                status = to_rpc_status(error)
                raise _rpc_error(
                    STATUS_CODES[error.status_name], error.message, status.trailing_metadata
                ) from error

        return call
