"""The service's resumable streams (WatchCampaigns, WatchActivities): rows with a
gapless sequence in commit order, read page by page after a consumer's last
sequence, then followed as commits add more."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from services.kit.errors import FieldViolation, InvalidArgument

PAGE = 500


class Sequenced(Protocol):
    @property
    def sequence(self) -> int: ...


Row = TypeVar("Row", bound=Sequenced)


class Commits:
    """Wakes stream readers after each group commit of the store."""

    def __init__(self) -> None:
        self._committed = asyncio.Event()

    def notify(self) -> None:
        self._committed.set()
        self._committed = asyncio.Event()

    def next(self) -> asyncio.Event:
        """Set by the next commit: take it before reading, wait on it after."""
        return self._committed


async def follow(
    commits: Commits,
    read_after: Callable[[int, int], Awaitable[Sequence[Row]]],
    after_sequence: int,
) -> AsyncIterator[Row]:
    """Every row after `after_sequence`, in order, forever. `read_after(sequence,
    limit)` reads the next rows of one committed snapshot."""
    if after_sequence < 0:
        raise InvalidArgument([FieldViolation("after_sequence", "must not be negative")])
    position = after_sequence
    while True:
        committed = commits.next()
        rows = await read_after(position, PAGE)
        for row in rows:
            yield row
            position = row.sequence
        if len(rows) < PAGE:
            await committed.wait()
