"""How calls end when the gateway stops: open streams at once, unary calls
still waiting on an upstream when the grace period is over; both with
UNAVAILABLE / GATEWAY_STOPPING, which clients retry (a stream resumes with its
after_sequence), rather than the CANCELLED of a cut connection, which means
"you cancelled"."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from services.gateway.errors import failure

T = TypeVar("T")
_END = object()


def stopping_error() -> ConnectError:
    return failure(
        Code.UNAVAILABLE,
        "GATEWAY_STOPPING",
        "the gateway is restarting: call again (a stream resumes after the last sequence it gave)",
    )


class Shutdown:
    """Two moments of a stop: streams end when it begins, calls when the grace is over."""

    def __init__(self) -> None:
        self._streams_end = asyncio.Event()
        self._calls_end = asyncio.Event()
        # The tasks awaiting a unary call's answer, cancelled when the grace ends.
        self._calls: set[asyncio.Task] = set()

    def end_streams(self) -> None:
        self._streams_end.set()

    def end_calls(self) -> None:
        self._streams_end.set()
        self._calls_end.set()
        for task in self._calls:
            task.cancel()

    async def call(self, work: Awaitable[T]) -> T:
        """The call's answer, or GATEWAY_STOPPING if the grace runs out first.
        The work runs in the caller's task (no task of its own per call): the
        stop cancels that task, and the cancellation it caused ends here."""
        if self._calls_end.is_set():
            if inspect.iscoroutine(work):
                work.close()  # never started: nothing reached an upstream
            raise stopping_error()
        task = asyncio.current_task()
        assert task is not None
        self._calls.add(task)
        try:
            return await work
        except asyncio.CancelledError:
            if not self._calls_end.is_set():
                raise
            task.uncancel()
            raise stopping_error() from None
        finally:
            self._calls.discard(task)

    async def stream(self, responses: AsyncIterator[T]) -> AsyncIterator[T]:
        """The stream's messages until it ends, or GATEWAY_STOPPING once the stop begins."""
        try:
            while True:
                response = await _unless(_next(responses), self._streams_end)
                if response is _END:
                    return
                yield response
        finally:
            await responses.aclose()


async def _next(responses: AsyncIterator[T]) -> T | object:
    try:
        return await anext(responses)
    except StopAsyncIteration:
        return _END


async def _unless(work: Awaitable[T], stop: asyncio.Event) -> T:
    """Awaits `work` in a task of its own, so that when `stop` is set first it is
    cancelled alone (its cleanup cancels the upstream call) and the caller
    answers GATEWAY_STOPPING instead of being cut."""
    if stop.is_set():
        if inspect.iscoroutine(work):
            work.close()  # never started: nothing reached an upstream
        raise stopping_error()
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        # The work's cleanup runs before the caller's: a stream's generator cannot
        # be closed while the anext cancelled here is still running in it (a
        # browser leaving a WatchWallet logged "aclose(): asynchronous generator
        # is already running" as an internal error).
        await asyncio.wait({task})
        raise
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.wait({task})
    raise stopping_error()
