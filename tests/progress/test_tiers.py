"""Tier standing as a pure function: windows, grace, policies, floors, reversals."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from services.kit.clock import from_datetime
from services.progress.domain.definitions import Downgrade, Tier, TierProgram, WindowKind
from services.progress.domain.tiers import Floor, Qualifying, shift_months, standing

DAY = 86_400 * 1_000_000
SECOND = 1_000_000
PARIS = "Europe/Paris"


def at(*parts: int, zone: str = PARIS) -> int:
    return from_datetime(datetime(*parts, tzinfo=ZoneInfo(zone)))


def program(window=WindowKind.CALENDAR_YEAR, grace_days=0, downgrade=Downgrade.RECOMPUTE, **kw):
    return TierProgram(
        display_name="Club",
        time_zone=PARIS,
        tiers=(Tier("member"), Tier("silver", min_points=1_000), Tier("gold", min_points=5_000)),
        window=window,
        grace_us=grace_days * DAY,
        downgrade=downgrade,
        **kw,
    )


def tier_at(spec: TierProgram, history, now, anchor=None, floor=None) -> str:
    found = standing(spec, sorted(history, key=lambda e: e.at_us), anchor, floor, now)
    return spec.tiers[found.rank].tier_id


def test_rolling_window_a_point_twelve_months_and_one_second_old_no_longer_counts() -> None:
    spec = program(WindowKind.ROLLING_MONTHS, rolling_months=12)
    now = at(2026, 6, 15, 12, 0, 0)
    exactly = shift_months(now, -12, PARIS)
    assert exactly == at(2025, 6, 15, 12, 0, 0)
    inside = standing(spec, [Qualifying(exactly, points=1_000)], None, None, now)
    assert (inside.points, spec.tiers[inside.rank].tier_id) == (1_000, "silver")
    outside = standing(spec, [Qualifying(exactly - SECOND, points=1_000)], None, None, now)
    assert (outside.points, outside.rank) == (0, 0)


def test_rolling_window_keeps_the_tier_for_the_grace_after_points_age_out() -> None:
    spec = program(WindowKind.ROLLING_MONTHS, rolling_months=12, grace_days=30)
    earned = at(2025, 1, 10)
    history = [Qualifying(earned, points=1_200)]
    ages_out = shift_months(earned, 12, PARIS) + 1
    found = standing(spec, history, None, None, at(2025, 6, 1))
    assert found.kept_until_us == ages_out + 30 * DAY
    assert found.keep_points_needed == 1_000
    assert tier_at(spec, history, ages_out + 29 * DAY) == "silver"
    assert tier_at(spec, history, ages_out + 30 * DAY) == "member"


def test_calendar_year_tier_is_kept_through_the_next_year_then_recomputed() -> None:
    spec = program(grace_days=31)
    history = [Qualifying(at(2025, 3, 1), points=5_000), Qualifying(at(2026, 2, 1), points=1_000)]
    assert tier_at(spec, history, at(2025, 3, 1, 0, 0, 1)) == "gold"
    assert tier_at(spec, history, at(2026, 12, 31, 23, 59)) == "gold"
    # Through 2026, plus January 2027: then 2026's 1,000 points hold silver.
    assert tier_at(spec, history, at(2027, 1, 31, 23, 59, 59)) == "gold"
    assert tier_at(spec, history, at(2027, 2, 1)) == "silver"
    found = standing(spec, history, None, None, at(2026, 6, 1))
    assert found.kept_until_us == at(2027, 2, 1)
    # Earning gold again in 2026 would keep it through 2027.
    assert (found.keep_points_needed, found.keep_by_us) == (4_000, at(2027, 1, 1))


def test_downgrade_at_period_end_only_after_grace() -> None:
    spec = program(grace_days=10)
    history = [Qualifying(at(2025, 5, 5), points=1_000)]
    end = at(2027, 1, 1)
    assert tier_at(spec, history, end + 10 * DAY - 1) == "silver"
    assert tier_at(spec, history, end + 10 * DAY) == "member"


def test_one_step_goes_down_one_tier_per_year_recompute_straight_to_what_is_earned() -> None:
    history = [Qualifying(at(2024, 4, 1), points=5_000)]
    one_step = program(downgrade=Downgrade.ONE_STEP)
    recompute = program(downgrade=Downgrade.RECOMPUTE)
    assert tier_at(recompute, history, at(2026, 1, 1)) == "member"
    assert tier_at(one_step, history, at(2025, 12, 31)) == "gold"
    assert tier_at(one_step, history, at(2026, 1, 1)) == "silver"
    assert tier_at(one_step, history, at(2026, 12, 31)) == "silver"
    assert tier_at(one_step, history, at(2027, 1, 1)) == "member"


def test_anniversary_year_counts_from_the_members_first_event() -> None:
    spec = program(WindowKind.ANNIVERSARY_YEAR)
    anchor = at(2025, 9, 20, 15, 0)
    history = [Qualifying(at(2026, 9, 19), points=600), Qualifying(at(2026, 9, 20), points=600)]
    # The two purchases fall in different anniversary years (from 20 September).
    found = standing(spec, history, anchor, None, at(2026, 9, 21))
    assert (found.points, found.rank) == (600, 0)
    assert found.window_start_us == at(2026, 9, 20)
    both = standing(spec, history, anchor, None, at(2026, 9, 21))
    assert spec.tiers[both.rank].tier_id == "member"
    calendar = standing(program(), history, anchor, None, at(2026, 9, 21))
    assert spec.tiers[calendar.rank].tier_id == "silver"


def test_manual_floor_holds_until_it_expires() -> None:
    spec = program()
    floor = Floor("gold", at(2026, 3, 1), "status match")
    history = [Qualifying(at(2026, 1, 5), points=1_000)]
    held = standing(spec, history, None, floor, at(2026, 2, 28))
    assert (spec.tiers[held.rank].tier_id, spec.tiers[held.earned_rank].tier_id) == (
        "gold",
        "silver",
    )
    assert held.kept_until_us == floor.expire_us
    after = standing(spec, history, None, floor, at(2026, 3, 1))
    assert spec.tiers[after.rank].tier_id == "silver" and after.floor is None


def test_a_refund_taken_off_the_history_pulls_the_member_below_the_threshold() -> None:
    spec = program()
    bought = at(2026, 4, 1)
    assert tier_at(spec, [Qualifying(bought, points=1_000)], at(2026, 4, 2)) == "silver"
    # The purchase's credit net of its clawback: 1,000 - 300.
    assert tier_at(spec, [Qualifying(bought, points=700)], at(2026, 4, 2)) == "member"


def test_activity_thresholds_need_both_points_and_activities() -> None:
    spec = TierProgram(
        "Club",
        PARIS,
        (Tier("member"), Tier("silver", min_points=100, min_activities=3)),
        WindowKind.CALENDAR_YEAR,
    )
    points = [Qualifying(at(2026, 1, 2), points=500)]
    visits = [Qualifying(at(2026, 1, 3 + n), activities=1) for n in range(3)]
    assert tier_at(spec, points + visits[:2], at(2026, 2, 1)) == "member"
    assert tier_at(spec, points + visits, at(2026, 2, 1)) == "silver"


def test_month_arithmetic_clamps_to_the_last_day_across_dst() -> None:
    assert shift_months(at(2026, 1, 31, 12), 1, PARIS) == at(2026, 2, 28, 12)
    # 29 March 2026 02:30 does not exist in Paris: the instant the clocks jump.
    assert shift_months(at(2026, 2, 28, 2, 30), 1, PARIS) == at(2026, 3, 28, 2, 30)
