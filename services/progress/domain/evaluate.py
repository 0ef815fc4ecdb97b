"""What a member has earned under the active definitions, from their facts:
tier standings, badge levels, streak figures and milestones, challenge
progress and completions. Pure; the store's SQL facts and the rebuild's
in-memory facts both answer the `Facts` questions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

from services.kit.schedule import Window
from services.progress.domain.definitions import (
    Badge,
    Challenge,
    Definition,
    Downgrade,
    Measure,
    Rule,
    Streak,
    TierProgram,
    WindowKind,
)
from services.progress.domain.events import (
    ActivityEvent,
    ChallengeJoined,
    Event,
    PlayEvent,
    PointsCredited,
    PointsReversed,
)
from services.progress.domain.facts import (
    NO_END,
    NO_START,
    Facts,
    period_of,
    rule_matches_play,
)
from services.progress.domain.tiers import (
    Floor,
    Qualifying,
    Standing,
    horizon_us,
    standing,
    year_bounds,
    year_of,
)


@dataclass(frozen=True, slots=True)
class StreakFigures:
    current: int
    longest: int
    last_period: int | None


def streak_figures(periods: Sequence[int], freeze: bool, today: int) -> StreakFigures:
    """Runs of consecutive periods (sorted, distinct ordinals). With a freeze, a
    missed day is bridged when no other missed day of its ISO week was; a
    bridged day does not add to the length."""
    longest = length = 0
    previous: int | None = None
    frozen: set[int] = set()
    for ordinal in periods:
        if previous is not None and ordinal - previous > 1:
            missed = range(previous + 1, ordinal)
            weeks = [_iso_week(day) for day in missed]
            bridged = freeze and len(set(weeks)) == len(weeks) and not frozen & set(weeks)
            if bridged:
                frozen |= set(weeks)
            else:
                length, frozen = 0, set()
        length += 1
        longest = max(longest, length)
        previous = ordinal
    if previous is None:
        return StreakFigures(0, 0, None)
    gap = today - previous
    alive = gap <= 1 or (
        freeze and gap == 2 and _iso_week(today - 1) not in frozen and today > previous
    )
    return StreakFigures(length if alive else 0, longest, previous)


def _iso_week(ordinal: int) -> int:
    day = date.fromordinal(ordinal)
    return (ordinal - day.weekday()) // 7


def streak_periods(facts: Facts, member_id: str, streak: Streak) -> list[int]:
    fallback = facts.time_zone(member_id) or streak.default_time_zone
    return sorted(
        {
            period_of(at, zone_name or fallback, streak.period)
            for at, zone_name in facts.moments(member_id, streak.rule)
        }
    )


def today_of(facts: Facts, member_id: str, streak: Streak, now_us: int) -> int:
    return period_of(now_us, facts.time_zone(member_id) or streak.default_time_zone, streak.period)


def badge_value(facts: Facts, member_id: str, badge: Badge) -> int:
    start = NO_START if badge.start_us is None else badge.start_us
    end = NO_END if badge.end_us is None else badge.end_us
    return facts.measure(member_id, badge.rule, start, end)


@dataclass(frozen=True, slots=True)
class StepValue:
    step_id: str
    value: int
    target: int

    @property
    def done(self) -> bool:
        return self.value >= self.target


@dataclass(frozen=True, slots=True)
class ChallengeRound:
    """A member's progress in one window of a challenge."""

    window: Window
    steps: tuple[StepValue, ...]
    joined: bool

    @property
    def completed(self) -> bool:
        return self.joined and all(step.done for step in self.steps)


def challenge_round(
    facts: Facts, member_id: str, challenge_id: str, challenge: Challenge, window: Window
) -> ChallengeRound:
    start = window.start_us
    joined = True
    if challenge.opt_in:
        joined_at = facts.joined(member_id, challenge_id)
        joined = joined_at is not None and joined_at < window.end_us
        start = max(start, joined_at or start)
    steps = tuple(
        StepValue(
            step.step_id,
            facts.measure(member_id, step.rule, start, window.end_us) if joined else 0,
            step.target,
        )
        for step in challenge.steps
    )
    return ChallengeRound(window, steps, joined)


# ------------------------------------------------------------------ relevance


def rule_touched(rule: Rule, events: Iterable[Event]) -> bool:
    """Whether these events can change the rule's value."""
    for event in events:
        if rule.measure is Measure.POINTS_EARNED:
            if isinstance(event, PointsCredited | PointsReversed | ActivityEvent):
                return True
        elif rule.measure is Measure.ACTIVITY_COUNT:
            if isinstance(event, ActivityEvent) and (
                event.type == rule.activity_type or event.refunds_activity_id
            ):
                return True
        elif isinstance(event, PlayEvent) and rule_matches_play(rule, event):
            return True
    return False


def event_times(events: Iterable[Event]) -> set[int]:
    times = set()
    for event in events:
        if isinstance(event, PointsCredited | PointsReversed):
            times.add(event.commit_us)
        elif isinstance(event, ActivityEvent | PlayEvent | ChallengeJoined):
            times.add(event.occur_us)
    return times


# ------------------------------------------------------------------ one member


@dataclass
class Evaluation:
    """What a member has earned, by definition id."""

    standings: dict[str, Standing] = field(default_factory=dict)
    badge_levels: set[tuple[str, str]] = field(default_factory=set)
    milestones: set[tuple[str, int]] = field(default_factory=set)
    completions: set[tuple[str, int]] = field(default_factory=set)


def evaluate(
    facts: Facts,
    member_id: str,
    definitions: Sequence[Definition],
    floors: dict[str, Floor],
    now_us: int,
    events: Sequence[Event] | None = None,
    moments: Iterable[int] = (),
) -> Evaluation:
    """Evaluate the definitions these events can change (every definition when
    `events` is None), at `now_us`; `moments` are the times the events count at
    (a credit's is its activity's event time once known)."""
    result = Evaluation()
    everything = events is None
    touched = events or ()
    for definition in definitions:
        spec, key = definition.spec, definition.definition_id
        if isinstance(spec, TierProgram):
            if everything or tier_touched(facts, member_id, spec, touched, moments):
                result.standings[key] = program_standing(
                    facts, member_id, spec, floors.get(key), now_us
                )
        elif isinstance(spec, Badge):
            if everything or rule_touched(spec.rule, touched):
                value = badge_value(facts, member_id, spec)
                result.badge_levels |= {
                    (key, level.level_id) for level in spec.levels if value >= level.threshold
                }
        elif isinstance(spec, Streak):
            if everything or rule_touched(spec.rule, touched):
                figures = streak_figures(
                    streak_periods(facts, member_id, spec),
                    spec.freeze,
                    today_of(facts, member_id, spec, now_us),
                )
                result.milestones |= {
                    (key, milestone.length)
                    for milestone in spec.milestones
                    if figures.longest >= milestone.length
                }
        elif isinstance(spec, Challenge):
            joined = any(isinstance(e, ChallengeJoined) and e.challenge_id == key for e in touched)
            if not (everything or joined or any(rule_touched(s.rule, touched) for s in spec.steps)):
                continue
            found = challenge_windows(facts, member_id, spec, moments, everything)
            for window in found:
                if challenge_round(facts, member_id, key, spec, window).completed:
                    result.completions.add((key, window.start_us))
    return result


def tier_touched(
    facts: Facts,
    member_id: str,
    program: TierProgram,
    events: Sequence[Event],
    moments: Iterable[int],
) -> bool:
    """Whether these events can change the member's standing: points, qualifying
    activities and refunds can; any other activity only by giving credits its
    event time, which a yearly program feels only when that moves them to
    another qualifying year."""
    activities = False
    for event in events:
        if isinstance(event, PointsCredited | PointsReversed):
            return True
        if isinstance(event, ActivityEvent):
            if event.type in program.activity_types or event.refunds_activity_id:
                return True
            activities = True
    if not activities:
        return False
    moments = set(moments)
    if program.window is WindowKind.ROLLING_MONTHS or program.downgrade is Downgrade.ONE_STEP:
        return len(moments) > 1
    anchor = facts.anchor(member_id) if program.window is WindowKind.ANNIVERSARY_YEAR else None
    return len({year_of(program, anchor, moment) for moment in moments}) > 1


def program_standing(
    facts: Facts, member_id: str, program: TierProgram, floor: Floor | None, now_us: int
) -> Standing:
    # Only an anniversary year needs the member's first event.
    anchor = facts.anchor(member_id) if program.window is WindowKind.ANNIVERSARY_YEAR else None
    bounds = year_bounds(program, anchor, now_us)
    if bounds is not None:
        # Only each year's totals matter: one entry per year, summed by the facts.
        sums = facts.totals(member_id, program.codes, program.activity_types, bounds)
        history = [
            Qualifying(start, points, activities)
            for start, (points, activities) in zip(bounds, sums, strict=False)
            if points or activities
        ]
    else:
        history = facts.history(
            member_id, program.codes, program.activity_types, horizon_us(program, anchor, now_us)
        )
    return standing(program, history, anchor, floor, now_us)


def challenge_windows(
    facts: Facts,
    member_id: str,
    challenge: Challenge,
    moments: Iterable[int],
    everything: bool,
) -> list[Window]:
    """The windows these moments fall in (every window of the member's history
    when rebuilding), so a late event counts in the window it happened in; a
    window is judged as soon as an event falls in it, even before it opens (an
    event dated a little ahead), as the rebuild judges it."""
    schedule = challenge.compiled()
    if everything:
        moments = {
            at for step in challenge.steps for at, _ in _step_moments(facts, member_id, step.rule)
        }
    windows = {}
    for moment in moments:
        window = schedule.window_at(moment)
        if window is not None:
            windows[window.start_us] = window
    return [windows[start] for start in sorted(windows)]


def _step_moments(facts: Facts, member_id: str, rule: Rule) -> list[tuple[int, str]]:
    if rule.measure is Measure.POINTS_EARNED:
        return [(entry.at_us, "") for entry in facts.history(member_id, rule.codes, (), NO_START)]
    return facts.moments(member_id, rule)


def current_window(challenge: Challenge, now_us: int) -> Window | None:
    return challenge.compiled().window_at(now_us)
