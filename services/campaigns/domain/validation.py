"""Checks on what callers send; every bad field is named at once."""

from __future__ import annotations

import calendar
import re

from services.campaigns.domain.model import (
    PURCHASE,
    REFUND,
    Activity,
    CampaignKind,
    CampaignSpec,
    Member,
    ReferralStage,
)
from services.kit.errors import Violations
from services.kit.schedule import Schedule, ScheduleError, zone

MEMBER_ID = re.compile(r"[A-Za-z0-9._@+-]{1,64}")
ACTIVITY_ID = re.compile(r"[A-Za-z0-9._@+-]{1,50}")
CAMPAIGN_ID = re.compile(r"[A-Za-z0-9._-]{1,40}")
ACTIVITY_TYPE = re.compile(r"[a-z][a-z0-9_]{0,39}")
CURRENCY = re.compile(r"[A-Z]{3}")
LABEL_LENGTH = 64
MAX_LABELS = 32
MAX_ATTRIBUTES = 16
MAX_AMOUNT_MINOR = 10**13
MAX_POINTS = 10**9
# Keeps every sum of budgets, awards and balances far from int64 overflow.
MAX_BUDGET = 10**12
MAX_MULTIPLIER_PERCENT = 10_000


def valid_id(pattern: re.Pattern[str], value: str) -> bool:
    return pattern.fullmatch(value) is not None


def check_id(violations: Violations, field: str, pattern: re.Pattern[str], value: str) -> bool:
    return violations.check(
        valid_id(pattern, value), field, f"must match {pattern.pattern}, got {value!r}"
    )


# Instants the schedule arithmetic handles in any zone: years 1971 to 9998.
EARLIEST_US = 365 * 86_400 * 1_000_000
LATEST_US = 253_339_200_000 * 1_000_000


def check_instant(violations: Violations, field: str, instant_us: int | None) -> None:
    if instant_us is not None:
        violations.check(
            EARLIEST_US <= instant_us <= LATEST_US, field, "must be between 1971 and 9998"
        )


def check_zone(violations: Violations, field: str, name: str) -> None:
    try:
        zone(name)
    except ScheduleError as error:
        violations.add(field, error.description)


def _check_labels(violations: Violations, field: str, labels: tuple[str, ...]) -> None:
    violations.check(len(labels) <= MAX_LABELS, field, f"at most {MAX_LABELS} entries")
    for index, label in enumerate(labels):
        violations.check(
            0 < len(label) <= LABEL_LENGTH,
            f"{field}[{index}]",
            f"must be 1 to {LABEL_LENGTH} characters",
        )


def check_member(violations: Violations, member: Member) -> None:
    check_id(violations, "member.member_id", MEMBER_ID, member.member_id)
    if member.time_zone:
        check_zone(violations, "member.time_zone", member.time_zone)
    if member.birthday is not None:
        birthday = member.birthday
        if violations.check(1 <= birthday.month <= 12, "member.birthday.month", "must be 1 to 12"):
            # A leap year so that 29 February is a valid birthday.
            days = calendar.monthrange(birthday.year or 2024, birthday.month)[1]
            violations.check(
                1 <= birthday.day <= days, "member.birthday.day", f"must be 1 to {days}"
            )
        violations.check(
            birthday.year == 0 or 1900 <= birthday.year <= 2100,
            "member.birthday.year",
            "must be 0 (unknown) or 1900 to 2100",
        )
    violations.check(len(member.tier) <= LABEL_LENGTH, "member.tier", "at most 64 characters")
    _check_labels(violations, "member.segments", member.segments)
    _check_labels(violations, "member.opt_ins", member.opt_ins)
    referrer = member.referrer_member_id
    if referrer and check_id(violations, "member.referrer_member_id", MEMBER_ID, referrer):
        violations.check(
            referrer != member.member_id,
            "member.referrer_member_id",
            "a member cannot refer itself",
        )


def check_activity(violations: Violations, activity: Activity) -> None:
    check_id(violations, "activity.activity_id", ACTIVITY_ID, activity.activity_id)
    check_id(violations, "activity.member_id", MEMBER_ID, activity.member_id)
    check_id(violations, "activity.type", ACTIVITY_TYPE, activity.type)
    if violations.check(activity.occur_us != 0, "activity.occur_time", "is required"):
        check_instant(violations, "activity.occur_time", activity.occur_us)
    purchase, refund = activity.purchase, activity.refund
    if activity.type == PURCHASE:
        if violations.check(purchase is not None, "activity.purchase", "a purchase needs it"):
            assert purchase is not None
            violations.check(
                0 < purchase.amount_minor <= MAX_AMOUNT_MINOR,
                "activity.purchase.amount_minor",
                f"must be 1 to {MAX_AMOUNT_MINOR}",
            )
            violations.check(
                not purchase.currency or valid_id(CURRENCY, purchase.currency),
                "activity.purchase.currency",
                "must be an ISO 4217 code such as EUR",
            )
            _check_labels(violations, "activity.purchase.skus", purchase.skus)
    else:
        violations.check(purchase is None, "activity.purchase", "only for purchases")
    if activity.type == REFUND:
        if violations.check(refund is not None, "activity.refund", "a refund needs it"):
            assert refund is not None
            check_id(
                violations,
                "activity.refund.purchase_activity_id",
                ACTIVITY_ID,
                refund.purchase_activity_id,
            )
            violations.check(
                0 < refund.amount_minor <= MAX_AMOUNT_MINOR,
                "activity.refund.amount_minor",
                f"must be 1 to {MAX_AMOUNT_MINOR}",
            )
    else:
        violations.check(refund is None, "activity.refund", "only for refunds")
    violations.check(
        len(activity.attributes) <= MAX_ATTRIBUTES, "activity.attributes", "at most 16 entries"
    )
    for name, value in activity.attributes:
        violations.check(
            0 < len(name) <= LABEL_LENGTH and len(value) <= 256,
            f"activity.attributes[{name}]",
            "keys 1 to 64 characters, values at most 256",
        )


def _points(violations: Violations, field: str, value: int, minimum: int = 1) -> None:
    violations.check(minimum <= value <= MAX_POINTS, field, f"must be {minimum} to {MAX_POINTS}")


def check_spec(violations: Violations, spec: CampaignSpec) -> Schedule | None:
    """Checks the spec; returns its compiled schedule when that part is sound."""
    violations.check(
        0 < len(spec.display_name) <= 200, "spec.display_name", "must be 1 to 200 characters"
    )
    reward, kind = spec.reward, spec.kind
    if kind is CampaignKind.BASE_RULE:
        _points(violations, "spec.reward.points_per_unit", reward.points_per_unit, 0)
        _points(violations, "spec.reward.points", reward.points, 0)
        violations.check(
            reward.points_per_unit > 0 or reward.points > 0,
            "spec.reward",
            "a base rule gives points_per_unit, points or both",
        )
        violations.check(
            0 < reward.minor_units_per_unit <= 10_000,
            "spec.reward.minor_units_per_unit",
            "must be 1 to 10000 (0 means 100)",
        )
        violations.check(
            spec.budget_points == 0, "spec.budget_points", "base rules are paid by the program"
        )
    else:
        violations.check(
            0 < spec.budget_points <= MAX_BUDGET,
            "spec.budget_points",
            f"a bonus needs a budget of 1 to {MAX_BUDGET} points",
        )
    if kind is CampaignKind.MULTIPLIER:
        violations.check(
            100 < reward.multiplier_percent <= MAX_MULTIPLIER_PERCENT,
            "spec.reward.multiplier_percent",
            f"must be 101 to {MAX_MULTIPLIER_PERCENT} (200 is double points)",
        )
    if kind in (
        CampaignKind.FIXED_BONUS,
        CampaignKind.SURPRISE_BONUS,
        CampaignKind.BIRTHDAY_BONUS,
    ):
        _points(violations, "spec.reward.points", reward.points)
    if kind is CampaignKind.SURPRISE_BONUS:
        violations.check(
            1 <= reward.probability_ppm <= 1_000_000,
            "spec.reward.probability_ppm",
            "must be 1 to 1000000",
        )
    if kind is CampaignKind.REFERRAL_BONUS:
        violations.check(
            reward.referral_stage is not None, "spec.reward.referral_stage", "is required"
        )
        _points(violations, "spec.reward.referrer_points", reward.referrer_points, 0)
        _points(violations, "spec.reward.referred_points", reward.referred_points, 0)
        violations.check(
            reward.referrer_points + reward.referred_points > 0,
            "spec.reward",
            "a referral bonus gives referrer_points, referred_points or both",
        )
        violations.check(
            reward.referral_stage is not ReferralStage.INVITE_SENT or reward.referred_points == 0,
            "spec.reward.referred_points",
            "an invite has no referred member yet",
        )
    conditions = spec.conditions
    for index, activity_type in enumerate(conditions.activity_types):
        check_id(
            violations, f"spec.conditions.activity_types[{index}]", ACTIVITY_TYPE, activity_type
        )
    violations.check(
        0 <= conditions.min_spend_minor <= MAX_AMOUNT_MINOR,
        "spec.conditions.min_spend_minor",
        "must not be negative",
    )
    violations.check(
        not conditions.currency or valid_id(CURRENCY, conditions.currency),
        "spec.conditions.currency",
        "must be an ISO 4217 code such as EUR",
    )
    seen = set()
    for index, limit in enumerate(spec.limits.member_limits):
        field = f"spec.limits.member_limits[{index}]"
        violations.check(limit.period not in seen, f"{field}.period", "one limit per period")
        seen.add(limit.period)
        _points(violations, f"{field}.max_points", limit.max_points)
    violations.check(
        0 <= spec.limits.max_members <= 10**9, "spec.limits.max_members", "must not be negative"
    )
    violations.check(
        len(spec.stacking.group) <= LABEL_LENGTH, "spec.stacking.group", "at most 64 characters"
    )
    try:
        schedule = Schedule(spec.schedule)
    except ScheduleError as error:
        field = error.field if error.field.startswith("schedule.") else f"schedule.{error.field}"
        violations.add(f"spec.{field}", error.description)
        return None
    check_instant(violations, "spec.schedule.end_time", spec.schedule.end_us)
    if spec.schedule.end_us is not None and not schedule.always:
        violations.check(
            spec.schedule.end_us > schedule.first_start_us(),
            "spec.schedule.end_time",
            "must be after the first window starts",
        )
    if spec.schedule.exclusions and not spec.schedule.rrule:
        violations.add("spec.schedule.exclusions", "only a recurring schedule has exclusions")
    return schedule
