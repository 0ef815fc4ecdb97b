"""When something scheduled is live (a campaign, a challenge): wall-clock windows
in a zone, one-off or RRULE. Pure: campaigns and progress share it.

A window holds the instants whose local wall clock falls in [start, end),
where end = local start + duration on the wall clock. One rule resolves every
wall-clock time (window starts, ends, and the midnights of limit periods):
- A time that does not exist (spring forward: clocks jump from 02:00 to
  03:00) means the instant the clocks jump, so [02:30, 03:30) holds the real
  [03:00, 03:30), and a window lying wholly inside the gap is skipped that day.
- A time that happens twice (fall back: 01:00 to 02:00 runs twice) means its
  first occurrence, so [01:00, 02:00) lasts two real hours that night.
So a 48-hour event from Saturday 00:00 ends Monday 00:00 local and lasts 47
real hours over a spring-forward night and 49 over a fall-back one, and a
daily all-day window never leaves a gap or overlaps the next day.
"""

from __future__ import annotations

import calendar
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, rrulestr

from services.kit.text import shown

MICROS = 1_000_000
MAX_ZONE_NAME = 64
# UTC offsets span -12:00 to +14:00: a member-zone window can sit this far from the fallback's.
ZONE_SPREAD_US = 26 * 3600 * MICROS
# Later than any instant: a schedule whose windows have all passed.
NEVER_US = 2**62
# Wall-clock arithmetic can move a resolved instant by a DST gap (at most a day).
SLACK = timedelta(days=1)
# Answers window_at keeps per zone before it starts again (a few hundred KB).
KNOWN_ANSWERS = 10_000
ALLOWED_FREQUENCIES = (YEARLY, MONTHLY, WEEKLY, DAILY)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Every instant the service accepts, and every local time a schedule names, lies
# in [1971, 9998): a window's arithmetic (its length plus a day of slack either
# side, in any zone) then stays inside the years Python's datetime can hold.
FIRST_YEAR = 1971
LAST_YEAR = 9997
EARLIEST_US = 365 * 86_400 * MICROS  # 1971-01-01T00:00:00Z
LATEST_US = 253_339_228_800 * MICROS  # 9998-01-01T00:00:00Z, excluded
INSTANTS = f"a time from {FIRST_YEAR}-01-01 to {LAST_YEAR}-12-31 (UTC)"
MAX_WINDOW_DAYS = 366
# A COUNT is listed in full to find the last window (bounds()).
MAX_COUNT = 10_000


class ZoneMode(Enum):
    CAMPAIGN = "CAMPAIGN"
    MEMBER = "MEMBER"


class LimitPeriod(Enum):
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"
    TOTAL = "TOTAL"


@dataclass(frozen=True, slots=True)
class LocalTime:
    """A wall-clock date and time in some zone."""

    year: int
    month: int
    day: int
    hours: int = 0
    minutes: int = 0
    seconds: int = 0


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    time_zone: str
    start: LocalTime | None = None
    duration_seconds: int = 0
    rrule: str = ""
    exclusions: tuple[LocalTime, ...] = ()
    zone_mode: ZoneMode = ZoneMode.CAMPAIGN
    end_us: int | None = None


class ScheduleError(ValueError):
    """A schedule that cannot be evaluated; `field` names the culprit."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(description)
        self.field = field
        self.description = description


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA zone; ScheduleError for unknown names."""
    # IANA names are short; a long one would reach the file system ("File name too long").
    if not name or len(name) > MAX_ZONE_NAME or name != name.strip() or ".." in name:
        raise ScheduleError("time_zone", f"unknown IANA time zone {shown(name)}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise ScheduleError("time_zone", f"unknown IANA time zone {shown(name)}") from error


def in_range(instant_us: int) -> bool:
    """True for an instant the service accepts (see INSTANTS)."""
    return EARLIEST_US <= instant_us < LATEST_US


def _utc_us(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * MICROS + delta.microseconds


def resolve(local: datetime, tz: ZoneInfo) -> int:
    """A naive wall-clock time in `tz` as UTC microseconds, by the module's DST rule."""
    first = _utc_us(local.replace(tzinfo=tz, fold=0))
    if local_of(first, tz).replace(tzinfo=None) == local:
        return first
    # In a gap: the jump lies between the readings with the offsets before and
    # after it; find the first whole second whose wall clock is past `local`.
    low = _utc_us(local.replace(tzinfo=tz, fold=1)) // MICROS
    high = first // MICROS
    while high - low > 1:
        middle = (low + high) // 2
        if local_of(middle * MICROS, tz).replace(tzinfo=None) >= local:
            high = middle
        else:
            low = middle
    return high * MICROS


def local_of(instant_us: int, tz: ZoneInfo) -> datetime:
    """The aware local datetime of a UTC instant."""
    return (EPOCH + timedelta(microseconds=instant_us)).astimezone(tz)


def naive(moment: LocalTime, field: str = "schedule.start") -> datetime:
    """The wall-clock time; ScheduleError naming `field` when no calendar has it."""
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise ScheduleError(field, f"the year must be {FIRST_YEAR} to {LAST_YEAR}")
    try:
        return datetime(
            moment.year, moment.month, moment.day, moment.hours, moment.minutes, moment.seconds
        )
    except ValueError as error:
        raise ScheduleError(field, f"not a valid date and time: {error}") from error


@dataclass(frozen=True, slots=True)
class Window:
    start_us: int
    end_us: int

    def contains(self, instant_us: int) -> bool:
        return self.start_us <= instant_us < self.end_us


def _low(answer: tuple[int, int, Window | None]) -> int:
    return answer[0]


class Schedule:
    """A compiled ScheduleSpec. Raises ScheduleError when the spec cannot work."""

    def __init__(self, spec: ScheduleSpec) -> None:
        self.spec = spec
        self.zone = zone(spec.time_zone)
        self.always = spec.start is None
        self._duration = timedelta(0)
        self._rule: rrule | None = None
        # Per zone, window_at's answers with the instants [low, high) each holds
        # for (a window, or None up to the next start), ordered by low: dateutil
        # searches an RRULE from its first occurrence, so this searches once per
        # window, not per call, in time order or out of it (a rebuild, late events).
        self._known: dict[str, list[tuple[int, int, Window | None]]] = {}
        if self.always:
            if spec.rrule:
                raise ScheduleError("schedule.start", "an RRULE needs a start")
            return
        if not 0 < spec.duration_seconds <= MAX_WINDOW_DAYS * 86_400:
            raise ScheduleError(
                "schedule.duration",
                f"a window lasts more than zero seconds and at most {MAX_WINDOW_DAYS} days",
            )
        self._duration = timedelta(seconds=spec.duration_seconds)
        self._start = naive(spec.start)
        self._exclusions = frozenset(
            naive(moment, f"schedule.exclusions[{index}]")
            for index, moment in enumerate(spec.exclusions)
        )
        if spec.rrule:
            self._rule = _compile_rrule(spec.rrule, self._start)

    @property
    def member_local(self) -> bool:
        return self.spec.zone_mode is ZoneMode.MEMBER

    def _starts_between(self, low: datetime, high: datetime) -> Iterator[datetime]:
        """Local occurrence starts in [low, high], exclusions removed."""
        if self._rule is None:
            starts: Iterator[datetime] = iter([self._start] if low <= self._start <= high else [])
        else:
            starts = iter(self._rule.between(low, high, inc=True))
        return (start for start in starts if start not in self._exclusions)

    def _window(self, local_start: datetime, tz: ZoneInfo) -> Window | None:
        start_us = resolve(local_start, tz)
        end_us = resolve(local_start + self._duration, tz)
        if self.spec.end_us is not None:
            end_us = min(end_us, self.spec.end_us)
        return Window(start_us, end_us) if start_us < end_us else None

    def window_at(self, instant_us: int, tz: ZoneInfo | None = None) -> Window | None:
        """The window containing the instant (in `tz`, default the campaign's zone)."""
        if self.always:
            if self.spec.end_us is not None and instant_us >= self.spec.end_us:
                return None
            return Window(-(2**62), self.spec.end_us if self.spec.end_us is not None else 2**62)
        tz = tz or self.zone
        known = self._known.setdefault(tz.key, [])
        index = bisect_right(known, instant_us, key=_low) - 1
        if index >= 0 and instant_us < known[index][1]:
            return known[index][2]
        here = local_of(instant_us, tz).replace(tzinfo=None)
        found = self._search(instant_us, here, tz)
        # Starts are searched in order: an earlier window ends by now, so the one
        # found answers until it ends. When none holds the instant, none that
        # started earlier reaches past it: none holds until the next start.
        high = found.end_us if found is not None else self._next_start_us(here, tz)
        if len(known) >= KNOWN_ANSWERS:
            known.clear()
            index = -1
        known.insert(index + 1, (instant_us, high, found))
        return found

    def _search(self, instant_us: int, here: datetime, tz: ZoneInfo) -> Window | None:
        for local_start in self._starts_between(here - self._duration - SLACK, here + SLACK):
            window = self._window(local_start, tz)
            if window is not None and window.contains(instant_us):
                return window
        return None

    def _next_start_us(self, here: datetime, tz: ZoneInfo) -> int:
        """The first window start after the local time `here`, or never."""
        if self._rule is None:
            following = iter([self._start] if self._start > here else [])
        else:
            following = self._rule.xafter(here, inc=False)
        for local_start in following:
            if local_start not in self._exclusions:
                return resolve(local_start, tz)
        return NEVER_US

    def occurrences(
        self, after_us: int, count: int, tz: ZoneInfo | None = None
    ) -> list[tuple[Window, datetime, datetime]]:
        """The next `count` windows ending after `after_us`, with local start and end in
        `tz` (default the campaign's zone). Only member-zone windows follow `tz`'s wall
        clock; a campaign-zone window is the same instants in any zone shown."""
        shown_in = tz or self.zone
        tz = shown_in if self.member_local else self.zone
        if self.always:
            return []
        found: list[tuple[Window, datetime, datetime]] = []
        cursor = local_of(after_us, tz).replace(tzinfo=None) - self._duration - SLACK
        starts = (
            iter([self._start] if self._start >= cursor else [])
            if self._rule is None
            else self._rule.xafter(cursor, inc=True)
        )
        for local_start in starts:
            if local_start in self._exclusions:
                continue
            window = self._window(local_start, tz)
            if self.spec.end_us is not None and resolve(local_start, tz) >= self.spec.end_us:
                break
            if window is None or window.end_us <= after_us:
                continue
            found.append(
                (window, local_of(window.start_us, shown_in), local_of(window.end_us, shown_in))
            )
            if len(found) >= count:
                break
        return found

    def bounds(self) -> tuple[int | None, int | None]:
        """An interval (None: open) surely holding every window in any member's zone,
        so an index can skip the campaign outside it without evaluating the rule."""
        end = self.spec.end_us
        if self.always:
            return None, end
        first = resolve(self._start, self.zone) - ZONE_SPREAD_US
        last: int | None = None
        # dateutil keeps UNTIL and COUNT only in private attributes.
        if self._rule is None:
            last = resolve(self._start + self._duration, self.zone) + ZONE_SPREAD_US
        elif self._rule._until is not None:
            last = resolve(self._rule._until + self._duration, self.zone) + ZONE_SPREAD_US
        elif self._rule._count is not None:
            final = list(self._rule)[-1] if self._rule._count else self._start
            last = resolve(final + self._duration, self.zone) + ZONE_SPREAD_US
        if end is not None:
            last = end if last is None else min(last, end)
        return first, last

    def next_boundary(self, after_us: int) -> int | None:
        """The first window start or end in the campaign's zone strictly after `after_us`."""
        if self.always:
            end = self.spec.end_us
            return end if end is not None and end > after_us else None
        for window, _, _ in self.occurrences(after_us, 2):
            for edge in (window.start_us, window.end_us):
                if edge > after_us:
                    return edge
        return None

    def first_start_us(self) -> int:
        return -(2**62) if self.always else resolve(self._start, self.zone)


def _compile_rrule(text: str, start: datetime) -> rrule:
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[len("RRULE:") :]
    if not body or "\n" in body or "DTSTART" in body.upper() or ":" in body:
        raise ScheduleError("schedule.rrule", "give one RRULE value such as FREQ=WEEKLY;BYDAY=SA")
    try:
        rule = rrulestr(body, dtstart=start, cache=True)
    except (ValueError, TypeError, OverflowError) as error:
        # dateutil's message may quote the client's text: shown() keeps it short.
        raise ScheduleError(
            "schedule.rrule", f"not a valid RFC 5545 RRULE: {shown(str(error))}"
        ) from error
    if not isinstance(rule, rrule) or rule._freq not in ALLOWED_FREQUENCIES:
        raise ScheduleError("schedule.rrule", "FREQ must be YEARLY, MONTHLY, WEEKLY or DAILY")
    if rule._until is not None and rule._until.tzinfo is not None:
        raise ScheduleError("schedule.rrule", "UNTIL is a local time here: drop the trailing Z")
    if rule._until is not None and rule._until.year > LAST_YEAR:
        raise ScheduleError("schedule.rrule", f"UNTIL must be in {LAST_YEAR} or before")
    if rule._count is not None and not 0 < rule._count <= MAX_COUNT:
        raise ScheduleError("schedule.rrule", f"COUNT must be 1 to {MAX_COUNT}")
    _require_possible_days(rule)
    return rule


def _require_possible_days(rule: rrule) -> None:
    """Reject BYMONTH/BYMONTHDAY pairs no calendar has: dateutil would search until year 9999."""
    months = rule._bymonth or tuple(range(1, 13))
    days = rule._bymonthday
    if not days:
        return
    if any(
        -calendar.monthrange(2024, month)[1] <= day <= calendar.monthrange(2024, month)[1]
        for month in months
        for day in days
    ):
        return
    raise ScheduleError("schedule.rrule", "no month in BYMONTH has a day in BYMONTHDAY")


def period_bounds(period: LimitPeriod, instant_us: int, tz: ZoneInfo) -> tuple[int, int]:
    """The local day, ISO week or month holding the instant, as UTC [start, end)."""
    if period is LimitPeriod.TOTAL:
        return -(2**62), 2**62
    today = local_of(instant_us, tz).date()
    if period is LimitPeriod.DAY:
        first, after = today, today + timedelta(days=1)
    elif period is LimitPeriod.WEEK:
        first = today - timedelta(days=today.weekday())
        after = first + timedelta(days=7)
    else:
        first = today.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    return _midnight(first, tz), _midnight(after, tz)


def _midnight(day: date, tz: ZoneInfo) -> int:
    return resolve(datetime(day.year, day.month, day.day), tz)


def local_date(instant_us: int, tz: ZoneInfo) -> date:
    return local_of(instant_us, tz).date()
