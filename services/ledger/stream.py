"""PostTransfersStream: many PostTransfers requests over one call.

Each message is queued for the writer as it is read, so batches from one stream
join the same shared unit of work and group commit as everyone else's, and
answers go out as they commit, in any order, each carrying its request's
correlation id. Flow control is the
stream's: past MAX_IN_FLIGHT requests (or MAX_IN_FLIGHT_TRANSFERS transfers)
whose answers have not been written yet, the stream stops reading, so a client
that sends without reading answers is held back by HTTP/2 and never grows
this process's memory. A protocol error (no correlation id, one still in
flight, a message that does not parse) ends the stream with INVALID_ARGUMENT
once the requests already taken are answered: nothing taken is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog
from google.rpc import code_pb2, status_pb2
from loyalty.ledger.v1 import ledger_service_pb2 as pb

from services.kit.errors import FieldViolation, InvalidArgument, ServiceError
from services.kit.server import Undecodable
from services.kit.status import status_message
from services.kit.text import shown

log = structlog.get_logger()

MAX_IN_FLIGHT = 256
MAX_IN_FLIGHT_TRANSFERS = 16_000
MAX_CORRELATION_ID = 128
_DONE = object()

# Queues one request for the writer (raising ServiceError for bad input) ...
Submit = Callable[[pb.PostTransfersRequest], asyncio.Future]
# ... and writes what the future delivered into the answer's response.
Fill = Callable[[Any, pb.PostTransfersResponse], None]


def _protocol_error(reason: str, field: str, description: str) -> InvalidArgument:
    return InvalidArgument([FieldViolation(field, description)], reason=reason)


def _check_correlation_id(value: str) -> None:
    if not value:
        raise _protocol_error("MISSING_CORRELATION_ID", "correlation_id", "is required")
    if len(value) > MAX_CORRELATION_ID or not value.isprintable():
        raise _protocol_error(
            "INVALID_CORRELATION_ID",
            "correlation_id",
            f"must be 1 to {MAX_CORRELATION_ID} printable characters, got {shown(value)}",
        )


_INTERNAL = status_pb2.Status(
    code=code_pb2.INTERNAL, message="internal error; see the service log"
).SerializeToString()


class TransferStream:
    """One PostTransfersStream call: read, submit each request, write the answers.

    No task per message: `submit` queues the request for the writer and returns
    a future, whose callback queues the answer (a task and its context per
    message were a third of the stream's own cost in the profile)."""

    def __init__(self, requests: AsyncIterator[Any], submit: Submit, fill: Fill) -> None:
        self._requests = requests
        self._submit = submit
        self._fill = fill
        self._answers: asyncio.Queue[Any] = asyncio.Queue()
        # correlation id -> the request's weight, until its answer is written.
        self._open: dict[str, int] = {}
        self._used = 0
        self._room = asyncio.Event()
        self._pending = 0
        self._settled = asyncio.Event()

    async def answers(self) -> AsyncIterator[pb.PostTransfersStreamResponse]:
        reader = asyncio.create_task(self._read())
        try:
            while True:
                answer = await self._answers.get()
                if answer is _DONE:
                    break
                yield answer
                self._written(answer.correlation_id)
            # The reader's protocol error, if any, ends the call once all is answered.
            await reader
        finally:
            reader.cancel()

    async def _read(self) -> None:
        try:
            async for message in self._requests:
                if isinstance(message, Undecodable):
                    raise _protocol_error(
                        "MALFORMED_REQUEST", "request", f"a message does not parse: {message.error}"
                    )
                correlation_id = message.correlation_id
                _check_correlation_id(correlation_id)
                if correlation_id in self._open:
                    raise _protocol_error(
                        "DUPLICATE_CORRELATION_ID",
                        "correlation_id",
                        f"{shown(correlation_id)} is still in flight on this stream",
                    )
                weight = max(1, len(message.request.transfers))
                while self._open and (
                    len(self._open) >= MAX_IN_FLIGHT
                    or self._used + weight > MAX_IN_FLIGHT_TRANSFERS
                ):
                    self._room.clear()
                    await self._room.wait()
                self._open[correlation_id] = weight
                self._used += weight
                self._start(correlation_id, message.request)
        finally:
            # Half-close, a protocol error or cancellation: what was taken is answered.
            while self._pending:
                self._settled.clear()
                await self._settled.wait()
            self._answers.put_nowait(_DONE)

    def _start(self, correlation_id: str, request: pb.PostTransfersRequest) -> None:
        try:
            outcomes = self._submit(request)
        except Exception as error:
            self._answers.put_nowait(_refused(correlation_id, error))
            return
        self._pending += 1
        outcomes.add_done_callback(lambda done: self._finished(correlation_id, done))

    def _finished(self, correlation_id: str, done: asyncio.Future) -> None:
        self._pending -= 1
        if not self._pending:
            self._settled.set()
        if done.cancelled():
            return
        error = done.exception()
        if error is not None:
            self._answers.put_nowait(_refused(correlation_id, error))
            return
        answer = pb.PostTransfersStreamResponse(correlation_id=correlation_id)
        try:
            self._fill(done.result(), answer.response)
        except Exception as failure:
            answer = _refused(correlation_id, failure)
        self._answers.put_nowait(answer)

    def _written(self, correlation_id: str) -> None:
        self._used -= self._open.pop(correlation_id, 0)
        self._room.set()


def _refused(correlation_id: str, error: BaseException) -> pb.PostTransfersStreamResponse:
    """The answer for a request PostTransfers would have failed with `error`."""
    if isinstance(error, ServiceError):
        log.info(
            "stream_request_rejected",
            correlation_id=correlation_id,
            code=error.status_name,
            reason=error.reason,
        )
        status = status_message(error).SerializeToString()
    else:
        log.error(
            "stream_request_failed",
            correlation_id=correlation_id,
            exc_info=(type(error), error, error.__traceback__),
        )
        status = _INTERNAL
    return pb.PostTransfersStreamResponse(correlation_id=correlation_id, error=status)
