"""What every resumable feed of the suite (`Watch...(after_sequence)`) waits on:
a signal the store's writer gives after each group commit, so a reader that has
caught up sleeps until something new is committed instead of polling."""

from __future__ import annotations

import asyncio


class CommitSignal:
    """Wakes feed readers after each group commit (pass `notify` as on_commit)."""

    def __init__(self) -> None:
        self.version = 0
        self._changed = asyncio.Event()

    def notify(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_past(self, version: int) -> None:
        while self.version == version:
            await self._changed.wait()
