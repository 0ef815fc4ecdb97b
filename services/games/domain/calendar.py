"""Time zones, a member's days and weeks, active windows and daily limits.

A member's day is the calendar day in the game's IANA time zone; weeks start on
Monday there. Time is stored as UTC microseconds; zones are read only here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.kit.clock import from_datetime, to_datetime
from services.kit.errors import Violations
from services.kit.text import shown

# Longer than any IANA name (the longest is about 30 characters): refused before
# zoneinfo turns it into a file path.
MAX_ZONE_NAME = 64


def zone_of(name: str) -> ZoneInfo | None:
    """The zone an IANA name names, or None for anything else. zoneinfo reads
    the name as a path: a long one is OSError ("File name too long"), a NUL or
    a relative path ValueError, a folder IsADirectoryError; none is a zone."""
    if not name or len(name) > MAX_ZONE_NAME:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def check_zone(violations: Violations, field: str, name: str) -> bool:
    """Adds a violation naming `field` unless `name` is an IANA time zone."""
    return violations.check(
        zone_of(name) is not None, field, f"must be an IANA time zone, got {shown(name)}"
    )


def zone(name: str) -> ZoneInfo:
    """The zone of a stored, validated configuration."""
    found = zone_of(name)
    if found is None:
        raise ValueError(f"not an IANA time zone: {shown(name)}")
    return found


def local_day(moment_us: int, zone_info: ZoneInfo) -> date:
    return to_datetime(moment_us).astimezone(zone_info).date()


def day_start_us(day: date, zone_info: ZoneInfo) -> int:
    """The first instant of a local day. When midnight falls in a DST gap,
    fold=0 maps it to the transition instant, which is that first instant."""
    return from_datetime(datetime.combine(day, time(0), tzinfo=zone_info))


def next_day_start_us(moment_us: int, zone_info: ZoneInfo) -> int:
    return day_start_us(local_day(moment_us, zone_info) + timedelta(days=1), zone_info)


def week_start(moment_us: int, zone_info: ZoneInfo) -> date:
    today = local_day(moment_us, zone_info)
    return today - timedelta(days=today.weekday())


@dataclass(frozen=True, slots=True)
class Week:
    """A game's week: Monday 00:00 to the next Monday 00:00 in its zone."""

    monday: date
    start_us: int
    end_us: int

    @property
    def key(self) -> str:
        return self.monday.isoformat()


def week_of(moment_us: int, zone_info: ZoneInfo) -> Week:
    monday = week_start(moment_us, zone_info)
    return Week(
        monday,
        day_start_us(monday, zone_info),
        day_start_us(monday + timedelta(days=7), zone_info),
    )


def in_window(now_us: int, start_us: int | None, end_us: int | None) -> bool:
    if start_us is not None and now_us < start_us:
        return False
    return end_us is None or now_us < end_us


@dataclass(frozen=True, slots=True)
class Allowance:
    """What one member may still do on a wheel today."""

    member_id: str
    unlimited: bool
    spins_left: int
    reset_us: int
    cost_points: int


def spins_left(limit: int, used: int) -> int:
    """Spins left today under a daily limit (0 means no limit, and reports 0)."""
    return max(0, limit - used) if limit else 0
