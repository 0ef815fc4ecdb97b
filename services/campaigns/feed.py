"""The activity feed: every settled activity with the points it gave, in the
order activities settled, resumable from a sequence (WatchActivities)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from services.campaigns.domain.records import ActivityEvent
from services.campaigns.store import CampaignsStore
from services.kit.feeds import FEED_PAGE, CommitSignal, serve_pages


class ActivityFeed:
    def __init__(self, store: CampaignsStore, commits: CommitSignal) -> None:
        self._store = store
        self._commits = commits

    def watch(self, after_sequence: int) -> AsyncIterator[ActivityEvent]:
        async def page(after: int) -> list[ActivityEvent]:
            return await self._store.read(lambda unit: unit.events_after(after, FEED_PAGE))

        return serve_pages(page, after_sequence, self._commits)
