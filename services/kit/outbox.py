"""Local intent first, then the ledger: nothing is lost or posted twice when a
process dies between recording a decision and posting it.

A service records the PostTransfersRequest it intends in the same transaction
as its own domain row (`record`), then posts it (`settle`). The transfer ids in
the request are idempotency keys, so posting again after a crash, or twice from
two tasks, commits once. `settle_pending` finishes what was recorded but not settled.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
import structlog
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.kit.clock import MICROS_PER_SECOND, Clock
from services.kit.errors import Unavailable
from services.kit.outgoing import call_with_retry
from services.kit.sqlite import GroupCommitWriter

log = structlog.get_logger()

OUTBOX_MIGRATION = """
CREATE TABLE ledger_outbox (
  entry_id TEXT PRIMARY KEY,
  request BLOB NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'settled', 'failed')),
  created_at INTEGER NOT NULL,
  settled_at INTEGER,
  response BLOB,
  error TEXT
);
CREATE INDEX ledger_outbox_pending ON ledger_outbox (created_at) WHERE state = 'pending';
"""

ACCEPTED = (
    ledger_pb.TRANSFER_RESULT_CODE_OK,
    ledger_pb.TRANSFER_RESULT_CODE_EXISTS,
)


def all_accepted(response: ledger_pb.PostTransfersResponse) -> bool:
    """True when every transfer committed (now or on an earlier attempt)."""
    return all(result.code in ACCEPTED for result in response.results)


@dataclass(frozen=True, slots=True)
class Settled:
    entry_id: str
    request: ledger_pb.PostTransfersRequest
    response: ledger_pb.PostTransfersResponse


SettledHandler = Callable[[Settled], Awaitable[None]]


class LedgerOutbox:
    def __init__(
        self,
        writer: GroupCommitWriter,
        ledger: ledger_grpc.LedgerServiceStub,
        clock: Clock,
        timeout: float = 2.0,
        attempts: int = 3,
    ) -> None:
        self._writer = writer
        self._ledger = ledger
        self._clock = clock
        self._timeout = timeout
        self._attempts = attempts

    @staticmethod
    def record(
        connection: sqlite3.Connection,
        entry_id: str,
        request: ledger_pb.PostTransfersRequest,
        now_us: int,
    ) -> None:
        """Call inside the writer work that stores the decision, so both commit together."""
        connection.execute(
            "INSERT INTO ledger_outbox (entry_id, request, state, created_at)"
            " VALUES (?, ?, 'pending', ?)",
            (entry_id, request.SerializeToString(), now_us),
        )

    async def settle(
        self, entry_id: str, request: ledger_pb.PostTransfersRequest
    ) -> ledger_pb.PostTransfersResponse:
        """Post the recorded request; UNAVAILABLE when the ledger cannot be reached
        (the entry stays pending and is settled later)."""
        try:
            response = await call_with_retry(
                self._ledger.PostTransfers,
                request,
                deadline=self._timeout,
                attempts=self._attempts,
            )
        except grpc.aio.AioRpcError as error:
            # Only a malformed request is a final answer. Anything else (a ledger
            # shutting down cancels calls in flight) leaves the outcome unknown,
            # and posting the same ids again later is always safe.
            if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
                log.warning("outbox_post_deferred", entry_id=entry_id, code=error.code().name)
                raise Unavailable(
                    "LEDGER_UNAVAILABLE",
                    f"the ledger did not settle the request ({error.code().name}); "
                    "it is retried shortly",
                ) from error
            reason = f"{error.code().name}: {error.details()}"
            await self._writer.submit(
                lambda connection: self._mark(connection, entry_id, "failed", None, reason)
            )
            log.error("outbox_post_failed", entry_id=entry_id, code=error.code().name)
            raise
        await self._writer.submit(
            lambda connection: self._mark(connection, entry_id, "settled", response, None)
        )
        return response

    def _mark(self, connection, entry_id, state, response, error) -> None:
        connection.execute(
            "UPDATE ledger_outbox SET state = ?, settled_at = ?, response = ?, error = ?"
            " WHERE entry_id = ? AND state = 'pending'",
            (
                state,
                self._clock.now_us(),
                response.SerializeToString() if response is not None else None,
                error,
                entry_id,
            ),
        )

    async def pending(self, limit: int = 500) -> list[tuple[str, ledger_pb.PostTransfersRequest]]:
        rows = await self._writer.submit(
            lambda connection: connection.execute(
                "SELECT entry_id, request FROM ledger_outbox WHERE state = 'pending'"
                " ORDER BY created_at LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [
            (entry_id, ledger_pb.PostTransfersRequest.FromString(raw)) for entry_id, raw in rows
        ]

    async def settle_pending(self, on_settled: SettledHandler) -> int:
        """Settle every pending entry, oldest first; on_settled applies what each
        settlement means to the service's own rows. Returns how many settled."""
        settled = 0
        while batch := await self.pending():
            for entry_id, request in batch:
                try:
                    response = await self.settle(entry_id, request)
                except Unavailable:
                    return settled
                except grpc.aio.AioRpcError:
                    continue
                await on_settled(Settled(entry_id, request, response))
                settled += 1
        if settled:
            log.info("outbox_recovered", settled=settled)
        return settled

    async def relay(self, on_settled: SettledHandler, interval_seconds: float = 1.0) -> None:
        """Background loop: settle what is pending, then wait by the injected clock."""
        while True:
            try:
                await self.settle_pending(on_settled)
            except Exception:
                log.exception("outbox_relay_failed")
            await self._clock.sleep_until(
                self._clock.now_us() + int(interval_seconds * MICROS_PER_SECOND)
            )
