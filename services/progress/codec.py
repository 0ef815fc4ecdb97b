"""loyalty.progress.v1 messages <-> the progress domain. Bad input becomes
field violations here only where protobuf itself cannot say it (times,
unknown enum numbers); everything else is the domain's validation."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.progress.v1 import progress_service_pb2 as pb

from services.kit.errors import FieldViolation, InvalidArgument, Violations
from services.kit.proto_time import duration_micros, micros, optional_micros, timestamp
from services.kit.schedule import LocalTime, ScheduleSpec
from services.progress.domain.definitions import (
    DEFAULT_ACTIVITY_TYPES,
    DEFAULT_CODES,
    Badge,
    BadgeLevel,
    Challenge,
    Definition,
    Downgrade,
    Kind,
    Measure,
    Milestone,
    Rule,
    Spec,
    Step,
    Streak,
    StreakPeriod,
    Tier,
    TierProgram,
    WindowKind,
)
from services.progress.domain.evaluate import StreakFigures
from services.progress.domain.events import Recorded
from services.progress.domain.facts import period_label
from services.progress.domain.records import Achievement, AwardKind, ChangeReason, TierChange
from services.progress.members import BadgeView, ChallengeView, MemberProgress, StreakView, TierView

E = TypeVar("E", bound=Enum)
MAX_REPEATED = 100


def _enum(
    violations: Violations, field: str, number: int, proto_enum, domain: type[E], prefix: str
):
    """A proto enum number as the domain's enum; unspecified or unknown is a violation."""
    name = proto_enum.values_by_number.get(number)
    member = name.name.removeprefix(prefix) if name is not None and number else None
    if member is None or member not in domain.__members__:
        violations.add(field, "required: one of " + ", ".join(domain.__members__))
        return next(iter(domain))
    return domain[member]


def _codes(violations: Violations, field: str, numbers, default: frozenset[str]) -> frozenset[str]:
    names = set()
    for number in list(numbers)[:MAX_REPEATED]:
        value = ledger_pb.TransferCode.DESCRIPTOR.values_by_number.get(number)
        if value is None or number == 0:
            violations.add(field, "unknown transfer code")
            continue
        names.add(value.name.removeprefix("TRANSFER_CODE_"))
    if len(numbers) > MAX_REPEATED:
        violations.add(field, f"at most {MAX_REPEATED}")
    return frozenset(names) or default


def _many(violations: Violations, field: str, items) -> list:
    if len(items) > MAX_REPEATED:
        violations.add(field, f"at most {MAX_REPEATED} entries")
        return list(items)[:MAX_REPEATED]
    return list(items)


def rule_from_proto(violations: Violations, path: str, message: pb.Rule) -> Rule:
    measure = _enum(
        violations, f"{path}.measure", message.measure, pb.Measure.DESCRIPTOR, Measure, "MEASURE_"
    )
    return Rule(
        measure=measure,
        activity_type=message.activity_type,
        codes=_codes(violations, f"{path}.codes", message.codes, DEFAULT_CODES),
        game_id=message.game_id,
    )


def _time(message, field: str, path: str) -> int | None:
    return optional_micros(message, field, path)


def spec_from_proto(message: pb.Definition, violations: Violations) -> Spec | None:
    """The spec; what protobuf cannot check (times, enum numbers) goes to `violations`,
    which the domain's validation adds to, so one answer names every bad field."""
    which = message.WhichOneof("spec")
    spec: Spec | None = None
    try:
        if which == "tier_program":
            spec = program_from_proto(violations, "definition.tier_program", message.tier_program)
        elif which == "badge":
            spec = _badge(violations, message.badge)
        elif which == "streak":
            spec = _streak(violations, message.streak)
        elif which == "challenge":
            spec = _challenge(violations, message.challenge)
    except InvalidArgument as error:
        violations.items.extend(error.violations)
    return spec


def program_from_proto(violations: Violations, path: str, message: pb.TierProgram) -> TierProgram:
    return TierProgram(
        display_name=message.display_name,
        time_zone=message.time_zone,
        tiers=tuple(
            Tier(t.tier_id, t.display_name, t.min_points, t.min_activities)
            for t in _many(violations, f"{path}.tiers", message.tiers)
        ),
        window=_enum(
            violations,
            f"{path}.window",
            message.window,
            pb.QualifyingWindow.DESCRIPTOR,
            WindowKind,
            "QUALIFYING_WINDOW_",
        ),
        rolling_months=message.rolling_months or 12,
        codes=_codes(
            violations, f"{path}.qualifying_codes", message.qualifying_codes, DEFAULT_CODES
        ),
        activity_types=tuple(
            _many(
                violations, f"{path}.qualifying_activity_types", message.qualifying_activity_types
            )
        )
        or DEFAULT_ACTIVITY_TYPES,
        grace_us=duration_micros(message.grace, f"{path}.grace")
        if message.HasField("grace")
        else 0,
        downgrade=(
            _enum(
                violations,
                f"{path}.downgrade_policy",
                message.downgrade_policy,
                pb.DowngradePolicy.DESCRIPTOR,
                Downgrade,
                "DOWNGRADE_POLICY_",
            )
            if message.downgrade_policy
            else Downgrade.RECOMPUTE
        ),
    )


def _badge(violations: Violations, message: pb.Badge) -> Badge:
    path = "definition.badge"
    return Badge(
        display_name=message.display_name,
        description=message.description,
        rule=rule_from_proto(violations, f"{path}.rule", message.rule),
        levels=tuple(
            BadgeLevel(level.level_id, level.threshold, level.display_name, level.bonus_points)
            for level in _many(violations, f"{path}.levels", message.levels)
        ),
        start_us=_time(message, "start_time", f"{path}.start_time"),
        end_us=_time(message, "end_time", f"{path}.end_time"),
        budget_id=message.budget_id,
    )


def _streak(violations: Violations, message: pb.Streak) -> Streak:
    path = "definition.streak"
    return Streak(
        display_name=message.display_name,
        rule=rule_from_proto(violations, f"{path}.rule", message.rule),
        period=_enum(
            violations,
            f"{path}.period",
            message.period,
            pb.StreakPeriod.DESCRIPTOR,
            StreakPeriod,
            "STREAK_PERIOD_",
        ),
        default_time_zone=message.default_time_zone,
        freeze=message.freeze,
        milestones=tuple(
            Milestone(m.length, m.bonus_points)
            for m in _many(violations, f"{path}.milestones", message.milestones)
        ),
        budget_id=message.budget_id,
    )


def _challenge(violations: Violations, message: pb.Challenge) -> Challenge:
    path = "definition.challenge"
    schedule = message.schedule
    start = None
    if schedule.HasField("start"):
        s = schedule.start
        start = LocalTime(s.year, s.month, s.day, s.hours, s.minutes, s.seconds)
    return Challenge(
        display_name=message.display_name,
        description=message.description,
        schedule=ScheduleSpec(
            time_zone=schedule.time_zone,
            start=start,
            duration_seconds=(
                duration_micros(schedule.duration, f"{path}.schedule.duration") // 1_000_000
                if schedule.HasField("duration")
                else 0
            ),
            rrule=schedule.rrule,
            end_us=_time(schedule, "end_time", f"{path}.schedule.end_time"),
        ),
        steps=tuple(
            Step(
                step.step_id,
                rule_from_proto(violations, f"{path}.steps[{index}].rule", step.rule),
                step.target,
                step.display_name,
            )
            for index, step in enumerate(_many(violations, f"{path}.steps", message.steps))
        ),
        opt_in=message.opt_in,
        reward_points=message.reward_points,
        budget_id=message.budget_id,
    )


# ------------------------------------------------------------------ to proto


def _code_numbers(codes: frozenset[str]) -> list[int]:
    return [ledger_pb.TransferCode.Value(f"TRANSFER_CODE_{code}") for code in sorted(codes)]


def _rule(rule: Rule) -> pb.Rule:
    return pb.Rule(
        measure=pb.Measure.Value(f"MEASURE_{rule.measure.value}"),
        activity_type=rule.activity_type,
        codes=_code_numbers(rule.codes) if rule.measure is Measure.POINTS_EARNED else [],
        game_id=rule.game_id,
    )


def definition_to_proto(definition: Definition) -> pb.Definition:
    message = pb.Definition(
        id=definition.definition_id,
        version=definition.version,
        state=pb.DefinitionState.Value(f"DEFINITION_STATE_{definition.state.value}"),
        create_time=timestamp(definition.create_us),
        update_time=timestamp(definition.update_us),
    )
    spec = definition.spec
    if isinstance(spec, TierProgram):
        message.tier_program.CopyFrom(program_to_proto(spec))
    elif isinstance(spec, Badge):
        badge = message.badge
        badge.display_name, badge.description, badge.budget_id = (
            spec.display_name,
            spec.description,
            spec.budget_id,
        )
        badge.rule.CopyFrom(_rule(spec.rule))
        badge.levels.extend(
            pb.BadgeLevel(
                level_id=level.level_id,
                display_name=level.display_name,
                threshold=level.threshold,
                bonus_points=level.bonus_points,
            )
            for level in spec.levels
        )
        if spec.start_us is not None:
            badge.start_time.CopyFrom(timestamp(spec.start_us))
        if spec.end_us is not None:
            badge.end_time.CopyFrom(timestamp(spec.end_us))
    elif isinstance(spec, Streak):
        streak = message.streak
        streak.display_name, streak.default_time_zone = spec.display_name, spec.default_time_zone
        streak.freeze, streak.budget_id = spec.freeze, spec.budget_id
        streak.period = pb.StreakPeriod.Value(f"STREAK_PERIOD_{spec.period.value}")
        streak.rule.CopyFrom(_rule(spec.rule))
        streak.milestones.extend(
            pb.StreakMilestone(length=m.length, bonus_points=m.bonus_points)
            for m in spec.milestones
        )
    elif isinstance(spec, Challenge):
        challenge = message.challenge
        challenge.display_name, challenge.description = spec.display_name, spec.description
        challenge.opt_in, challenge.reward_points = spec.opt_in, spec.reward_points
        challenge.budget_id = spec.budget_id
        schedule, start = challenge.schedule, spec.schedule.start
        schedule.time_zone, schedule.rrule = spec.schedule.time_zone, spec.schedule.rrule
        if start is not None:
            schedule.start.CopyFrom(
                pb.LocalDateTime(
                    year=start.year,
                    month=start.month,
                    day=start.day,
                    hours=start.hours,
                    minutes=start.minutes,
                    seconds=start.seconds,
                )
            )
        schedule.duration.FromSeconds(spec.schedule.duration_seconds)
        if spec.schedule.end_us is not None:
            schedule.end_time.CopyFrom(timestamp(spec.schedule.end_us))
        challenge.steps.extend(
            pb.ChallengeStep(
                step_id=step.step_id,
                display_name=step.display_name,
                rule=_rule(step.rule),
                target=step.target,
            )
            for step in spec.steps
        )
    return message


def program_to_proto(spec: TierProgram) -> pb.TierProgram:
    program = pb.TierProgram(
        display_name=spec.display_name,
        time_zone=spec.time_zone,
        tiers=[
            pb.TierLevel(
                tier_id=t.tier_id,
                display_name=t.display_name,
                min_points=t.min_points,
                min_activities=t.min_activities,
            )
            for t in spec.tiers
        ],
        window=pb.QualifyingWindow.Value(f"QUALIFYING_WINDOW_{spec.window.value}"),
        rolling_months=spec.rolling_months,
        qualifying_codes=_code_numbers(spec.codes),
        qualifying_activity_types=list(spec.activity_types),
        downgrade_policy=pb.DowngradePolicy.Value(f"DOWNGRADE_POLICY_{spec.downgrade.value}"),
    )
    program.grace.FromMicroseconds(spec.grace_us)
    return program


def kind_from_proto(number: int) -> Kind | None:
    if number == 0:
        return None
    value = pb.DefinitionKind.DESCRIPTOR.values_by_number.get(number)
    if value is None:
        raise InvalidArgument([FieldViolation("kind", "unknown definition kind")])
    return Kind[value.name.removeprefix("DEFINITION_KIND_")]


def tier_status(view: TierView) -> pb.TierStatus:
    program, standing = view.program, view.standing
    tier = program.tiers[standing.rank]
    status = pb.TierStatus(
        program_id=view.program_id,
        tier_id=tier.tier_id,
        tier_display_name=tier.display_name,
        qualifying_points=standing.points,
        qualifying_activities=standing.activities,
        window_start_time=timestamp(standing.window_start_us),
        earned_tier_id=program.tiers[standing.earned_rank].tier_id,
        keep_points_needed=standing.keep_points_needed,
        keep_activities_needed=standing.keep_activities_needed,
    )
    if standing.rank + 1 < len(program.tiers):
        following = program.tiers[standing.rank + 1]
        status.next_tier_id = following.tier_id
        status.points_to_next = max(0, following.min_points - standing.points)
        status.activities_to_next = max(0, following.min_activities - standing.activities)
    if standing.kept_until_us is not None:
        status.kept_until_time.CopyFrom(timestamp(standing.kept_until_us))
    if standing.keep_by_us is not None:
        status.keep_by_time.CopyFrom(timestamp(standing.keep_by_us))
    if standing.floor is not None:
        status.floor.CopyFrom(
            pb.TierFloor(
                tier_id=standing.floor.tier_id,
                expire_time=timestamp(standing.floor.expire_us),
                reason=standing.floor.reason,
            )
        )
    return status


def _badge_progress(view: BadgeView) -> pb.BadgeProgress:
    message = pb.BadgeProgress(
        badge_id=view.badge_id, display_name=view.badge.display_name, value=view.value
    )
    for level in view.badge.levels:
        earned = view.earned.get(level.level_id)
        entry = message.levels.add(
            level_id=level.level_id, threshold=level.threshold, earned=earned is not None
        )
        if earned is not None:
            entry.earn_time.CopyFrom(timestamp(earned))
    upcoming = next((lv for lv in view.badge.levels if lv.level_id not in view.earned), None)
    if upcoming is not None:
        message.next_level_id, message.next_threshold = upcoming.level_id, upcoming.threshold
        message.progress_text = f"{min(view.value, upcoming.threshold)} of {upcoming.threshold}"
    else:
        message.progress_text = "complete"
    return message


def _streak_status(view: StreakView) -> pb.StreakStatus:
    figures: StreakFigures = view.figures
    upcoming = [m.length for m in view.streak.milestones if m.length > figures.longest]
    return pb.StreakStatus(
        streak_id=view.streak_id,
        display_name=view.streak.display_name,
        current=figures.current,
        longest=figures.longest,
        last_period=(
            period_label(figures.last_period, view.streak.period)
            if figures.last_period is not None
            else ""
        ),
        next_milestone=min(upcoming, default=0),
        time_zone=view.time_zone,
    )


def challenge_progress(view: ChallengeView) -> pb.ChallengeProgress:
    found = view.round
    message = pb.ChallengeProgress(
        challenge_id=view.challenge_id,
        display_name=view.challenge.display_name,
        window_start_time=timestamp(found.window.start_us),
        window_end_time=timestamp(found.window.end_us),
        steps=[
            pb.StepProgress(step_id=s.step_id, value=s.value, target=s.target, done=s.done)
            for s in found.steps
        ],
        completed=view.completed_us is not None or found.completed,
        opt_in=view.challenge.opt_in,
        joined=found.joined,
    )
    if view.completed_us is not None:
        message.complete_time.CopyFrom(timestamp(view.completed_us))
    return message


def progress_to_proto(progress: MemberProgress) -> pb.GetMemberProgressResponse:
    return pb.GetMemberProgressResponse(
        member_id=progress.member_id,
        tiers=[tier_status(view) for view in progress.tiers],
        badges=[_badge_progress(view) for view in progress.badges],
        streaks=[_streak_status(view) for view in progress.streaks],
        challenges=[challenge_progress(view) for view in progress.challenges],
    )


def event_to_proto(recorded: Recorded) -> pb.MemberEvent:
    from services.progress.domain.codec import encode_event, plain

    event = recorded.event
    kind, _ = encode_event(event)
    details = {
        key: str(value)
        for key, value in plain(event).items()
        if key not in ("member_id",) and value not in ("", None, [], 0)
    }
    at = getattr(event, "occur_us", None)
    if at is None:
        at = event.commit_us
    return pb.MemberEvent(
        sequence=recorded.sequence,
        source=event.source.value,
        key=event.key,
        kind=kind,
        occur_time=timestamp(at),
        details=details,
    )


def change_to_proto(change: TierChange) -> pb.TierChange:
    message = pb.TierChange(
        sequence=change.sequence,
        program_id=change.program_id,
        member_id=change.member_id,
        from_tier_id=change.from_tier,
        to_tier_id=change.to_tier,
        upgrade=change.upgrade,
        reason=pb.TierChangeReason.Value(f"TIER_CHANGE_REASON_{ChangeReason(change.reason).value}"),
        change_time=timestamp(change.change_us),
        program_tier_ids=change.tier_ids,
    )
    if change.kept_until_us is not None:
        message.kept_until_time.CopyFrom(timestamp(change.kept_until_us))
    return message


ACHIEVEMENT_KINDS = {
    AwardKind.TIER_CHANGED: pb.ACHIEVEMENT_KIND_TIER_CHANGED,
    AwardKind.BADGE: pb.ACHIEVEMENT_KIND_BADGE_EARNED,
    AwardKind.STREAK_MILESTONE: pb.ACHIEVEMENT_KIND_STREAK_MILESTONE,
    AwardKind.CHALLENGE: pb.ACHIEVEMENT_KIND_CHALLENGE_COMPLETED,
}


def achievement_to_proto(achievement: Achievement) -> pb.Achievement:
    return pb.Achievement(
        sequence=achievement.sequence,
        member_id=achievement.member_id,
        kind=ACHIEVEMENT_KINDS[achievement.kind],
        definition_id=achievement.definition_id,
        detail=achievement.detail,
        bonus_points=achievement.points,
        achieve_time=timestamp(achievement.achieve_us),
    )


def required_time(message, field: str) -> int | None:
    return micros(getattr(message, field), field) if message.HasField(field) else None
