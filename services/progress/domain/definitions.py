"""Tier programs, badges, streaks and challenges as managers define them, and
the checks on them. Every bad field is named at once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from services.kit.errors import Violations
from services.kit.ids import ACTIVITY_TYPE, RESOURCE_ID, IdRule, check_id
from services.kit.schedule import Schedule, ScheduleError, ScheduleSpec, zone
from services.kit.text import shown

DAY_US = 86_400 * 1_000_000
MAX_GRACE_US = 366 * DAY_US
MAX_LEVELS = 20
MAX_STEPS = 10
MAX_POINTS = 10**12
QUALIFYING_CODES = frozenset({"EARN", "BONUS", "GAME_PRIZE", "ADJUSTMENT"})
DEFAULT_CODES = frozenset({"EARN"})
DEFAULT_ACTIVITY_TYPES = ("purchase",)
MAX_TEXT = 200


class Kind(Enum):
    TIER_PROGRAM = "TIER_PROGRAM"
    BADGE = "BADGE"
    STREAK = "STREAK"
    CHALLENGE = "CHALLENGE"


class State(Enum):
    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"


class WindowKind(Enum):
    ROLLING_MONTHS = "ROLLING_MONTHS"
    CALENDAR_YEAR = "CALENDAR_YEAR"
    ANNIVERSARY_YEAR = "ANNIVERSARY_YEAR"


class Downgrade(Enum):
    RECOMPUTE = "RECOMPUTE"
    ONE_STEP = "ONE_STEP"


class Measure(Enum):
    ACTIVITY_COUNT = "ACTIVITY_COUNT"
    POINTS_EARNED = "POINTS_EARNED"
    SPIN_COUNT = "SPIN_COUNT"
    CATCH_SCORE = "CATCH_SCORE"
    PLAY_COUNT = "PLAY_COUNT"


class StreakPeriod(Enum):
    DAY = "DAY"
    WEEK = "WEEK"


@dataclass(frozen=True, slots=True)
class Rule:
    measure: Measure
    activity_type: str = ""
    codes: frozenset[str] = DEFAULT_CODES
    game_id: str = ""


@dataclass(frozen=True, slots=True)
class Tier:
    tier_id: str
    display_name: str = ""
    min_points: int = 0
    min_activities: int = 0


@dataclass(frozen=True, slots=True)
class TierProgram:
    display_name: str
    time_zone: str
    tiers: tuple[Tier, ...]
    window: WindowKind
    rolling_months: int = 12
    codes: frozenset[str] = DEFAULT_CODES
    activity_types: tuple[str, ...] = DEFAULT_ACTIVITY_TYPES
    grace_us: int = 0
    downgrade: Downgrade = Downgrade.RECOMPUTE

    def rank(self, tier_id: str) -> int:
        for index, tier in enumerate(self.tiers):
            if tier.tier_id == tier_id:
                return index
        return -1


@dataclass(frozen=True, slots=True)
class BadgeLevel:
    level_id: str
    threshold: int
    display_name: str = ""
    bonus_points: int = 0


@dataclass(frozen=True, slots=True)
class Badge:
    display_name: str
    rule: Rule
    levels: tuple[BadgeLevel, ...]
    description: str = ""
    start_us: int | None = None
    end_us: int | None = None
    budget_id: str = ""


@dataclass(frozen=True, slots=True)
class Milestone:
    length: int
    bonus_points: int = 0


@dataclass(frozen=True, slots=True)
class Streak:
    display_name: str
    rule: Rule
    period: StreakPeriod
    default_time_zone: str
    freeze: bool = False
    milestones: tuple[Milestone, ...] = ()
    budget_id: str = ""


@dataclass(frozen=True, slots=True)
class Step:
    step_id: str
    rule: Rule
    target: int
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class Challenge:
    display_name: str
    schedule: ScheduleSpec
    steps: tuple[Step, ...]
    description: str = ""
    opt_in: bool = False
    reward_points: int = 0
    budget_id: str = ""

    def compiled(self) -> Schedule:
        return _schedule(self.schedule)


Spec = TierProgram | Badge | Streak | Challenge

KIND_OF: dict[type, Kind] = {
    TierProgram: Kind.TIER_PROGRAM,
    Badge: Kind.BADGE,
    Streak: Kind.STREAK,
    Challenge: Kind.CHALLENGE,
}


@dataclass(frozen=True, slots=True)
class Definition:
    definition_id: str
    version: int
    state: State
    spec: Spec
    create_us: int
    update_us: int

    @property
    def kind(self) -> Kind:
        return KIND_OF[type(self.spec)]

    @property
    def active(self) -> bool:
        return self.state is State.ACTIVE


_SCHEDULES: dict[ScheduleSpec, Schedule] = {}


def _schedule(spec: ScheduleSpec) -> Schedule:
    """Compiled schedules, kept: a challenge's window is looked up for every event."""
    compiled = _SCHEDULES.get(spec)
    if compiled is None:
        if len(_SCHEDULES) > 4096:
            _SCHEDULES.clear()
        compiled = _SCHEDULES[spec] = Schedule(spec)
    return compiled


# ------------------------------------------------------------------ validation


def check_definition(violations: Violations, definition_id: str, spec: Spec | None) -> None:
    check_id(violations, "definition.id", definition_id, DEFINITION_ID)
    if spec is None:
        violations.add("definition.spec", "one of tier_program, badge, streak, challenge")
        return
    checks = {
        TierProgram: check_program,
        Badge: _check_badge,
        Streak: _check_streak,
        Challenge: _check_challenge,
    }
    checks[type(spec)](violations, spec)


# Definition ids become parts of ledger transfer ids beside a member id (64) and
# must leave room for both within the ledger's 128 characters.
DEFINITION_ID = IdRule(
    re.compile(r"[A-Za-z0-9._-]{1,40}"), "must be 1 to 40 letters, digits or . _ -"
)


def _text(violations: Violations, field: str, value: str, required: bool = False) -> None:
    if required and not value.strip():
        violations.add(field, "is required")
    elif len(value) > MAX_TEXT or not value.isprintable():
        violations.add(
            field, f"must be at most {MAX_TEXT} printable characters, got {shown(value)}"
        )


def _zone(violations: Violations, field: str, name: str) -> None:
    try:
        zone(name)
    except ScheduleError:
        violations.add(field, f"unknown IANA time zone {shown(name)}")


def _points(violations: Violations, field: str, value: int, positive: bool = False) -> None:
    low = 1 if positive else 0
    violations.check(low <= value <= MAX_POINTS, field, f"must be {low} to {MAX_POINTS:,}")


def _check_codes(violations: Violations, field: str, codes: frozenset[str]) -> None:
    unknown = codes - QUALIFYING_CODES
    violations.check(
        bool(codes) and not unknown,
        field,
        f"codes that credit points: {', '.join(sorted(QUALIFYING_CODES))}",
    )


def check_program(
    violations: Violations, program: TierProgram, path: str = "definition.tier_program"
) -> None:
    _text(violations, f"{path}.display_name", program.display_name, required=True)
    _zone(violations, f"{path}.time_zone", program.time_zone)
    if not 1 <= len(program.tiers) <= MAX_LEVELS:
        violations.add(f"{path}.tiers", f"1 to {MAX_LEVELS} tiers")
    seen: set[str] = set()
    previous: Tier | None = None
    for index, tier in enumerate(program.tiers):
        field = f"{path}.tiers[{index}]"
        if check_id(violations, f"{field}.tier_id", tier.tier_id, DEFINITION_ID):
            violations.check(tier.tier_id not in seen, f"{field}.tier_id", "is repeated")
        seen.add(tier.tier_id)
        _text(violations, f"{field}.display_name", tier.display_name)
        _points(violations, f"{field}.min_points", tier.min_points)
        _points(violations, f"{field}.min_activities", tier.min_activities)
        if previous is None:
            violations.check(
                tier.min_points == 0 and tier.min_activities == 0,
                f"{field}",
                "the first tier is everyone's: no thresholds",
            )
        else:
            higher = (tier.min_points, tier.min_activities) != (
                previous.min_points,
                previous.min_activities,
            )
            violations.check(
                tier.min_points >= previous.min_points
                and tier.min_activities >= previous.min_activities
                and higher,
                f"{field}",
                "each tier needs more than the one below it",
            )
        previous = tier
    if program.window is WindowKind.ROLLING_MONTHS:
        violations.check(
            1 <= program.rolling_months <= 36, f"{path}.rolling_months", "must be 1 to 36"
        )
        violations.check(
            program.downgrade is Downgrade.RECOMPUTE,
            f"{path}.downgrade_policy",
            "one step per period needs a yearly window (a rolling window has no period)",
        )
    _check_codes(violations, f"{path}.qualifying_codes", program.codes)
    for index, kind in enumerate(program.activity_types):
        check_id(violations, f"{path}.qualifying_activity_types[{index}]", kind, ACTIVITY_TYPE)
    violations.check(
        0 <= program.grace_us <= MAX_GRACE_US, f"{path}.grace", "must be 0 to 366 days"
    )


def _check_rule(violations: Violations, path: str, rule: Rule | None) -> None:
    if rule is None:
        violations.add(path, "is required")
        return
    if rule.measure is Measure.ACTIVITY_COUNT:
        check_id(violations, f"{path}.activity_type", rule.activity_type, ACTIVITY_TYPE)
    elif rule.activity_type:
        violations.add(f"{path}.activity_type", "only for MEASURE_ACTIVITY_COUNT")
    if rule.measure is Measure.POINTS_EARNED:
        _check_codes(violations, f"{path}.codes", rule.codes)
    if rule.game_id:
        check_id(violations, f"{path}.game_id", rule.game_id, RESOURCE_ID)


def _check_budget(violations: Violations, path: str, budget_id: str, pays: bool) -> None:
    if budget_id:
        check_id(violations, path, budget_id, DEFINITION_ID)
    elif pays:
        violations.add(path, "is required when points are paid")


def _check_badge(violations: Violations, badge: Badge) -> None:
    path = "definition.badge"
    _text(violations, f"{path}.display_name", badge.display_name, required=True)
    _text(violations, f"{path}.description", badge.description)
    _check_rule(violations, f"{path}.rule", badge.rule)
    if not 1 <= len(badge.levels) <= MAX_LEVELS:
        violations.add(f"{path}.levels", f"1 to {MAX_LEVELS} levels")
    seen: set[str] = set()
    for index, level in enumerate(badge.levels):
        field = f"{path}.levels[{index}]"
        if check_id(violations, f"{field}.level_id", level.level_id, DEFINITION_ID):
            violations.check(level.level_id not in seen, f"{field}.level_id", "is repeated")
        seen.add(level.level_id)
        _text(violations, f"{field}.display_name", level.display_name)
        _points(violations, f"{field}.threshold", level.threshold, positive=True)
        _points(violations, f"{field}.bonus_points", level.bonus_points)
        if index:
            violations.check(
                level.threshold > badge.levels[index - 1].threshold,
                f"{field}.threshold",
                "levels ascend",
            )
    if badge.start_us is not None and badge.end_us is not None:
        violations.check(badge.end_us > badge.start_us, f"{path}.end_time", "after start_time")
    _check_budget(
        violations, f"{path}.budget_id", badge.budget_id, any(v.bonus_points for v in badge.levels)
    )


def _check_streak(violations: Violations, streak: Streak) -> None:
    path = "definition.streak"
    _text(violations, f"{path}.display_name", streak.display_name, required=True)
    _check_rule(violations, f"{path}.rule", streak.rule)
    if streak.rule is not None:
        violations.check(
            streak.rule.measure is not Measure.POINTS_EARNED,
            f"{path}.rule.measure",
            "streaks count activities or plays",
        )
    _zone(violations, f"{path}.default_time_zone", streak.default_time_zone)
    violations.check(
        not streak.freeze or streak.period is StreakPeriod.DAY,
        f"{path}.freeze",
        "only daily streaks have a freeze",
    )
    if len(streak.milestones) > MAX_LEVELS:
        violations.add(f"{path}.milestones", f"at most {MAX_LEVELS}")
    lengths = [milestone.length for milestone in streak.milestones]
    violations.check(
        all(1 <= length <= 10_000 for length in lengths) and len(set(lengths)) == len(lengths),
        f"{path}.milestones",
        "distinct lengths of 1 to 10,000",
    )
    for index, milestone in enumerate(streak.milestones):
        _points(violations, f"{path}.milestones[{index}].bonus_points", milestone.bonus_points)
    _check_budget(
        violations,
        f"{path}.budget_id",
        streak.budget_id,
        any(m.bonus_points for m in streak.milestones),
    )


def _check_challenge(violations: Violations, challenge: Challenge) -> None:
    path = "definition.challenge"
    _text(violations, f"{path}.display_name", challenge.display_name, required=True)
    _text(violations, f"{path}.description", challenge.description)
    schedule = challenge.schedule
    _zone(violations, f"{path}.schedule.time_zone", schedule.time_zone)
    if schedule.start is None:
        violations.add(f"{path}.schedule.start", "is required")
    else:
        try:
            _schedule(schedule)
        except ScheduleError as error:
            violations.add(f"{path}.{error.field}", error.description)
    if not 1 <= len(challenge.steps) <= MAX_STEPS:
        violations.add(f"{path}.steps", f"1 to {MAX_STEPS} steps")
    seen: set[str] = set()
    for index, step in enumerate(challenge.steps):
        field = f"{path}.steps[{index}]"
        if check_id(violations, f"{field}.step_id", step.step_id, DEFINITION_ID):
            violations.check(step.step_id not in seen, f"{field}.step_id", "is repeated")
        seen.add(step.step_id)
        _text(violations, f"{field}.display_name", step.display_name)
        _check_rule(violations, f"{field}.rule", step.rule)
        _points(violations, f"{field}.target", step.target, positive=True)
    _points(violations, f"{path}.reward_points", challenge.reward_points)
    _check_budget(violations, f"{path}.budget_id", challenge.budget_id, challenge.reward_points > 0)
