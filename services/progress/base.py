"""What every progress use case shares: the store, the clock, the rewards, the
signals that wake the feeds progress serves, and recording what a member
earned (tier changes, awards, achievements) inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from services.kit.clock import Clock
from services.kit.feeds import CommitSignal
from services.kit.outbox import OutboxEntry
from services.progress.domain.definitions import Definition, TierProgram
from services.progress.domain.evaluate import Evaluation, evaluate
from services.progress.domain.events import Event
from services.progress.domain.records import (
    Achievement,
    Award,
    AwardKind,
    ChangeReason,
    RecordedTier,
    TierChange,
)
from services.progress.rewards import Rewards, record_reward
from services.progress.store import ProgressStore, SqliteProgressUnit


class Cause(Enum):
    """What made progress look at a member again."""

    EVENTS = "EVENTS"
    REVIEW = "REVIEW"
    FLOOR = "FLOOR"
    PROGRAM = "PROGRAM"


@dataclass(frozen=True, slots=True)
class Recorded:
    """What one transaction recorded: the award entries to settle now."""

    entries: list[OutboxEntry]
    changes: int = 0


class ProgressBase:
    def __init__(
        self, store: ProgressStore, clock: Clock, rewards: Rewards, commits: CommitSignal
    ) -> None:
        self._store = store
        self._clock = clock
        self._rewards = rewards
        self.commits = commits

    async def _settle(self, entries: Sequence[OutboxEntry]) -> None:
        if entries:
            await self._rewards.settle(list(entries))


def record_evaluation(
    unit: SqliteProgressUnit,
    member_id: str,
    definitions: dict[str, Definition],
    evaluation: Evaluation,
    now_us: int,
    cause: Cause,
    held: set[tuple] | None = None,
) -> Recorded:
    """Record what the evaluation says the member holds and has earned: tier
    changes with their reasons, and each award once (with its points entry).
    `held`: the (kind, definition_id, detail) of the awards the member holds,
    when the caller read them for a batch of members (read here otherwise)."""
    entries: list[OutboxEntry] = []
    changes = 0
    for program_id, standing in evaluation.standings.items():
        program = definitions[program_id].spec
        assert isinstance(program, TierProgram)
        tier_id = program.tiers[standing.rank].tier_id
        recorded = unit.member_tier(program_id, member_id)
        previous = recorded.tier_id if recorded else ""
        since = recorded.since_us if recorded else now_us
        if previous != tier_id and (previous or standing.rank):
            before = program.rank(previous)
            upgrade = standing.rank > before
            reason = _reason(unit, program_id, member_id, recorded, upgrade, cause, now_us)
            unit.add_tier_change(
                TierChange(
                    0,
                    program_id,
                    member_id,
                    previous,
                    tier_id,
                    upgrade,
                    reason.value,
                    now_us,
                    standing.kept_until_us,
                    tuple(tier.tier_id for tier in program.tiers),
                )
            )
            unit.add_achievement(
                Achievement(0, member_id, AwardKind.TIER_CHANGED, program_id, tier_id, 0, now_us)
            )
            since, changes = now_us, changes + 1
        updated = RecordedTier(
            program_id,
            member_id,
            tier_id,
            since,
            standing.kept_until_us,
            standing.next_review_us,
        )
        if updated != recorded:
            unit.save_member_tier(updated)
    earned_before = held
    for kind, earned in (
        (AwardKind.BADGE, sorted(evaluation.badge_levels)),
        (AwardKind.STREAK_MILESTONE, sorted(evaluation.milestones)),
        (AwardKind.CHALLENGE, sorted(evaluation.completions)),
    ):
        for definition_id, detail in earned:
            if earned_before is None:
                # One read of what the member holds, for every award of this evaluation.
                earned_before = {
                    (a.kind, a.definition_id, a.detail) for a in unit.awards(member_id)
                }
            if (kind, definition_id, str(detail)) in earned_before:
                continue
            entry = _award(unit, kind, definitions[definition_id], str(detail), member_id, now_us)
            if entry is not None:
                entries.append(entry)
    return Recorded(entries, changes)


def evaluate_members(
    unit: SqliteProgressUnit,
    touched: dict[str, tuple[Sequence[Event] | None, set[int]]],
    now_us: int,
    cause: Cause,
) -> tuple[list[OutboxEntry], int]:
    """Evaluate and record each member against the active definitions their
    events (with the moments they count at) can change; every definition when
    the events are None. Returns the award entries to settle and the tier changes."""
    definitions = active_by_id(unit)
    listed = list(definitions.values())
    entries, changes = [], 0
    # One read of what every member touched holds, not one per member.
    held = unit.held_awards(list(touched))
    for member_id, (events, moments) in touched.items():
        floors = unit.floors(member_id)
        evaluation = evaluate(unit, member_id, listed, floors, now_us, events, moments)
        recorded = record_evaluation(
            unit, member_id, definitions, evaluation, now_us, cause, held[member_id]
        )
        entries += recorded.entries
        changes += recorded.changes
    return entries, changes


def evaluate_deferred(
    unit: SqliteProgressUnit, member_ids: Sequence[str], now_us: int
) -> tuple[list[OutboxEntry], int]:
    """The evaluations a feed catching up left for later, of these members, done."""
    unit.undefer_evaluations(member_ids)
    return evaluate_members(
        unit, {member_id: (None, set()) for member_id in member_ids}, now_us, Cause.EVENTS
    )


def _award(
    unit: SqliteProgressUnit,
    kind: AwardKind,
    definition: Definition,
    detail: str,
    member_id: str,
    now_us: int,
) -> OutboxEntry | None:
    points, budget_id = award_points(definition, kind, detail)
    entry = (
        record_reward(
            unit, kind, definition.definition_id, detail, member_id, points, budget_id, now_us
        )
        if points
        else None
    )
    unit.add_award(
        Award(
            member_id,
            kind,
            definition.definition_id,
            detail,
            points,
            budget_id,
            now_us,
            entry.entry_id if entry else "",
            "pending" if entry else "unpaid",
        )
    )
    unit.add_achievement(
        Achievement(0, member_id, kind, definition.definition_id, detail, points, now_us)
    )
    return entry


def award_points(definition: Definition, kind: AwardKind, detail: str) -> tuple[int, str]:
    spec = definition.spec
    if kind is AwardKind.BADGE:
        level = next(level for level in spec.levels if level.level_id == detail)
        return level.bonus_points, spec.budget_id
    if kind is AwardKind.STREAK_MILESTONE:
        milestone = next(m for m in spec.milestones if str(m.length) == detail)
        return milestone.bonus_points, spec.budget_id
    return spec.reward_points, spec.budget_id


def _reason(
    unit: SqliteProgressUnit,
    program_id: str,
    member_id: str,
    recorded: RecordedTier | None,
    upgrade: bool,
    cause: Cause,
    now_us: int,
) -> ChangeReason:
    if cause is Cause.FLOOR:
        return ChangeReason.FLOOR_SET
    if cause is Cause.PROGRAM:
        return ChangeReason.PROGRAM_CHANGED
    if upgrade:
        return ChangeReason.QUALIFIED
    if cause is Cause.EVENTS:
        return ChangeReason.POINTS_REVERSED
    floor = unit.floors(member_id).get(program_id)
    if floor is not None and floor.expire_us <= now_us:
        return ChangeReason.FLOOR_EXPIRED
    kept_until = recorded.kept_until_us if recorded is not None else None
    if kept_until is not None and kept_until <= now_us:
        return ChangeReason.PERIOD_ENDED
    return ChangeReason.PROGRAM_CHANGED


def active_by_id(unit: SqliteProgressUnit) -> dict[str, Definition]:
    return {definition.definition_id: definition for definition in unit.active_definitions()}
