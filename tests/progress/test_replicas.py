"""Two progress replicas on one database (a SQLite file, a PostgreSQL schema):
following the same feed at once they count each event once and announce each
tier change once, and the feeds they both append to stay gapless."""

from __future__ import annotations

import asyncio

from services.progress.domain.records import Achievement, AwardKind, TierChange
from tests.support.progress import at, club, credit, items, service_tier

MEMBERS = [f"m-{n}" for n in range(8)]


async def test_two_replicas_applying_the_same_batches_count_each_event_once(progress_db) -> None:
    async with service_tier(progress_db) as one, service_tier(progress_db) as two:
        await one.catalog.apply("club", club(), None)
        batches = [
            items(
                *(credit(f"t{n}-{m}", m, 600, at(2026, 3, 1, 9 + n)) for m in MEMBERS),
                start=1 + n * len(MEMBERS),
            )
            for n in range(2)
        ]

        async def follow(replica) -> None:
            # A follower applies its batches in the feed's order.
            for batch in batches:
                await replica.feeds.apply("ledger", batch)

        # Both replicas follow the same feed from the start, racing.
        await asyncio.gather(follow(one), follow(two))
        assert await two.feeds.cursor("ledger") == 2 * len(MEMBERS)
        for member in MEMBERS:
            progress = await two.members.progress(member)
            assert progress.tiers[0].standing.points == 1_200, member
        changes = await one.store.read(lambda unit: unit.tier_changes(0, "club", 1000))
        # Each member went up once (to silver at 1,000 points); the feed is 1..n.
        assert sorted(change.member_id for change in changes) == MEMBERS
        assert [change.sequence for change in changes] == list(range(1, len(MEMBERS) + 1))


async def test_the_feeds_two_replicas_write_at_once_stay_gapless(progress_db) -> None:
    async with service_tier(progress_db) as one, service_tier(progress_db) as two:

        def record(n: int):
            def work(unit) -> None:
                unit.add_achievement(Achievement(0, "m-1", AwardKind.BADGE, "b", f"x{n}", 0, n))
                unit.add_tier_change(
                    TierChange(0, "club", f"m-{n}", "", "silver", True, "POINTS", n, None)
                )
                unit.add_tier_change(
                    TierChange(0, "club", f"m-{n}", "silver", "", False, "POINTS", n, None)
                )

            return work

        await asyncio.gather(*((one, two)[n % 2].store.write(record(n)) for n in range(30)))
        achievements = await two.store.read(lambda unit: unit.achievements("m-1", 0, 1000))
        assert [a.sequence for a in achievements] == list(range(1, 31))
        assert sorted(a.detail for a in achievements) == sorted(f"x{n}" for n in range(30))
        changes = await one.store.read(lambda unit: unit.tier_changes(0, "", 1000))
        assert [c.sequence for c in changes] == list(range(1, 61))
        # One write's two changes are consecutive, in the order it added them.
        for up, down in zip(changes[::2], changes[1::2], strict=True):
            assert (up.member_id, up.to_tier, down.to_tier) == (down.member_id, "silver", "")
