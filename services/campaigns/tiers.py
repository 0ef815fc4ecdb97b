"""Following progress' WatchTierChanges: each member's computed tier per
program, which campaign conditions match (with the profile's manual tier as a
floor, domain/model.Member.tiers). The feed's cursor moves in the transaction
that stores the tiers it brought, so a restart neither misses nor replays one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from loyalty.progress.v1 import progress_service_pb2 as progress_pb
from loyalty.progress.v1 import progress_service_pb2_grpc as progress_grpc

from services.campaigns.domain.model import Standing
from services.campaigns.store import CampaignsStore, CampaignsUnit
from services.kit.feeds import FeedItem

FEED = "progress_tiers"


class TierFeed:
    def __init__(self, store: CampaignsStore) -> None:
        self._store = store

    async def cursor(self) -> int:
        return await self._store.read(lambda unit: unit.cursor(FEED))

    async def apply(self, batch: Sequence[FeedItem[Standing]]) -> int:
        """Store what the batch holds past the stored cursor, and the cursor, at once."""

        def work(unit: CampaignsUnit) -> int:
            stored = unit.cursor(FEED)
            fresh = [item for item in batch if item.sequence > stored]
            if not fresh:
                return stored
            for item in fresh:
                unit.put_standing(item.value)
            unit.set_cursor(FEED, fresh[-1].sequence)
            return fresh[-1].sequence

        return await self._store.write(work)


def standing_of(change: progress_pb.TierChange) -> Standing:
    return Standing(
        change.member_id, change.program_id, change.to_tier_id, tuple(change.program_tier_ids)
    )


def opener(stub: progress_grpc.ProgressServiceStub, recycle_seconds: float):
    async def open_stream(after: int) -> AsyncIterator[FeedItem[Standing]]:
        stream = stub.WatchTierChanges(
            progress_pb.WatchTierChangesRequest(after_sequence=after), timeout=recycle_seconds
        )
        try:
            async for response in stream:
                change = response.change
                yield FeedItem(
                    change.sequence, standing_of(change), change.change_time.ToMicroseconds()
                )
        finally:
            stream.cancel()

    return open_stream
