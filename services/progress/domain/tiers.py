"""Where a member stands in a tier program, as a pure function of their
qualifying history, their manual floor and the instant asked about.

- Qualifying history: one entry per qualifying credit (its points net of
  reversals, at the time it counts: the activity's event time when it came
  from one) and per qualifying activity.
- Yearly windows (calendar or anniversary year, in the program's zone): a tier
  reached during one year is kept through the end of the next year, plus the
  grace period. With RECOMPUTE the member then lands on what is still earned;
  with ONE_STEP they go down at most one tier at each year's end (plus grace).
- Rolling windows of N months: a point counts from the instant it is earned
  until N months later on the program's wall clock (12 months and one second
  later it no longer counts); the tier is kept while the window holds it, plus
  the grace period, then recomputed.
- A floor (status match) holds until it expires: the member holds at least it.
Upgrades take effect as soon as the history holds them; because the function
is pure, a rebuild from the same history gives the same answer.
"""

from __future__ import annotations

import calendar
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from services.kit.schedule import local_of, resolve, zone
from services.progress.domain.definitions import Downgrade, TierProgram, WindowKind

FOREVER = 2**62


@dataclass(frozen=True, slots=True)
class Qualifying:
    """One entry of a member's qualifying history."""

    at_us: int
    points: int = 0
    activities: int = 0


@dataclass(frozen=True, slots=True)
class Floor:
    tier_id: str
    expire_us: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Standing:
    """A member's tier in one program at one instant, and what it takes to keep or pass it."""

    rank: int
    earned_rank: int
    points: int
    activities: int
    window_start_us: int
    kept_until_us: int | None
    keep_points_needed: int
    keep_activities_needed: int
    keep_by_us: int | None
    floor: Floor | None

    @property
    def next_review_us(self) -> int | None:
        """When this standing may change with no new event: the tier running out,
        or the floor expiring."""
        moments = [self.kept_until_us]
        if self.floor is not None:
            moments.append(self.floor.expire_us)
        future = [moment for moment in moments if moment is not None]
        return min(future) if future else None


def shift_months(instant_us: int, months: int, tz_name: str) -> int:
    """The same wall-clock time `months` later (or earlier) in the zone; a day
    past the end of the month is its last day (31 January + 1 month = 28 February)."""
    tz = zone(tz_name)
    local = local_of(instant_us, tz).replace(tzinfo=None)
    index = local.year * 12 + local.month - 1 + months
    year, month = divmod(index, 12)
    day = min(local.day, calendar.monthrange(year, month + 1)[1])
    return resolve(local.replace(year=year, month=month + 1, day=day), tz) + local.microsecond


def rank_of(program: TierProgram, points: int, activities: int) -> int:
    rank = 0
    for index, tier in enumerate(program.tiers):
        if points >= tier.min_points and activities >= tier.min_activities:
            rank = index
    return rank


def horizon_us(program: TierProgram, anchor_us: int | None, now_us: int) -> int:
    """The earliest instant whose entries can matter at `now_us`."""
    if program.window is WindowKind.ROLLING_MONTHS:
        return shift_months(now_us - program.grace_us, -program.rolling_months, program.time_zone)
    if program.downgrade is Downgrade.ONE_STEP:
        return -FOREVER
    years = _years_of(program, anchor_us)
    return years.start(years.year_of(now_us) - 2)


def year_bounds(program: TierProgram, anchor_us: int | None, now_us: int) -> list[int] | None:
    """The starts of the years whose totals decide a RECOMPUTE yearly program
    (the year before last to next year's start), or None when the whole history
    is needed (rolling windows, ONE_STEP)."""
    if program.window is WindowKind.ROLLING_MONTHS or program.downgrade is Downgrade.ONE_STEP:
        return None
    years = _years_of(program, anchor_us)
    current = years.year_of(now_us)
    return [years.start(year) for year in range(current - 2, current + 2)]


def year_of(program: TierProgram, anchor_us: int | None, instant_us: int) -> int:
    """The qualifying year (its calendar year of start) an instant falls in."""
    return _years_of(program, anchor_us).year_of(instant_us)


def standing(
    program: TierProgram,
    history: Sequence[Qualifying],
    anchor_us: int | None,
    floor: Floor | None,
    now_us: int,
) -> Standing:
    """`history` holds at least the entries from horizon_us(), sorted by time;
    `anchor_us` is the member's first event (their anniversary)."""
    if program.window is WindowKind.ROLLING_MONTHS:
        held = _rolling(program, history, now_us)
    else:
        held = _yearly(program, history, anchor_us, now_us)
    earned = held.rank
    if floor is not None and floor.expire_us > now_us and program.rank(floor.tier_id) > earned:
        rank = program.rank(floor.tier_id)
        kept_until, keep_by = floor.expire_us, floor.expire_us
        needed = program.tiers[rank]
        keep_points = max(0, needed.min_points - held.points)
        keep_activities = max(0, needed.min_activities - held.activities)
    else:
        rank = earned
        kept_until, keep_by = held.kept_until_us, held.keep_by_us
        keep_points, keep_activities = held.keep_points, held.keep_activities
    active_floor = floor if floor is not None and floor.expire_us > now_us else None
    if rank == 0:
        kept_until = keep_by = None
        keep_points = keep_activities = 0
    return Standing(
        rank=rank,
        earned_rank=earned,
        points=held.points,
        activities=held.activities,
        window_start_us=held.window_start_us,
        kept_until_us=kept_until,
        keep_points_needed=keep_points,
        keep_activities_needed=keep_activities,
        keep_by_us=keep_by,
        floor=active_floor,
    )


@dataclass(frozen=True, slots=True)
class _Held:
    rank: int
    points: int
    activities: int
    window_start_us: int
    kept_until_us: int | None
    keep_by_us: int | None
    keep_points: int
    keep_activities: int


# ------------------------------------------------------------------ yearly windows


def _years_of(program: TierProgram, anchor_us: int | None) -> _Years:
    if program.window is WindowKind.ANNIVERSARY_YEAR and anchor_us is not None:
        anchor = local_of(anchor_us, zone(program.time_zone))
        return _years(program.time_zone, anchor.month, anchor.day)
    return _years(program.time_zone, 1, 1)


@lru_cache(maxsize=1024)
def _years(zone_name: str, month: int, day: int) -> _Years:
    """Shared by every evaluation: each knows the year starts found so far."""
    return _Years(zone_name, month, day)


@lru_cache(maxsize=65536)
def _year_start(zone_name: str, month: int, day: int, year: int) -> int:
    clamped = min(day, calendar.monthrange(year, month)[1])
    return resolve(datetime(year, month, clamped), zone(zone_name))


class _Years:
    """Qualifying years in the program's zone: from 1 January, or from the
    member's anniversary (29 February falls on 28 February in other years).
    Year starts are cached; placing an instant in its year is a bisection."""

    def __init__(self, zone_name: str, month: int, day: int) -> None:
        self.zone_name, self.month, self.day = zone_name, month, day
        # (first year, the starts of it and the years after): replaced whole, never
        # changed in place, as the store's reader thread shares it with the writer.
        self._known: tuple[int, list[int]] = (0, [])

    def start(self, year: int) -> int:
        return _year_start(self.zone_name, self.month, self.day, year)

    def year_of(self, instant_us: int) -> int:
        first, starts = self._known
        if starts and starts[0] <= instant_us < starts[-1]:
            return first + bisect_right(starts, instant_us) - 1
        year = local_of(instant_us, zone(self.zone_name)).year
        while instant_us < self.start(year):
            year -= 1
        while instant_us >= self.start(year + 1):
            year += 1
        # Cover the years around it, so the next instants are found by bisection.
        low = min(year - 1, first) if starts else year - 1
        high = max(year + 2, first + len(starts) - 1) if starts else year + 2
        self._known = (low, [self.start(y) for y in range(low, high + 1)])
        return year


def _yearly(
    program: TierProgram, history: Sequence[Qualifying], anchor_us: int | None, now_us: int
) -> _Held:
    years = _years_of(program, anchor_us)
    current = years.year_of(now_us)
    totals: dict[int, list[int]] = {}
    for entry in history:
        year = years.year_of(entry.at_us)
        total = totals.setdefault(year, [0, 0])
        total[0] += entry.points
        total[1] += entry.activities

    def earned(year: int) -> int:
        points, activities = totals.get(year, (0, 0))
        return rank_of(program, points, activities)

    grace = program.grace_us

    def boundary(year: int) -> int:
        """When the tiers earned two years before `year` run out."""
        return years.start(year) + grace

    # Each year earned stays valid until boundary(year + 2).
    supports = [(earned(year), boundary(year + 2)) for year in (current, current - 1, current - 2)]
    if program.downgrade is Downgrade.ONE_STEP and totals:
        step, step_until = 0, 0
        for year in range(min(totals) + 2, current + 2):
            moment = boundary(year)
            if moment > now_us:
                break
            partial = (
                sum(entry.points for entry in history if years.start(year) <= entry.at_us < moment),
                sum(
                    entry.activities
                    for entry in history
                    if years.start(year) <= entry.at_us < moment
                ),
            )
            before = max(step, earned(year - 1), earned(year - 2), rank_of(program, *partial))
            after = max(earned(year - 1), rank_of(program, *partial))
            step = before - 1 if before - 1 > after else 0
            step_until = boundary(year + 1)
        if step:
            supports.append((step, step_until))
    valid = [(rank, until) for rank, until in supports if until > now_us]
    rank = max((rank for rank, _ in valid), default=0)
    points, activities = totals.get(current, (0, 0))
    kept_until = max((until for held, until in valid if held >= rank), default=None)
    tier = program.tiers[rank]
    next_start = years.start(current + 1)
    return _Held(
        rank=rank,
        points=points,
        activities=activities,
        window_start_us=years.start(current),
        kept_until_us=kept_until,
        keep_by_us=min(next_start, kept_until) if kept_until is not None else None,
        keep_points=max(0, tier.min_points - points),
        keep_activities=max(0, tier.min_activities - activities),
    )


# ------------------------------------------------------------------ rolling windows


def _rolling(program: TierProgram, history: Sequence[Qualifying], now_us: int) -> _Held:
    months, name = program.rolling_months, program.time_zone
    # A point counts while at_us <= t < exit.
    entries = [
        (entry.at_us, shift_months(entry.at_us, months, name) + 1, entry) for entry in history
    ]
    times = [at for at, _, _ in entries]

    def totals(t: int, future: bool = False) -> tuple[int, int]:
        points = activities = 0
        stop = len(entries) if future else bisect_right(times, t)
        for at, exit_us, entry in entries[:stop]:
            if at <= t < exit_us or (future and at > t):
                points += entry.points
                activities += entry.activities
        return points, activities

    now_points, now_activities = totals(now_us, future=True)
    now_rank = rank_of(program, now_points, now_activities)
    grace = program.grace_us
    # The best tier of the last `grace`: the window only changes where an entry
    # comes in (a rise) or leaves (a fall), so the maxima sit at entries.
    moments = [now_us - grace] + [at for at in times if now_us - grace < at <= now_us]
    ranked = [(rank_of(program, *totals(moment)), moment) for moment in moments if grace]
    rank = max([now_rank, *(held for held, _ in ranked)])
    kept_until = keep_points = keep_activities = None
    if rank:
        tier = program.tiers[rank]
        # From the last moment the window held the tier, entries leave in exit order
        # until it no longer does: that is when the grace starts.
        since = now_us if now_rank >= rank else max(m for held, m in ranked if held >= rank)
        points, activities = totals(since, future=since == now_us)
        leaving = sorted(
            (exit_us, index)
            for index, (at, exit_us, _) in enumerate(entries)
            # Now, entries dated a little ahead (clock skew) count as well.
            if since < exit_us and (at <= since or since == now_us)
        )
        drop = FOREVER
        for exit_us, index in leaving:
            entry = entries[index][2]
            points -= entry.points
            activities -= entry.activities
            if points < tier.min_points or activities < tier.min_activities:
                drop = exit_us
                break
        kept_until = drop + grace
        keep_points = max(0, tier.min_points - points)
        keep_activities = max(0, tier.min_activities - activities)
    return _Held(
        rank=rank,
        points=now_points,
        activities=now_activities,
        window_start_us=shift_months(now_us, -months, name),
        kept_until_us=kept_until,
        keep_by_us=kept_until,
        keep_points=keep_points or 0,
        keep_activities=keep_activities or 0,
    )
