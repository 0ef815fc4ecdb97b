"""Two progress replicas on one database (a SQLite file, a PostgreSQL schema):
following the same feed at once they count each event once and announce each
tier change once, and the feeds they both append to stay gapless. And as real
processes on one PostgreSQL, one SIGKILLed mid-catch-up and left dead: every
count exact, every badge bonus paid once, checked against the ledger."""

from __future__ import annotations

import asyncio

import pytest
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from loyalty.progress.v1 import progress_service_pb2_grpc as progress_grpc

from services.progress.domain.records import Achievement, AwardKind, TierChange
from tests.progress import test_crash as crash
from tests.support import deadlines
from tests.support.postgres import fresh_database
from tests.support.progress import at, club, credit, items, service_tier
from tests.support.replicas import replica_suites

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


# Enough that the feed is far from caught up when the kill comes (1,201 credits,
# 5 a transaction), and every member reaches the badge's last level (1,000 points).
CREDITS_EACH = 100
CATCH_UP = {"PROGRESS_FEED_BATCH": "5", "PROGRESS_RELAY_INTERVAL_SECONDS": "0.2"}


@pytest.mark.slow
async def test_two_processes_on_one_postgres_one_killed_mid_catch_up(tmp_path, postgres) -> None:
    databases = {
        name: fresh_database(tmp_path, "postgres", name) for name in ("ledger", "progress")
    }
    async with replica_suites(tmp_path, databases, env=CATCH_UP, shared={"ledger"}) as suites:
        await suites[0].start("ledger")
        first = await suites[0].start("progress")
        async with (
            deadlines.channel(suites[0].target("ledger")) as ledger_channel,
            deadlines.channel(suites[0].target("progress")) as zero,
            deadlines.channel(suites[1].target("progress")) as one,
        ):
            ledger = ledger_grpc.LedgerServiceStub(ledger_channel)
            await crash.set_up(ledger, progress_grpc.ProgressServiceStub(zero))
            # Both fall behind: the ledger takes every credit before either follows it.
            await first.stop()
            last = await crash.credit_everyone(ledger, CREDITS_EACH)
            # Started together, so both follow the backlog at once.
            for suite in suites:
                await suite.start("progress", wait=False)
            for suite in suites:
                await suite.wait("progress")
            survivor = progress_grpc.ProgressServiceStub(one)
            # Killed under way: once the second member's first level is recorded.
            await crash.achievements(progress_grpc.ProgressServiceStub(zero), crash.MEMBERS[1], 1)
            await suites[0].running["progress"].kill()
            assert await crash.feed_cursor(survivor) < last
            await crash.achievements(survivor, crash.SENTINEL, 1)
            await crash.check_counted_once(ledger, survivor, last, CREDITS_EACH)
