"""Injectable time. Services read time only through a Clock so tests never sleep."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime
from typing import Protocol

MICROS_PER_SECOND = 1_000_000


class Clock(Protocol):
    def now_us(self) -> int:
        """Microseconds since the Unix epoch, UTC."""
        ...

    async def sleep_until(self, deadline_us: int) -> None:
        """Return once the clock reads deadline_us or later."""
        ...


def to_datetime(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / MICROS_PER_SECOND, tz=UTC).replace(
        microsecond=micros % MICROS_PER_SECOND
    )


def from_datetime(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: time zones are required at the edges")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * MICROS_PER_SECOND + delta.microseconds


class SystemClock:
    def now_us(self) -> int:
        return time.time_ns() // 1_000

    async def sleep_until(self, deadline_us: int) -> None:
        remaining = deadline_us - self.now_us()
        if remaining > 0:
            await asyncio.sleep(remaining / MICROS_PER_SECOND)


class ManualClock:
    """A clock that moves only when told; sleepers wake when it passes their deadline."""

    def __init__(self, start_us: int = 1_767_225_600 * MICROS_PER_SECOND) -> None:
        self._now = start_us
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now_us(self) -> int:
        return self._now

    def set(self, moment_us: int) -> None:
        if moment_us < self._now:
            raise ValueError("a clock never runs backwards")
        self._now = moment_us
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, waiter = heapq.heappop(self._sleepers)
            if not waiter.done():
                waiter.set_result(None)

    def advance(self, seconds: float) -> None:
        self.set(self._now + round(seconds * MICROS_PER_SECOND))

    async def sleep_until(self, deadline_us: int) -> None:
        if deadline_us <= self._now:
            await asyncio.sleep(0)
            return
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline_us, next(self._order), waiter))
        await waiter
