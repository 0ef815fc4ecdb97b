"""PostTransfers calls made at the same time, sent to the ledger as one.

A ledger call costs far more than a transfer in it (the ledger bench: about
450 µs of CPU per call against about 75 µs per transfer of a batch), so a
service whose requests each post a few transfers, many at once, sends what
queued while the previous batch was in flight as the next batch, as the
ledger's own writer groups its commits. Each caller's chain stays its own: a
chain ends with an unlinked transfer, so chains in one batch commit or fail
independently, and each caller gets the results of its own transfers, in its
own order. A batch the ledger refuses as malformed (INVALID_ARGUMENT) is sent
again request by request, so one bad request cannot fail the others; any other
error goes to every caller of the batch, whose own retries then apply.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

MAX_TRANSFERS = 1000
# Batches in flight at once. One: what queues during a round trip leaves as the
# next batch, as the ledger's writer groups commits. More overlap round trips
# (fewer calls waiting a whole one for their turn) for smaller batches; not
# measured yet on a quiet machine, so 1.
IN_FLIGHT = 1


@dataclass(slots=True)
class _Waiting:
    request: ledger_pb.PostTransfersRequest
    timeout: float | None
    future: asyncio.Future[ledger_pb.PostTransfersResponse]


class BatchingLedger:
    """Stands in for a LedgerServiceStub: PostTransfers is batched, every other
    method is the stub's own."""

    def __init__(
        self,
        stub: ledger_grpc.LedgerServiceStub,
        max_transfers: int = MAX_TRANSFERS,
        in_flight: int = IN_FLIGHT,
    ) -> None:
        self._stub = stub
        self._max = max_transfers
        self._in_flight = in_flight
        self._queue: list[_Waiting] = []
        self._senders: set[asyncio.Task[None]] = set()

    def __getattr__(self, name: str):
        return getattr(self._stub, name)

    async def PostTransfers(
        self, request: ledger_pb.PostTransfersRequest, timeout: float | None = None, **_
    ) -> ledger_pb.PostTransfersResponse:
        waiting = _Waiting(request, timeout, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        self._start_sender()
        return await waiting.future

    def _start_sender(self) -> None:
        if self._queue and len(self._senders) < self._in_flight:
            sender = asyncio.create_task(self._send_queued())
            self._senders.add(sender)
            sender.add_done_callback(self._sender_done)

    def _sender_done(self, sender: asyncio.Task[None]) -> None:
        self._senders.discard(sender)
        self._start_sender()

    async def _send_queued(self) -> None:
        batch, count = [], 0
        while self._queue and (
            not batch or count + len(self._queue[0].request.transfers) <= self._max
        ):
            waiting = self._queue.pop(0)
            batch.append(waiting)
            count += len(waiting.request.transfers)
        await self._send(batch)

    async def _send(self, batch: list[_Waiting]) -> None:
        live = [waiting for waiting in batch if not waiting.future.done()]
        if not live:
            return
        timeouts = [w.timeout for w in live if w.timeout is not None]
        timeout = min(timeouts) if timeouts else None
        merged = ledger_pb.PostTransfersRequest(
            transfers=[transfer for w in live for transfer in w.request.transfers]
        )
        try:
            response = await self._stub.PostTransfers(merged, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.INVALID_ARGUMENT and len(live) > 1:
                for waiting in live:
                    await self._send([waiting])
                return
            for waiting in live:
                if not waiting.future.done():
                    waiting.future.set_exception(error)
            return
        except Exception as error:  # a closed channel, a cancelled call: each caller hears it
            for waiting in live:
                if not waiting.future.done():
                    waiting.future.set_exception(error)
            return
        offset = 0
        for waiting in live:
            size = len(waiting.request.transfers)
            results = list(response.results[offset : offset + size])
            for index, result in enumerate(results):
                result.index = index
            offset += size
            if not waiting.future.done():
                waiting.future.set_result(ledger_pb.PostTransfersResponse(results=results))
