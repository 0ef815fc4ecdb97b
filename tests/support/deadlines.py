"""Deadlines on every await a test makes on a service, so a bug shows as a
failure within seconds instead of a hang: channels whose calls get a deadline
unless they name one, and a bound for any other wait (a stream's next message)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

T = TypeVar("T")

# Far beyond any answer's time on a busy machine, far below a test runner's patience.
DEADLINE_SECONDS = 30.0


class _Defaults:
    def __init__(self, seconds: float, wait_for_ready: bool) -> None:
        self._seconds = seconds
        self._wait_for_ready = wait_for_ready

    def apply(self, details):
        if details.timeout is None:
            details = details._replace(timeout=self._seconds)
        if self._wait_for_ready and details.wait_for_ready is None:
            details = details._replace(wait_for_ready=True)
        return details


class _UnaryUnary(_Defaults, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(self.apply(details), request)


class _UnaryStream(_Defaults, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, details, request):
        return await continuation(self.apply(details), request)


def channel(
    target: str, seconds: float = DEADLINE_SECONDS, wait_for_ready: bool = False
) -> grpc.aio.Channel:
    """A channel to `target` whose calls have a deadline of `seconds` unless they set
    one; with `wait_for_ready` they also wait for a restarted server instead of
    failing while the channel reconnects."""
    defaults = (seconds, wait_for_ready)
    return grpc.aio.insecure_channel(
        target, interceptors=[_UnaryUnary(*defaults), _UnaryStream(*defaults)]
    )


async def within(awaitable: Awaitable[T], seconds: float = DEADLINE_SECONDS) -> T:
    """`awaitable`'s result, or TimeoutError after `seconds`."""
    return await asyncio.wait_for(awaitable, seconds)


async def eventually(
    condition: Callable[[], Awaitable[bool]],
    between: Callable[[], None] = lambda: None,
    seconds: float = DEADLINE_SECONDS,
) -> None:
    """Waits until `condition()` holds (an observable event, not a time), calling
    `between()` between two looks (to move a ManualClock, say); AssertionError
    after `seconds`."""

    async def wait() -> None:
        while not await condition():
            between()
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(wait(), seconds)
    except TimeoutError:
        raise AssertionError(f"the condition did not hold within {seconds} s") from None
