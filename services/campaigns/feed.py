"""The activity feed: every settled activity with the points it gave, in the
order activities settled, resumable from a sequence (WatchActivities)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from services.campaigns.domain.records import ActivityEvent
from services.campaigns.feeds import Commits, follow
from services.campaigns.store import CampaignsStore


class ActivityFeed:
    def __init__(self, store: CampaignsStore, commits: Commits) -> None:
        self._store = store
        self._commits = commits

    def watch(self, after_sequence: int) -> AsyncIterator[ActivityEvent]:
        async def read_after(sequence: int, limit: int) -> list[ActivityEvent]:
            return await self._store.read(lambda unit: unit.events_after(sequence, limit))

        return follow(self._commits, read_after, after_sequence)
