"""Checks on what callers send; every bad field is named at once, and no
message echoes a long value in full (services.kit.text.shown)."""

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
from services.kit.ids import ACTIVITY_ID, ACTIVITY_TYPE, CAMPAIGN_ID, MEMBER_ID, check_id
from services.kit.schedule import INSTANTS, LimitPeriod, Schedule, ScheduleError, in_range, zone
from services.kit.text import shown

CURRENCY = re.compile(r"[A-Z]{3}")
LABEL_LENGTH = 64
MAX_LABELS = 32
MAX_ATTRIBUTES = 16
MAX_ATTRIBUTE_VALUE = 256
MAX_EXCLUSIONS = 366
MAX_AMOUNT_MINOR = 10**13
MAX_POINTS = 10**9
# Keeps every sum of budgets, awards and balances far from int64 overflow.
MAX_BUDGET = 10**12
MAX_MULTIPLIER_PERCENT = 10_000
MAX_DISPLAY_NAME = 200
MAX_DESCRIPTION = 1_000


def check_instant(violations: Violations, field: str, instant_us: int | None) -> None:
    """Every time a client gives is in one range, with one message, whatever side
    it misses on (year 1 as much as year 10,000)."""
    if instant_us is not None:
        violations.check(in_range(instant_us), field, f"must be {INSTANTS}")


def check_zone(violations: Violations, field: str, name: str) -> None:
    try:
        zone(name)
    except ScheduleError as error:
        violations.add(field, error.description)


def check_campaign_id(violations: Violations, campaign_id: str, field: str = "campaign_id") -> None:
    check_id(violations, field, campaign_id, CAMPAIGN_ID)


def check_member_id(violations: Violations, member_id: str, field: str = "member_id") -> None:
    check_id(violations, field, member_id, MEMBER_ID)


def _count(violations: Violations, field: str, items, most: int) -> bool:
    """Whether the list is short enough to check entry by entry: a list over
    its limit is one violation, not one per entry."""
    return violations.check(len(items) <= most, field, f"at most {most} entries, got {len(items)}")


def _check_labels(violations: Violations, field: str, labels: tuple[str, ...]) -> None:
    if not _count(violations, field, labels, MAX_LABELS):
        return
    for index, label in enumerate(labels):
        violations.check(
            0 < len(label) <= LABEL_LENGTH,
            f"{field}[{index}]",
            f"must be 1 to {LABEL_LENGTH} characters, got {len(label)}",
        )


def check_member(violations: Violations, member: Member) -> None:
    check_member_id(violations, member.member_id, "member.member_id")
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
    violations.check(
        len(member.tier) <= LABEL_LENGTH, "member.tier", f"at most {LABEL_LENGTH} characters"
    )
    _check_labels(violations, "member.segments", member.segments)
    _check_labels(violations, "member.opt_ins", member.opt_ins)
    referrer = member.referrer_member_id
    if referrer and check_id(violations, "member.referrer_member_id", referrer, MEMBER_ID):
        violations.check(
            referrer != member.member_id,
            "member.referrer_member_id",
            "a member cannot refer itself",
        )


def check_activity(violations: Violations, activity: Activity) -> None:
    check_id(violations, "activity.activity_id", activity.activity_id, ACTIVITY_ID)
    check_member_id(violations, activity.member_id, "activity.member_id")
    check_id(violations, "activity.type", activity.type, ACTIVITY_TYPE)
    # Presence, not zero: an activity at the Unix epoch is out of range, not missing.
    if violations.check(activity.occur_us is not None, "activity.occur_time", "is required"):
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
                not purchase.currency or CURRENCY.fullmatch(purchase.currency) is not None,
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
                refund.purchase_activity_id,
                ACTIVITY_ID,
            )
            violations.check(
                0 < refund.amount_minor <= MAX_AMOUNT_MINOR,
                "activity.refund.amount_minor",
                f"must be 1 to {MAX_AMOUNT_MINOR}",
            )
    else:
        violations.check(refund is None, "activity.refund", "only for refunds")
    _check_attributes(violations, "activity.attributes", activity.attributes)


def _check_attributes(
    violations: Violations, field: str, attributes: tuple[tuple[str, str], ...]
) -> None:
    """The map's field names the problem; a key goes in the description, shortened,
    never into the field path."""
    if not _count(violations, field, attributes, MAX_ATTRIBUTES):
        return
    for name, value in attributes:
        violations.check(
            0 < len(name) <= LABEL_LENGTH and len(value) <= MAX_ATTRIBUTE_VALUE,
            field,
            f"key {shown(name)}: keys are 1 to {LABEL_LENGTH} characters and values at most "
            f"{MAX_ATTRIBUTE_VALUE}",
        )


def _points(violations: Violations, field: str, value: int, minimum: int = 1) -> None:
    violations.check(minimum <= value <= MAX_POINTS, field, f"must be {minimum} to {MAX_POINTS}")


def check_spec(violations: Violations, spec: CampaignSpec) -> Schedule | None:
    """Checks the spec; returns its compiled schedule when that part is sound."""
    violations.check(
        0 < len(spec.display_name) <= MAX_DISPLAY_NAME,
        "spec.display_name",
        f"must be 1 to {MAX_DISPLAY_NAME} characters",
    )
    violations.check(
        len(spec.description) <= MAX_DESCRIPTION,
        "spec.description",
        f"at most {MAX_DESCRIPTION} characters",
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
    _check_conditions(violations, spec)
    limits = spec.limits.member_limits
    # One limit per period at most: a longer list is one violation, not one per entry.
    if _count(violations, "spec.limits.member_limits", limits, len(LimitPeriod)):
        seen = set()
        for index, limit in enumerate(limits):
            field = f"spec.limits.member_limits[{index}]"
            violations.check(limit.period not in seen, f"{field}.period", "one limit per period")
            seen.add(limit.period)
            _points(violations, f"{field}.max_points", limit.max_points)
    violations.check(
        0 <= spec.limits.max_members <= 10**9, "spec.limits.max_members", "must be 0 to 10^9"
    )
    violations.check(
        len(spec.stacking.group) <= LABEL_LENGTH,
        "spec.stacking.group",
        f"at most {LABEL_LENGTH} characters",
    )
    if not _count(violations, "spec.schedule.exclusions", spec.schedule.exclusions, MAX_EXCLUSIONS):
        return None
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


def _check_conditions(violations: Violations, spec: CampaignSpec) -> None:
    conditions = spec.conditions
    types = conditions.activity_types
    if _count(violations, "spec.conditions.activity_types", types, MAX_LABELS):
        for index, activity_type in enumerate(types):
            check_id(
                violations,
                f"spec.conditions.activity_types[{index}]",
                activity_type,
                ACTIVITY_TYPE,
            )
    violations.check(
        0 <= conditions.min_spend_minor <= MAX_AMOUNT_MINOR,
        "spec.conditions.min_spend_minor",
        f"must be 0 to {MAX_AMOUNT_MINOR}",
    )
    violations.check(
        not conditions.currency or CURRENCY.fullmatch(conditions.currency) is not None,
        "spec.conditions.currency",
        "must be an ISO 4217 code such as EUR",
    )
    _check_labels(violations, "spec.conditions.skus", conditions.skus)
    _check_labels(violations, "spec.conditions.tiers", conditions.tiers)
    _check_labels(violations, "spec.conditions.segments", conditions.segments)
    violations.check(
        len(conditions.required_opt_in) <= LABEL_LENGTH,
        "spec.conditions.required_opt_in",
        f"at most {LABEL_LENGTH} characters",
    )
    _check_attributes(violations, "spec.conditions.attributes", conditions.attributes)
