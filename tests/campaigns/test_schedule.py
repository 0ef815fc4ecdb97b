"""Schedules: DST days, member zones, exclusions, monthly rules, campaign end."""

from __future__ import annotations

import random

import pytest

from services.kit.schedule import (
    LimitPeriod,
    Schedule,
    ScheduleError,
    ScheduleSpec,
    ZoneMode,
    period_bounds,
    zone,
)
from tests.support.campaign_specs import at, local, window

NEW_YORK = "America/New_York"  # 2026: clocks jump 02:00 -> 03:00 on 8 March, back on 1 November
PARIS = "Europe/Paris"  # 2026: 02:00 -> 03:00 on 29 March, 03:00 -> 02:00 on 25 October
HOUR = 3600 * 1_000_000


def daily(start: str, hours: float, zone_name: str = NEW_YORK, **fields) -> Schedule:
    return Schedule(window(start, hours, zone_name, rrule="FREQ=DAILY", **fields))


def windows_on(schedule: Schedule, day: str, zone_name: str = NEW_YORK):
    """The windows starting on a local day."""
    found = schedule.occurrences(at(f"{day}T00:00:00", zone_name), 5)
    return [w for w, start, _ in found if start.date().isoformat() == day]


def test_daily_window_across_spring_forward_keeps_only_the_real_part():
    schedule = daily("2026-03-01T01:30:00", 2)
    (normal,) = windows_on(schedule, "2026-03-07")
    (spring,) = windows_on(schedule, "2026-03-08")
    assert normal.end_us - normal.start_us == 2 * HOUR
    # 01:30 EST to 03:30 EDT is one real hour.
    assert spring.start_us == at("2026-03-08T01:30:00", NEW_YORK)
    assert spring.end_us == at("2026-03-08T03:30:00", NEW_YORK)
    assert spring.end_us - spring.start_us == HOUR


def test_a_start_inside_the_gap_means_the_instant_the_clocks_jump():
    schedule = daily("2026-03-01T02:30:00", 1)
    (spring,) = windows_on(schedule, "2026-03-08")
    assert spring.start_us == at("2026-03-08T03:00:00", NEW_YORK)
    assert spring.end_us == at("2026-03-08T03:30:00", NEW_YORK)
    assert schedule.window_at(at("2026-03-08T03:10:00", NEW_YORK)) == spring


def test_a_window_wholly_inside_the_gap_is_skipped_that_day():
    schedule = daily("2026-03-01T02:00:00", 1)
    assert windows_on(schedule, "2026-03-08") == []
    assert len(windows_on(schedule, "2026-03-09")) == 1


def test_daily_window_on_fall_back_day_covers_both_passes_of_the_hour():
    schedule = daily("2026-10-01T01:00:00", 1)
    (fall,) = windows_on(schedule, "2026-11-01")
    assert fall.end_us - fall.start_us == 2 * HOUR
    first_pass = at("2026-11-01T01:30:00", NEW_YORK)  # fold=0: EDT
    assert schedule.window_at(first_pass) == fall
    assert schedule.window_at(first_pass + HOUR) == fall  # 01:30 EST, the second pass
    assert schedule.window_at(first_pass + 2 * HOUR) is None


def test_repeated_start_time_means_the_first_occurrence():
    schedule = daily("2026-10-01T01:30:00", 0.5)
    (fall,) = windows_on(schedule, "2026-11-01")
    assert fall.start_us == at("2026-11-01T05:30:00", "UTC")  # 01:30 EDT


@pytest.mark.parametrize(
    ("start", "real_hours"),
    [("2026-03-28T00:00:00", 47), ("2026-10-24T00:00:00", 49), ("2026-06-06T00:00:00", 48)],
)
def test_48_hour_event_spanning_a_dst_change_ends_at_the_same_wall_clock(start, real_hours):
    schedule = Schedule(window(start, 48, PARIS))
    ((event, local_start, local_end),) = schedule.occurrences(at(start, PARIS) - HOUR, 3)
    assert (event.end_us - event.start_us) // HOUR == real_hours
    assert local_end.time() == local_start.time()
    assert schedule.window_at(event.end_us - 1) == event
    assert schedule.window_at(event.end_us) is None


def test_member_local_windows_follow_each_members_zone():
    spec = window("2026-01-01T18:00:00", 2, PARIS, rrule="FREQ=DAILY", zone_mode=ZoneMode.MEMBER)
    schedule = Schedule(spec)
    evening_in_new_york = at("2026-02-10T19:00:00", NEW_YORK)
    evening_in_paris = at("2026-02-10T19:00:00", PARIS)
    assert schedule.window_at(evening_in_new_york, zone(NEW_YORK)) is not None
    assert schedule.window_at(evening_in_new_york, zone(PARIS)) is None
    assert schedule.window_at(evening_in_paris, zone(PARIS)) is not None
    assert schedule.window_at(evening_in_paris, zone(NEW_YORK)) is None


def test_a_campaign_zone_window_shown_in_another_zone_is_the_same_instants():
    schedule = Schedule(window("2026-12-05T18:00:00", 2, PARIS))
    after = at("2026-12-01T00:00:00", PARIS)
    ((paris, _, _),) = schedule.occurrences(after, 3)
    ((shown, start, end),) = schedule.occurrences(after, 3, zone(NEW_YORK))
    assert shown == paris
    assert (start.isoformat(), end.isoformat()) == (
        "2026-12-05T12:00:00-05:00",
        "2026-12-05T14:00:00-05:00",
    )


def test_a_member_zone_window_shown_in_a_zone_follows_its_wall_clock():
    spec = window("2026-12-05T18:00:00", 2, PARIS, zone_mode=ZoneMode.MEMBER)
    ((_, start, _),) = Schedule(spec).occurrences(
        at("2026-12-01T00:00:00", PARIS), 3, zone(NEW_YORK)
    )
    assert start.isoformat() == "2026-12-05T18:00:00-05:00"


def test_exclusion_dates_skip_an_occurrence():
    spec = window(
        "2026-01-03T00:00:00",
        24,
        PARIS,
        rrule="FREQ=WEEKLY;BYDAY=SA",
        exclusions=(local("2026-01-10T00:00:00"),),
    )
    schedule = Schedule(spec)
    starts = [
        s.date().isoformat() for _, s, _ in schedule.occurrences(at("2026-01-01T00:00:00"), 3)
    ]
    assert starts == ["2026-01-03", "2026-01-17", "2026-01-24"]
    assert schedule.window_at(at("2026-01-10T12:00:00", PARIS)) is None


def test_monthly_rule_on_the_31st_skips_shorter_months_and_minus_one_means_last_day():
    on_31st = Schedule(window("2026-01-31T00:00:00", 24, PARIS, rrule="FREQ=MONTHLY;BYMONTHDAY=31"))
    months = [s.month for _, s, _ in on_31st.occurrences(at("2026-01-01T00:00:00", PARIS), 4)]
    assert months == [1, 3, 5, 7]
    last_day = Schedule(
        window("2026-01-31T00:00:00", 24, PARIS, rrule="FREQ=MONTHLY;BYMONTHDAY=-1")
    )
    days = [s.day for _, s, _ in last_day.occurrences(at("2026-01-01T00:00:00", PARIS), 3)]
    assert days == [31, 28, 31]


def test_windows_are_cut_at_the_campaign_end():
    end = at("2026-02-03T20:00:00", PARIS)
    schedule = daily("2026-02-01T18:00:00", 4, PARIS, end_us=end)
    found = schedule.occurrences(at("2026-02-01T00:00:00", PARIS), 10)
    assert len(found) == 3
    assert found[-1][0].end_us == end
    assert schedule.window_at(end - 1) is not None
    assert schedule.window_at(end) is None
    assert schedule.next_boundary(end) is None


def test_an_always_on_schedule_ends_at_its_end_time():
    end = at("2026-02-03T20:00:00", PARIS)
    schedule = Schedule(ScheduleSpec(time_zone=PARIS, end_us=end))
    assert schedule.window_at(end - 1) is not None
    assert schedule.window_at(end) is None


def test_limit_day_on_spring_forward_lasts_23_hours():
    start, end = period_bounds(LimitPeriod.DAY, at("2026-03-08T12:00:00", NEW_YORK), zone(NEW_YORK))
    assert (end - start) // HOUR == 23
    start, end = period_bounds(
        LimitPeriod.WEEK, at("2026-03-11T12:00:00", NEW_YORK), zone(NEW_YORK)
    )
    assert start == at("2026-03-09T00:00:00", NEW_YORK)
    assert (end - start) // HOUR == 7 * 24


def test_bounds_hold_every_window():
    schedule = Schedule(window("2026-02-01T18:00:00", 4, PARIS, rrule="FREQ=DAILY;COUNT=3"))
    first, last = schedule.bounds()
    windows = [w for w, _, _ in schedule.occurrences(at("2026-01-01T00:00:00", PARIS), 10)]
    assert len(windows) == 3
    assert first <= windows[0].start_us
    assert last >= windows[-1].end_us


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"rrule": "FREQ=SOMETIMES"}, "schedule.rrule"),
        ({"rrule": "FREQ=SECONDLY"}, "schedule.rrule"),
        ({"rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}, "schedule.rrule"),
        ({"rrule": "FREQ=DAILY;UNTIL=20260301T000000Z"}, "schedule.rrule"),
        ({"duration_seconds": 0}, "schedule.duration"),
    ],
)
def test_unusable_schedules_are_refused(fields, field):
    values = {
        "time_zone": PARIS,
        "start": local("2026-01-01T00:00:00"),
        "duration_seconds": 3600,
    } | fields
    with pytest.raises(ScheduleError) as raised:
        Schedule(ScheduleSpec(**values))
    assert raised.value.field == field


@pytest.mark.parametrize(
    "spec",
    [
        window("2026-03-01T01:30:00", 2, NEW_YORK, rrule="FREQ=DAILY"),
        window("2026-03-01T02:30:00", 0.25, NEW_YORK, rrule="FREQ=DAILY;BYHOUR=2,12"),
        # Longer than the interval: each window overlaps the next.
        window("2026-01-01T18:00:00", 30, PARIS, rrule="FREQ=DAILY"),
        window(
            "2026-01-06T00:00:00",
            24,
            PARIS,
            rrule="FREQ=WEEKLY;BYDAY=TU,SA;COUNT=40",
            exclusions=(local("2026-03-10T00:00:00"), local("2026-10-24T00:00:00")),
        ),
        window("2026-01-31T09:00:00", 10, NEW_YORK, rrule="FREQ=MONTHLY;BYMONTHDAY=31,-1"),
        window(
            "2026-01-01T00:30:00",
            1,
            NEW_YORK,
            rrule="FREQ=DAILY",
            end_us=at("2026-10-31T12:00:00", NEW_YORK),
        ),
        window("2026-11-01T01:15:00", 1, NEW_YORK),
        window("2026-02-01T20:00:00", 3, NEW_YORK, rrule="FREQ=DAILY", zone_mode=ZoneMode.MEMBER),
    ],
)
def test_window_at_remembers_windows_and_gaps_with_the_answers_of_a_fresh_search(spec):
    """window_at keeps its answers per zone (a window, or a gap up to the next
    start); the answers are those of a schedule that never answered before, in
    time order and out of it, around both DST changes, in members' zones."""
    rng = random.Random(13)
    first, last = at("2026-02-25T00:00:00", NEW_YORK), at("2026-11-05T00:00:00", NEW_YORK)
    instants = sorted(rng.randrange(first, last) for _ in range(250))
    # Around the DST changes, 20 minutes apart; then a shuffled pass.
    for change in ("2026-03-08T00:00:00", "2026-11-01T00:00:00", "2026-10-25T00:00:00"):
        start = at(change, NEW_YORK)
        instants += [start + step * 20 * 60 * 1_000_000 for step in range(3 * 30)]
    shuffled = instants[:]
    rng.shuffle(shuffled)
    remembering = Schedule(spec)
    zones = [None, zone(PARIS), zone("Asia/Tokyo")]
    for instant in instants + shuffled:
        tz = zones[instant % 3]
        assert remembering.window_at(instant, tz) == Schedule(spec).window_at(instant, tz)
