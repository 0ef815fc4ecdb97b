"""IANA time zones taken from clients, checked before zoneinfo sees them: a long or
odd name reaching zoneinfo is a file-system error ("File name too long"), which
would be INTERNAL; here it is a field violation or, for a member profile from
another service, the reward's zone instead."""

from __future__ import annotations

import functools
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.kit.errors import Violations
from services.kit.text import shown

ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]{0,30}(/[A-Za-z0-9_+-]{1,30}){0,2}")
UTC = ZoneInfo("UTC")


@functools.lru_cache(maxsize=1024)
def zone_or_none(name: str) -> ZoneInfo | None:
    if not ZONE_NAME.fullmatch(name):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def check_zone(violations: Violations, path: str, name: str) -> None:
    if zone_or_none(name) is None:
        violations.add(path, f"must be an IANA time zone such as Europe/Paris, got {shown(name)}")


def zone_of(name: str, fallback: str = "UTC") -> ZoneInfo:
    """The zone named, else the fallback's, else UTC."""
    return zone_or_none(name) or zone_or_none(fallback) or UTC
