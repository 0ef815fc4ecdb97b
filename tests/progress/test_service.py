"""The use cases over a real temporary SQLite store, no gRPC: feeds applied
exactly once, tiers, badges, streaks and challenges, and the rebuild."""

from __future__ import annotations

import asyncio

import pytest
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from services.kit.errors import InvalidArgument
from services.kit.proto_time import timestamp
from services.progress.adapters import ledger
from services.progress.domain.definitions import Downgrade, WindowKind
from services.progress.domain.records import AwardKind
from tests.support.progress import (
    activity,
    at,
    club,
    credit,
    items,
    login_streak,
    reversal,
    reviewer,
    service_tier,
    spin,
    weekly_challenge,
)


async def tier_of(tier, member: str, program: str = "club") -> str:
    progress = await tier.members.progress(member)
    (view,) = [view for view in progress.tiers if view.program_id == program]
    return view.program.tiers[view.standing.rank].tier_id


async def test_a_batch_applied_twice_counts_once_and_moves_the_cursor(progress_db) -> None:
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("club", club(), None)
        batch = items(
            credit("t1", "m-1", 600, at(2026, 3, 1, 9)),
            credit("t2", "m-1", 600, at(2026, 3, 1, 10)),
        )
        assert await tier.feeds.apply("ledger", batch) == 2
        assert await tier.feeds.apply("ledger", batch) == 2
        # An overlapping batch (a reconnect from an older cursor) applies only what is new.
        more = [*batch, *items(credit("t3", "m-1", 100, at(2026, 3, 1, 11)), start=3)]
        assert await tier.feeds.apply("ledger", more) == 3
        progress = await tier.members.progress("m-1")
        assert progress.tiers[0].standing.points == 1_300
        assert await tier_of(tier, "m-1") == "silver"
        events, differences = await tier.members.rebuild("m-1")
        assert (events, differences) == (3, [])


async def test_the_same_event_under_another_sequence_is_journaled_once(progress_db) -> None:
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("club", club(), None)
        await tier.feed(credit("t1", "m-1", 1_000, at(2026, 3, 1, 9)))
        await tier.feed(credit("t1", "m-1", 1_000, at(2026, 3, 1, 9)))
        page = await tier.members.events("m-1", 0, "")
        assert [recorded.event.key for recorded in page.items] == ["t1"]


async def test_upgrade_at_once_and_a_refund_pulls_the_member_back(progress_db) -> None:
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("club", club(), None)
        await tier.feed(
            credit("activity:a1:base", "m-1", 1_000, at(2026, 3, 1, 9), activity_id="a1")
        )
        assert await tier_of(tier, "m-1") == "silver"
        await tier.feed(
            reversal("activity:r1:claw", "m-1", "activity:a1:base", 400, at(2026, 3, 2))
        )
        assert await tier_of(tier, "m-1") == "member"
        changes = [c async for c in _take(tier.watch.tier_changes(0, ""), 2)]
        assert [(c.from_tier, c.to_tier, c.upgrade, c.reason) for c in changes] == [
            ("", "silver", True, "QUALIFIED"),
            ("silver", "member", False, "POINTS_REVERSED"),
        ]
        assert [c.sequence for c in changes] == [1, 2]
        assert (await tier.members.rebuild("m-1"))[1] == []


async def test_spending_never_lowers_a_tier(progress_db) -> None:
    earn = ledger_pb.Transfer(
        id="t1",
        debit_account_id="program:issuance",
        credit_account_id="m-1",
        amount=1_000,
        code=ledger_pb.TRANSFER_CODE_EARN,
        kind=ledger_pb.TRANSFER_KIND_POSTED,
        sequence=1,
    )
    spend = ledger_pb.Transfer(
        id="t2",
        debit_account_id="m-1",
        credit_account_id="games:revenue",
        amount=900,
        code=ledger_pb.TRANSFER_CODE_GAME_COST,
        kind=ledger_pb.TRANSFER_KIND_POSTED,
        sequence=2,
    )
    for message in (earn, spend):
        message.create_time.CopyFrom(timestamp(at(2026, 3, 1, 9)))
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("club", club(), None)
        batch = [
            ledger.item_of(ledger_pb.WatchTransfersResponse(transfer=t)) for t in (earn, spend)
        ]
        assert batch[1].value == []
        assert await tier.feeds.apply("ledger", batch) == 2
        assert await tier_of(tier, "m-1") == "silver"


async def test_a_transfer_code_progress_does_not_know_moves_the_feed_past_it(progress_db) -> None:
    """A newer ledger's code: journaled under CODE_<number>, counted by no program."""
    transfers = [
        ledger_pb.Transfer(
            id=f"t{n}",
            debit_account_id="program:issuance",
            credit_account_id="m-1",
            amount=1_000,
            code=code,
            kind=ledger_pb.TRANSFER_KIND_POSTED,
            sequence=n,
        )
        for n, code in ((1, 97), (2, ledger_pb.TRANSFER_CODE_EARN))
    ]
    for message in transfers:
        message.create_time.CopyFrom(timestamp(at(2026, 3, 1, 9)))
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("club", club(), None)
        batch = [ledger.item_of(ledger_pb.WatchTransfersResponse(transfer=t)) for t in transfers]
        assert await tier.feeds.apply("ledger", batch) == 2
        progress = await tier.members.progress("m-1")
        assert progress.tiers[0].standing.points == 1_000
        assert (await tier.members.rebuild("m-1"))[1] == []


async def test_a_late_purchase_counts_at_its_event_time(progress_db) -> None:
    """The activity happened on 31 December and its points committed on 2 January:
    they count for the year it happened in."""
    clock_start = at(2027, 1, 2, 10)
    async with service_tier(progress_db) as tier:
        tier.clock.set(clock_start)
        await tier.catalog.apply("club", club(grace_days=0), None)
        await tier.feed(credit("activity:a1:base", "m-1", 1_000, clock_start, activity_id="a1"))
        progress = await tier.members.progress("m-1")
        assert progress.tiers[0].standing.points == 1_000
        await tier.feed(activity("a1", "m-1", "purchase", at(2026, 12, 31, 22)), feed="campaigns")
        progress = await tier.members.progress("m-1")
        # Now 2026's points: kept through 2027, none in 2027's window so far.
        assert progress.tiers[0].standing.points == 0
        assert await tier_of(tier, "m-1") == "silver"
        assert progress.tiers[0].standing.kept_until_us == at(2028, 1, 1)
        assert (await tier.members.rebuild("m-1"))[1] == []


async def test_downgrade_waits_for_the_review_after_period_end_and_grace(progress_db) -> None:
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("club", club(grace_days=14), None)
        await tier.feed(credit("t1", "m-1", 5_000, at(2026, 3, 1, 9)))
        assert await tier_of(tier, "m-1") == "gold"
        tier.clock.set(at(2028, 1, 15) - 1)
        assert await tier.feeds.review_due() == 0
        tier.clock.set(at(2028, 1, 15))
        assert await tier.feeds.review_due() == 1
        (_, change) = [c async for c in _take(tier.watch.tier_changes(0, "club"), 2)]
        assert (change.from_tier, change.to_tier, change.reason) == (
            "gold",
            "member",
            "PERIOD_ENDED",
        )


async def test_one_step_policy_steps_down_a_tier_a_year(progress_db) -> None:
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("club", club(downgrade=Downgrade.ONE_STEP), None)
        await tier.feed(credit("t1", "m-1", 5_000, at(2026, 3, 1, 9)))
        tier.clock.set(at(2028, 1, 1))
        await tier.feeds.review_due()
        assert await tier_of(tier, "m-1") == "silver"
        tier.clock.set(at(2029, 1, 1))
        await tier.feeds.review_due()
        assert await tier_of(tier, "m-1") == "member"


async def test_manual_floor_expires_on_review(progress_db) -> None:
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("club", club(), None)
        await tier.feed(credit("t1", "m-1", 1_000, at(2026, 3, 1, 9)))
        view = await tier.members.set_floor("club", "m-1", "gold", at(2026, 6, 1), "status match")
        assert view.program.tiers[view.standing.rank].tier_id == "gold"
        tier.clock.set(at(2026, 6, 1))
        assert await tier.feeds.review_due() == 1
        assert await tier_of(tier, "m-1") == "silver"
        reasons = [c.reason async for c in _take(tier.watch.tier_changes(0, ""), 3)]
        assert reasons == ["QUALIFIED", "FLOOR_SET", "FLOOR_EXPIRED"]


async def test_rolling_program_member_loses_points_that_age_out(progress_db) -> None:
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("club", club(WindowKind.ROLLING_MONTHS, rolling_months=12), None)
        await tier.feed(credit("t1", "m-1", 1_000, at(2026, 3, 1, 9)))
        tier.clock.set(at(2027, 3, 1, 9))
        assert await tier_of(tier, "m-1") == "silver"
        tier.clock.set(at(2027, 3, 1, 9, 0, 1))
        assert await tier.feeds.review_due() == 1
        assert await tier_of(tier, "m-1") == "member"


async def test_badge_levels_with_progress_and_bonus_paid_once(progress_db) -> None:
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("reviewer", reviewer(), None)
        for n in range(3):
            await tier.feed(
                activity(f"r{n}", "m-1", "product_review", at(2026, 3, 1, 9 + n)), feed="campaigns"
            )
        progress = await tier.members.progress("m-1")
        (badge,) = progress.badges
        assert badge.value == 3 and set(badge.earned) == {"bronze", "silver"}
        paid = tier.ledger.paid_to("m-1")
        assert [t.amount for t in paid] == [50]
        # Replayed delivery and a rebuild never pay again.
        await tier.feeds.apply(
            "campaigns", items(activity("r0", "m-1", "product_review", at(2026, 3, 1, 9)))
        )
        await tier.rewards.outbox.recover()
        assert [t.amount for t in tier.ledger.paid_to("m-1")] == [50]
        awards = await tier.store.read(lambda unit: unit.awards("m-1"))
        assert {(a.kind, a.detail, a.state) for a in awards} == {
            (AwardKind.BADGE, "bronze", "unpaid"),
            (AwardKind.BADGE, "silver", "paid"),
        }


async def test_streak_milestone_paid_once_and_broken_streak(progress_db) -> None:
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("login", login_streak(), None)
        for day in range(1, 8):
            await tier.feed(
                activity(f"l{day}", "m-1", "app_login", at(2026, 3, day, 8)), feed="campaigns"
            )
        tier.clock.set(at(2026, 3, 7, 20))
        (streak,) = (await tier.members.progress("m-1")).streaks
        assert (streak.figures.current, streak.figures.longest) == (7, 7)
        assert [t.amount for t in tier.ledger.paid_to("m-1")] == [100]
        tier.clock.set(at(2026, 3, 9, 12))
        (streak,) = (await tier.members.progress("m-1")).streaks
        assert (streak.figures.current, streak.figures.longest) == (0, 7)


async def test_challenge_completed_and_rewarded_once_per_window(progress_db) -> None:
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("weekly", weekly_challenge(), None)
        tier.clock.set(at(2026, 3, 4))
        await tier.feed(activity("r1", "m-1", "product_review", at(2026, 3, 3)), feed="campaigns")
        await tier.feed(activity("r2", "m-1", "product_review", at(2026, 3, 4)), feed="campaigns")
        (view,) = (await tier.members.progress("m-1")).challenges
        assert [(s.step_id, s.value, s.done) for s in view.round.steps] == [
            ("reviews", 2, True),
            ("spin", 0, False),
        ]
        await tier.feed(spin("s1", "m-1", at(2026, 3, 4, 1)), feed="games")
        (view,) = (await tier.members.progress("m-1")).challenges
        assert view.completed_us is not None
        assert [t.amount for t in tier.ledger.paid_to("m-1")] == [150]


async def test_bad_definitions_name_every_field(progress_db) -> None:
    async with service_tier(progress_db) as tier:
        with pytest.raises(InvalidArgument) as raised:
            await tier.catalog.apply(
                "bad id!",
                club(WindowKind.ROLLING_MONTHS, rolling_months=99, downgrade=Downgrade.ONE_STEP),
                None,
            )
        fields = {violation.field for violation in raised.value.violations}
        assert {
            "definition.id",
            "definition.tier_program.rolling_months",
            "definition.tier_program.downgrade_policy",
        } <= fields


async def _take(stream, count: int, timeout: float = 10.0):
    """The stream's first `count` items, each within the deadline."""
    iterator = stream.__aiter__()
    for _ in range(count):
        yield await asyncio.wait_for(iterator.__anext__(), timeout)


def history_of(member: str) -> list[tuple[str, object]]:
    """A week of one member's events, by feed: silver then gold, five reviews
    (three badge levels, two with a bonus), seven daily logins (a milestone paid),
    the weekly challenge completed, and a refund clawed back."""
    events: list[tuple[str, object]] = []
    for day in range(2, 9):
        events.append(
            ("campaigns", activity(f"{member}:l{day}", member, "app_login", at(2026, 3, day, 8)))
        )
        events.append(("ledger", credit(f"{member}:t{day}", member, 900, at(2026, 3, day, 9))))
    for n in range(5):
        review = activity(f"{member}:r{n}", member, "product_review", at(2026, 3, 3 + n, 10))
        events.append(("campaigns", review))
    events.append(("games", spin(f"{member}:s1", member, at(2026, 3, 4, 11))))
    events.append(
        ("ledger", reversal(f"{member}:x", member, f"{member}:t8", 900, at(2026, 3, 8, 12)))
    )
    return events


async def earned(tier, member: str) -> tuple:
    """What is stored for the member: recorded tier, awards, points paid."""
    recorded = await tier.store.read(lambda unit: unit.member_tier("club", member))
    awards = await tier.store.read(lambda unit: unit.awards(member))
    paid = sorted(t.amount for t in tier.ledger.paid_to(member))
    tier_id = recorded.tier_id if recorded else ""
    return tier_id, {(a.kind, a.definition_id, a.detail, a.points) for a in awards}, paid


async def test_a_backlog_caught_up_with_evaluation_deferred_earns_what_live_feeding_earns(
    progress_db,
) -> None:
    async with service_tier(progress_db) as tier:
        for key, definition in (
            ("club", club()),
            ("reviewer", reviewer()),
            ("login", login_streak()),
            ("weekly", weekly_challenge()),
        ):
            await tier.catalog.apply(key, definition, None)
        tier.clock.set(at(2026, 3, 8, 20))
        # m-live: each event applied as it comes, evaluated at once.
        for feed, event in history_of("m-live"):
            await tier.feed(event, feed=feed)
        # m-behind: the same history as a backlog, in batches per feed, evaluation deferred.
        by_feed: dict[str, list] = {}
        for feed, event in history_of("m-behind"):
            by_feed.setdefault(feed, []).append(event)
        for feed, events in by_feed.items():
            for first in range(0, len(events), 4):
                await tier.feed(*events[first : first + 4], feed=feed, defer=True)
        # Facts and cursors are stored; nothing is earned until the catch-up finishes.
        assert await earned(tier, "m-behind") == ("", set(), [])
        assert await tier.store.read(lambda unit: unit.deferred_evaluations(10)) == ["m-behind"]
        assert await tier.feeds.finish_catch_up() == 1
        assert await tier.store.read(lambda unit: unit.deferred_evaluations(10)) == []
        live = await earned(tier, "m-live")
        assert live[0] == "gold" and live[2] == [50, 100, 150, 200]
        assert await earned(tier, "m-behind") == live
        assert await tier.members.rebuild("m-behind") == (len(history_of("m-behind")), [])
        # One tier change for the whole backlog, against two as it happened.
        changes = await tier.store.read(lambda unit: unit.tier_changes(0, "club", 10))
        assert [(c.member_id, c.to_tier) for c in changes] == [
            ("m-live", "silver"),
            ("m-live", "gold"),
            ("m-behind", "gold"),
        ]


async def test_a_rebuild_evaluates_a_member_left_waiting_first(progress_db) -> None:
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("club", club(), None)
        await tier.feed(credit("t1", "m-1", 1_200, at(2026, 3, 1, 9)), defer=True)
        assert await tier.members.rebuild("m-1") == (1, [])
        assert (await earned(tier, "m-1"))[0] == "silver"
        assert await tier.store.read(lambda unit: unit.deferred_evaluations(10)) == []
