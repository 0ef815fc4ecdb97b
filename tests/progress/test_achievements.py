"""Streaks across a DST change and a change of zone; challenges in their last
minute and late events inside their window; streak freezes."""

from __future__ import annotations

from services.progress.domain.evaluate import streak_figures
from tests.support.progress import activity, at, login_streak, service_tier, spin, weekly_challenge

NEW_YORK = "America/New_York"
TOKYO = "Asia/Tokyo"


async def figures(tier, member: str = "m-1"):
    (streak,) = (await tier.members.progress(member)).streaks
    return streak.figures.current, streak.figures.longest


async def test_a_daily_streak_across_the_spring_forward_night(progress_db) -> None:
    """Paris jumps from 02:00 to 03:00 on 29 March 2026: logins at 00:30 local
    on the 28th, 29th and 30th are three consecutive local days, although
    only 23 hours separate two of them."""
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("login", login_streak(), None)
        for day in (28, 29, 30):
            moment = at(2026, 3, day, 0, 30)
            await tier.feed(
                activity(f"l{day}", "m-1", "app_login", moment, "Europe/Paris"), feed="campaigns"
            )
        tier.clock.set(at(2026, 3, 30, 23, 59))
        assert await figures(tier) == (3, 3)


async def test_a_streak_follows_the_member_into_a_new_zone(progress_db) -> None:
    """Days are the member's local days, in the zone of each event: a login on
    Monday evening in Paris, then Tuesday evening in New York (Wednesday
    morning in Paris) and Wednesday evening in New York, is three days."""
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("login", login_streak(), None)
        await tier.feed(
            activity("l1", "m-1", "app_login", at(2026, 3, 2, 20), "Europe/Paris"), feed="campaigns"
        )
        await tier.feed(
            activity("l2", "m-1", "app_login", at(2026, 3, 3, 20, zone=NEW_YORK), NEW_YORK),
            feed="campaigns",
        )
        await tier.feed(
            activity("l3", "m-1", "app_login", at(2026, 3, 4, 20, zone=NEW_YORK), NEW_YORK),
            feed="campaigns",
        )
        tier.clock.set(at(2026, 3, 4, 23, zone=NEW_YORK))
        assert await figures(tier) == (3, 3)
        (streak,) = (await tier.members.progress("m-1")).streaks
        assert streak.time_zone == NEW_YORK
        # A game played later counts in the member's last known zone.
        await tier.feed(spin("s1", "m-1", at(2026, 3, 5, 23, zone=NEW_YORK)), feed="games")
        assert (await tier.store.read(lambda unit: unit.snapshot("m-1"))).plays[
            0
        ].time_zone == NEW_YORK


async def test_flying_west_never_breaks_a_streak(progress_db) -> None:
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("login", login_streak(), None)
        # Tuesday 08:00 in Tokyo, then Monday 20:00 in New York (later in real time).
        await tier.feed(
            activity("l1", "m-1", "app_login", at(2026, 3, 3, 8, zone=TOKYO), TOKYO),
            feed="campaigns",
        )
        await tier.feed(
            activity("l2", "m-1", "app_login", at(2026, 3, 2, 20, zone=NEW_YORK), NEW_YORK),
            feed="campaigns",
        )
        tier.clock.set(at(2026, 3, 3, 9, zone=NEW_YORK))
        assert await figures(tier) == (2, 2)


def test_a_freeze_bridges_one_missed_day_a_week() -> None:
    monday = 739_677  # date(2026, 3, 2).toordinal()
    days = [monday, monday + 1, monday + 3, monday + 4]  # Wednesday missed
    assert streak_figures(days, False, monday + 4).current == 2
    assert streak_figures(days, True, monday + 4).current == 4
    # A second missed day in the same week breaks it.
    two_gaps = [monday, monday + 2, monday + 4]
    broken = streak_figures(two_gaps, True, monday + 4)
    assert (broken.current, broken.longest) == (1, 2)
    # Missed yesterday: still alive with a freeze, broken without.
    assert streak_figures([monday, monday + 1], True, monday + 3).current == 2
    assert streak_figures([monday, monday + 1], False, monday + 3).current == 0


async def test_a_challenge_completed_in_its_last_minute(progress_db) -> None:
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("weekly", weekly_challenge(), None)
        tier.clock.set(at(2026, 3, 9) - 30 * 1_000_000)
        await tier.feed(activity("r1", "m-1", "product_review", at(2026, 3, 3)), feed="campaigns")
        await tier.feed(
            activity("r2", "m-1", "product_review", at(2026, 3, 8, 23, 59)), feed="campaigns"
        )
        await tier.feed(spin("s1", "m-1", at(2026, 3, 8, 23, 59, 30)), feed="games")
        (view,) = (await tier.members.progress("m-1")).challenges
        assert view.completed_us is not None
        # A spin one second after the window closes belongs to the next window.
        tier.clock.set(at(2026, 3, 9, 0, 0, 1))
        await tier.feed(spin("s2", "m-2", at(2026, 3, 9)), feed="games")
        await tier.feed(
            activity("r3", "m-2", "product_review", at(2026, 3, 8, 12)), feed="campaigns"
        )
        await tier.feed(
            activity("r4", "m-2", "product_review", at(2026, 3, 8, 13)), feed="campaigns"
        )
        (other,) = (await tier.members.progress("m-2")).challenges
        assert other.completed_us is None
        assert [t.amount for t in tier.ledger.paid_to("m-1")] == [150]
        assert tier.ledger.paid_to("m-2") == []


async def test_a_late_event_counts_in_the_window_it_happened_in(progress_db) -> None:
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("weekly", weekly_challenge(), None)
        tier.clock.set(at(2026, 3, 8, 20))
        await tier.feed(activity("r1", "m-1", "product_review", at(2026, 3, 4)), feed="campaigns")
        await tier.feed(spin("s1", "m-1", at(2026, 3, 5)), feed="games")
        # Tracked on Tuesday of the next week, it happened on Sunday: last week's window.
        tier.clock.set(at(2026, 3, 10, 9))
        await tier.feed(
            activity("r2", "m-1", "product_review", at(2026, 3, 8, 21)), feed="campaigns"
        )
        awards = await tier.store.read(lambda unit: unit.awards("m-1"))
        assert [(a.definition_id, int(a.detail)) for a in awards] == [("weekly", at(2026, 3, 2))]
        assert [t.amount for t in tier.ledger.paid_to("m-1")] == [150]
        assert (await tier.members.rebuild("m-1"))[1] == []


async def test_opt_in_challenge_counts_only_after_joining(progress_db) -> None:
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("weekly", weekly_challenge(opt_in=True), None)
        tier.clock.set(at(2026, 3, 4))
        await tier.feed(activity("r1", "m-1", "product_review", at(2026, 3, 3)), feed="campaigns")
        view = await tier.members.join("weekly", "m-1")
        assert view.round.joined and view.round.steps[0].value == 0
        await tier.feed(
            activity("r2", "m-1", "product_review", at(2026, 3, 4, 1)), feed="campaigns"
        )
        await tier.feed(
            activity("r3", "m-1", "product_review", at(2026, 3, 4, 2)), feed="campaigns"
        )
        await tier.feed(spin("s1", "m-1", at(2026, 3, 4, 3)), feed="games")
        (view,) = (await tier.members.progress("m-1")).challenges
        assert view.completed_us is not None
        assert (await tier.members.rebuild("m-1"))[1] == []


async def test_events_dated_in_a_window_not_open_yet_count_as_a_rebuild_counts_them(
    progress_db,
) -> None:
    """Found by the rebuild hypothesis test: the incremental path skipped a window
    that had not opened when its (future-dated) events arrived, the rebuild did not."""
    async with service_tier(progress_db) as tier:
        await tier.catalog.apply("weekly", weekly_challenge(), None)
        tier.clock.set(at(2026, 3, 8, 23, 59, 59))
        await tier.feed(
            activity("r1", "m-1", "product_review", at(2026, 3, 9, 0, 0, 30)), feed="campaigns"
        )
        await tier.feed(
            activity("r2", "m-1", "product_review", at(2026, 3, 9, 0, 1)), feed="campaigns"
        )
        await tier.feed(spin("s1", "m-1", at(2026, 3, 9, 0, 2)), feed="games")
        assert (await tier.members.rebuild("m-1"))[1] == []
        awards = await tier.store.read(lambda unit: unit.awards("m-1"))
        assert [int(a.detail) for a in awards] == [at(2026, 3, 9)]
