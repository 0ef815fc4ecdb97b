"""Posting to the ledger: one interface, over PostTransfersStream or unary calls.

A service that posts all the time keeps one PostTransfersStream per channel open
(`StreamPoster`): on this 2-core machine one stream carries several times the
requests per second of unary calls, whose per-call cost in grpcio dominates.
The rules are the unary call's:

- a request is idempotent by its transfer ids, so it may always be sent again;
- a lost stream is a lost answer, not a lost transfer: a request whose answer
  never came is UNAVAILABLE to its caller (who retries with the same ids, or
  leaves it to the outbox's relay), never a guess;
- the ledger's refusal of a request (INVALID_ARGUMENT, ...) reaches the caller as
  the same grpc.aio.AioRpcError, rich status details included, as a unary call's;
- a deadline on every request (DEADLINE_EXCEEDED when it passes);
- the stream is opened on first use and again after it ends; while it cannot be
  opened, and for ever against a ledger without the stream (UNIMPLEMENTED),
  requests go through unary PostTransfers;
- what callers queue while the stream writes leaves as one merged message, each
  caller's chain its own, and each caller gets its own results (`_Stream`).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import grpc
import structlog
from google.rpc import status_pb2
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

log = structlog.get_logger()

STATUS_DETAILS_KEY = "grpc-status-details-bin"
# After the stream failed to open, unary calls carry the requests this long
# before the stream is tried again.
REOPEN_AFTER_SECONDS = 1.0
# Transfers in one merged message at most (the ledger takes 8,000 per request).
MAX_MERGED_TRANSFERS = 1000


@runtime_checkable
class LedgerPoster(Protocol):
    """What posting to the ledger needs: the unary call's contract."""

    async def post(
        self, request: ledger_pb.PostTransfersRequest, *, timeout: float
    ) -> ledger_pb.PostTransfersResponse: ...

    async def close(self) -> None: ...


class UnaryPoster:
    """PostTransfers, one call per request."""

    def __init__(self, stub: ledger_grpc.LedgerServiceStub) -> None:
        self._stub = stub

    async def post(
        self, request: ledger_pb.PostTransfersRequest, *, timeout: float
    ) -> ledger_pb.PostTransfersResponse:
        return await self._stub.PostTransfers(request, timeout=timeout)

    async def close(self) -> None:
        """Nothing of its own to release: the channel is its owner's."""


def poster_of(
    ledger: LedgerPoster | ledger_grpc.LedgerServiceStub, *, streaming: bool = False
) -> LedgerPoster:
    """A poster as given, or one over a stub: a shared PostTransfersStream
    (`streaming`, what a service posting all the time uses) or unary calls."""
    if isinstance(ledger, LedgerPoster):
        return ledger
    return StreamPoster(ledger) if streaming else UnaryPoster(ledger)


def rpc_error(
    code: grpc.StatusCode, details: str, status: bytes | None = None
) -> grpc.aio.AioRpcError:
    """The error a unary call would have raised (with its status details, if any)."""
    trailing = grpc.aio.Metadata((STATUS_DETAILS_KEY, status)) if status else grpc.aio.Metadata()
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details=details)


def _refusal(status_bytes: bytes) -> grpc.aio.AioRpcError:
    try:
        status = status_pb2.Status.FromString(status_bytes)
        code = next(c for c in grpc.StatusCode if c.value[0] == status.code)
    except Exception:  # an answer we cannot read is no answer
        return rpc_error(grpc.StatusCode.UNKNOWN, "the ledger's refusal did not parse")
    return rpc_error(code, status.message, status_bytes)


@dataclass(slots=True)
class _Part:
    """A caller's request inside a merged message: its answer is its slice."""

    correlation_id: str
    size: int
    message: ledger_pb.PostTransfersStreamRequest


def _merges(
    message: ledger_pb.PostTransfersStreamRequest, ids: set[str], size: int, limit: int
) -> bool:
    """Whether `message` may join a merged message holding `ids` (`size` transfers):
    its chain ends there (a trailing linked transfer would link into the next
    caller's chain), it fits, and it names none of those transfers (a reversal or a
    hold's post of a transfer of the same batch is the ledger's own next batch)."""
    transfers = message.request.transfers
    if not transfers or transfers[-1].linked or size + len(transfers) > limit:
        return False
    return not any(
        t.id in ids or t.reverses_transfer_id in ids or t.pending_id in ids for t in transfers
    )


class _Stream:
    """One open PostTransfersStream call and the requests waiting for its answers.

    What callers queue while a write is in flight leaves as one message (a merged
    PostTransfersRequest, each caller's chain its own): the ledger's cost is per
    message far more than per transfer, so under load a stream carries batches,
    as a group commit does. The merged answer is split back by position; a merged
    message refused whole (INVALID_ARGUMENT: one caller's request is malformed) is
    sent again request by request, so only that caller hears the refusal."""

    def __init__(self, call, max_merged: int) -> None:
        self.call = call
        self.waiting: dict[str, asyncio.Future[ledger_pb.PostTransfersResponse]] = {}
        self.ended = False
        self._max_merged = max_merged
        self._merged: dict[str, list[_Part]] = {}
        self._merged_ids = itertools.count(1)
        # Requests sent again alone after their merged message was refused.
        self._alone: set[str] = set()
        # grpc.aio takes one write at a time on a call, and a write cancelled halfway
        # (a caller's deadline) would leave the call unusable: one task writes, and
        # callers only wait, with their deadline, for their answers.
        self._outgoing: deque[ledger_pb.PostTransfersStreamRequest] = deque()
        self._queued = asyncio.Event()
        self.writer = asyncio.create_task(self._write(), name="ledger-stream-writer")
        self.reader = asyncio.create_task(self._read(), name="ledger-stream-reader")

    def send(self, message: ledger_pb.PostTransfersStreamRequest) -> None:
        self._outgoing.append(message)
        self._queued.set()

    def _next(self) -> ledger_pb.PostTransfersStreamRequest | None:
        """The next message to write: a caller's own, or several callers' merged."""
        outgoing, waiting = self._outgoing, self.waiting
        parts: list[_Part] = []
        ids: set[str] = set()
        size = 0
        while outgoing:
            message = outgoing[0]
            if message.correlation_id not in waiting:  # given up on: nobody waits
                outgoing.popleft()
                self._alone.discard(message.correlation_id)
                continue
            alone = message.correlation_id in self._alone or not _merges(
                message, ids, size, self._max_merged
            )
            if parts and alone:
                break
            outgoing.popleft()
            parts.append(_Part(message.correlation_id, len(message.request.transfers), message))
            if alone:
                break
            size += len(message.request.transfers)
            ids.update(t.id for t in message.request.transfers)
        if len(parts) <= 1:
            return parts[0].message if parts else None
        merged_id = f"merged:{next(self._merged_ids)}"
        self._merged[merged_id] = parts
        request = ledger_pb.PostTransfersRequest()
        for part in parts:
            request.transfers.extend(part.message.request.transfers)
        return ledger_pb.PostTransfersStreamRequest(correlation_id=merged_id, request=request)

    async def _write(self) -> None:
        try:
            while True:
                message = self._next()
                if message is None:
                    self._queued.clear()
                    await self._queued.wait()
                    continue
                await self.call.write(message)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as error:
            self.end(f"the stream to the ledger ended while writing ({type(error).__name__})")
        except Exception:  # a bug of ours: no caller waits for a deadline over it
            log.exception("ledger_stream_writer_failed")
            self.call.cancel()
            self.end("the stream to the ledger broke while writing")

    async def _read(self) -> None:
        why = "the stream to the ledger ended before this answer came"
        try:
            while True:
                answer = await self.call.read()
                if answer is grpc.aio.EOF:
                    break
                parts = self._merged.pop(answer.correlation_id, None)
                if parts is not None:
                    self._split(parts, answer)
                elif answer.WhichOneof("outcome") == "response":
                    self._answer(answer.correlation_id, answer.response)
                else:
                    self._answer(answer.correlation_id, _refusal(answer.error))
        except grpc.aio.AioRpcError as error:
            why = f"the stream to the ledger failed ({error.code().name}) before this answer came"
        except asyncio.CancelledError:
            why = "the stream to the ledger was closed before this answer came"
            raise
        finally:
            self.end(why)
            self.writer.cancel()

    def _answer(
        self,
        correlation_id: str,
        outcome: ledger_pb.PostTransfersResponse | grpc.aio.AioRpcError,
    ) -> None:
        self._alone.discard(correlation_id)
        future = self.waiting.pop(correlation_id, None)
        if future is None or future.done():
            return  # its caller gave up (deadline): nobody waits for it
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    def _split(self, parts: list[_Part], answer: ledger_pb.PostTransfersStreamResponse) -> None:
        if answer.WhichOneof("outcome") == "response":
            results = answer.response.results
            offset = 0
            for part in parts:
                own = ledger_pb.PostTransfersResponse(results=results[offset : offset + part.size])
                for index, result in enumerate(own.results):
                    result.index = index
                offset += part.size
                self._answer(part.correlation_id, own)
            return
        refusal = _refusal(answer.error)
        if refusal.code() != grpc.StatusCode.INVALID_ARGUMENT:
            for part in parts:
                self._answer(part.correlation_id, refusal)
            return
        for part in reversed(parts):  # first in line again, in their order
            self._alone.add(part.correlation_id)
            self._outgoing.appendleft(part.message)
        self._queued.set()

    def end(self, why: str) -> None:
        """Every request still waiting gets UNAVAILABLE: its outcome is unknown."""
        self.ended = True
        waiting, self.waiting = self.waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(rpc_error(grpc.StatusCode.UNAVAILABLE, why))


class StreamPoster:
    """PostTransfers over one PostTransfersStream of this stub's channel."""

    def __init__(
        self,
        stub: ledger_grpc.LedgerServiceStub,
        reopen_after_seconds: float = REOPEN_AFTER_SECONDS,
        max_merged_transfers: int = MAX_MERGED_TRANSFERS,
    ) -> None:
        self._stub = stub
        self._reopen_after = reopen_after_seconds
        self._max_merged = max_merged_transfers
        self.streams_opened = 0
        self._unary = UnaryPoster(stub)
        self._stream: _Stream | None = None
        self._ids = itertools.count(1)
        self._unimplemented = False
        self._unary_until = 0.0
        self._opening = asyncio.Lock()

    async def post(
        self, request: ledger_pb.PostTransfersRequest, *, timeout: float
    ) -> ledger_pb.PostTransfersResponse:
        stream = await self._open(timeout)
        if stream is None:
            return await self._unary.post(request, timeout=timeout)
        correlation_id = str(next(self._ids))
        future: asyncio.Future[ledger_pb.PostTransfersResponse] = (
            asyncio.get_running_loop().create_future()
        )
        stream.waiting[correlation_id] = future
        stream.send(
            ledger_pb.PostTransfersStreamRequest(correlation_id=correlation_id, request=request)
        )
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise rpc_error(
                grpc.StatusCode.DEADLINE_EXCEEDED, "the ledger did not answer in time"
            ) from None
        finally:
            stream.waiting.pop(correlation_id, None)

    async def _open(self, timeout: float) -> _Stream | None:
        """The open stream, a new one, or None: post unary (no stream on this ledger,
        or the last attempt to open one failed a moment ago)."""
        if self._unimplemented or time.monotonic() < self._unary_until:
            return None
        stream = self._stream
        if stream is not None and not stream.ended:
            return stream
        async with self._opening:
            if self._stream is not None and not self._stream.ended:
                return self._stream
            call = self._stub.PostTransfersStream(wait_for_ready=False)
            try:
                # Headers come first: a ledger that cannot be reached, or has no
                # such method, says so here rather than on the first request.
                async with asyncio.timeout(timeout):
                    await call.initial_metadata()
            except grpc.aio.AioRpcError as error:
                return self._opening_failed(error.code())
            except TimeoutError:  # a ledger that takes the call and says nothing
                call.cancel()
                return self._opening_failed(grpc.StatusCode.DEADLINE_EXCEEDED)
            if call.done():
                code = await call.code()
                if code != grpc.StatusCode.OK:
                    return self._opening_failed(code)
            self._stream = _Stream(call, self._max_merged)
            self.streams_opened += 1
            return self._stream

    def _opening_failed(self, code: grpc.StatusCode) -> None:
        if code == grpc.StatusCode.UNIMPLEMENTED:
            log.warning("ledger_stream_unimplemented_posting_unary")
            self._unimplemented = True
        else:
            log.info("ledger_stream_not_opened", code=code.name)
            self._unary_until = time.monotonic() + self._reopen_after
        return None

    async def reset(self) -> None:
        """Drop the open stream (what waits on it is UNAVAILABLE); the next request
        opens a new one, e.g. to reach a ledger that moved."""
        await self.close()

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        stream.call.cancel()
        stream.reader.cancel()
        stream.writer.cancel()
        await asyncio.gather(stream.reader, stream.writer, return_exceptions=True)
