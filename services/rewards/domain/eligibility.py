"""Who may redeem a reward, when, and how many units a member has left.

Periods are local to the member's zone (the reward's zone when the member has
none): a day starts at local midnight, a week on Monday at local midnight, a
month on the 1st. "Local midnight" is the first instant of the local date, so a
zone whose clocks jump over midnight starts its day at the jump.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.kit.clock import from_datetime, to_datetime
from services.rewards.domain.catalog import Limits, Reward, opens_at
from services.rewards.domain.zones import zone_of


@dataclass(frozen=True, slots=True)
class MemberProfile:
    """What another service knows of a member that a reward's rules read."""

    # Every tier the member holds (one per tier program, by campaigns' rule).
    tiers: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()
    time_zone: str = ""


@dataclass(frozen=True, slots=True)
class PeriodStarts:
    """The UTC instants (microseconds) the member's current day, week and month began."""

    day_us: int
    week_us: int
    month_us: int


@dataclass(frozen=True, slots=True)
class Usage:
    """Units a member redeemed of one reward in each current period, and ever."""

    day: int = 0
    week: int = 0
    month: int = 0
    total: int = 0


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    message: str


def _utc_us(local: datetime) -> int:
    # Wall-clock arithmetic leaves fold at 0: an ambiguous time is its first
    # occurrence, and zoneinfo maps a missing one to the instant of the jump.
    return from_datetime(local)


def period_starts(now_us: int, zone_name: str, fallback_zone: str = "UTC") -> PeriodStarts:
    zone = zone_of(zone_name, fallback_zone)
    local = to_datetime(now_us).astimezone(zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone)
    monday = midnight - timedelta(days=local.weekday())
    first = datetime(local.year, local.month, 1, tzinfo=zone)
    starts = PeriodStarts(_utc_us(midnight), _utc_us(monday), _utc_us(first))
    # A day that begins with a jump: the first instant of the date is the jump,
    # which is never after now.
    return PeriodStarts(
        min(starts.day_us, now_us), min(starts.week_us, now_us), min(starts.month_us, now_us)
    )


def limit_left(limits: Limits, usage: Usage) -> int | None:
    """Units the member may still redeem now; None when nothing limits them."""
    left = [
        cap - used
        for cap, used in (
            (limits.per_day, usage.day),
            (limits.per_week, usage.week),
            (limits.per_month, usage.month),
            (limits.total, usage.total),
        )
        if cap
    ]
    return max(0, min(left)) if left else None


def refusal(
    reward: Reward, profile: MemberProfile, now_us: int, *, via_offer: bool = False
) -> Refusal | None:
    """Why this member may not redeem this reward now, or None. An offer may give
    a hidden reward and to anyone it was chosen for; the window still applies."""
    spec = reward.spec
    if reward.archived:
        return Refusal("REWARD_ARCHIVED", f"reward {reward.reward_id} is archived")
    if not via_offer:
        if spec.hidden:
            return Refusal(
                "REWARD_NOT_OFFERED", f"reward {reward.reward_id} is given only by offers"
            )
        if spec.tiers and not profile.tiers & set(spec.tiers):
            return Refusal(
                "TIER_NOT_ELIGIBLE",
                f"reward {reward.reward_id} is for tiers {', '.join(spec.tiers)} only",
            )
        if spec.segments and not profile.segments & set(spec.segments):
            return Refusal(
                "SEGMENT_NOT_ELIGIBLE", f"reward {reward.reward_id} is for some segments only"
            )
    opening = opens_at(spec, profile.tiers) if not via_offer else spec.start_us
    if opening is not None and now_us < opening:
        reason = "NOT_YET_AVAILABLE"
        if spec.early_access and not any(e.tier in profile.tiers for e in spec.early_access):
            reason = "EARLY_ACCESS_ONLY"
        return Refusal(reason, f"reward {reward.reward_id} opens later for this member")
    if spec.end_us is not None and now_us >= spec.end_us:
        return Refusal("NO_LONGER_AVAILABLE", f"reward {reward.reward_id} has ended")
    return None
