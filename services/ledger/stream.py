"""PostTransfersStream: many PostTransfers requests over one call.

Each message is answered by its own task, so batches from one stream join the
same group commits as everyone else's and answers go out as they commit, in
any order, each carrying its request's correlation id. Flow control is the
stream's: past MAX_IN_FLIGHT requests (or MAX_IN_FLIGHT_TRANSFERS transfers)
whose answers have not been written yet, the stream stops reading, so a client
that sends without reading answers is held back by HTTP/2 and never grows
this process's memory. A protocol error (no correlation id, one still in
flight, a message that does not parse) ends the stream with INVALID_ARGUMENT
once the requests already taken are answered: nothing taken is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from google.rpc import code_pb2, status_pb2
from loyalty.ledger.v1 import ledger_service_pb2 as pb
from structlog.contextvars import bind_contextvars

from services.kit.errors import FieldViolation, InvalidArgument, ServiceError
from services.kit.server import Undecodable
from services.kit.status import status_message
from services.kit.text import shown

log = structlog.get_logger()

MAX_IN_FLIGHT = 256
MAX_IN_FLIGHT_TRANSFERS = 16_000
MAX_CORRELATION_ID = 128
_DONE = object()

# Answers one request into the answer message it is given.
Post = Callable[[pb.PostTransfersRequest, pb.PostTransfersStreamResponse], Awaitable[None]]


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
    """One PostTransfersStream call: read, answer each request, write the answers."""

    def __init__(self, requests: AsyncIterator[Any], post: Post) -> None:
        self._requests = requests
        self._post = post
        self._answers: asyncio.Queue[Any] = asyncio.Queue()
        # correlation id -> the request's weight, until its answer is written.
        self._open: dict[str, int] = {}
        self._used = 0
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task] = set()

    async def answers(self) -> AsyncIterator[pb.PostTransfersStreamResponse]:
        reader = asyncio.create_task(self._read())
        try:
            while True:
                answer = await self._answers.get()
                if answer is _DONE:
                    break
                yield answer
                await self._written(answer.correlation_id)
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
                await self._take_room(correlation_id, weight)
                task = asyncio.create_task(self._answer(correlation_id, message.request))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            # Half-close, a protocol error or cancellation: what was taken is answered.
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            self._answers.put_nowait(_DONE)

    async def _take_room(self, correlation_id: str, weight: int) -> None:
        async with self._changed:
            await self._changed.wait_for(
                lambda: (
                    not self._open
                    or (
                        len(self._open) < MAX_IN_FLIGHT
                        and self._used + weight <= MAX_IN_FLIGHT_TRANSFERS
                    )
                )
            )
            self._open[correlation_id] = weight
            self._used += weight

    async def _written(self, correlation_id: str) -> None:
        async with self._changed:
            self._used -= self._open.pop(correlation_id)
            self._changed.notify_all()

    async def _answer(self, correlation_id: str, request: pb.PostTransfersRequest) -> None:
        # This task's own context: its log lines name the request they belong to.
        bind_contextvars(correlation_id=correlation_id)
        answer = pb.PostTransfersStreamResponse(correlation_id=correlation_id)
        try:
            await self._post(request, answer)
        except ServiceError as error:
            log.info("stream_request_rejected", code=error.status_name, reason=error.reason)
            answer.Clear()
            answer.correlation_id = correlation_id
            answer.error = status_message(error).SerializeToString()
        except Exception:
            log.exception("stream_request_failed")
            answer.Clear()
            answer.correlation_id = correlation_id
            answer.error = _INTERNAL
        self._answers.put_nowait(answer)
