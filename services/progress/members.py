"""One member's progress: what they see (tiers, badges, streaks, challenges),
the events that made it, a manual tier floor, joining a challenge, the rebuild
from the journal; and the managers' stats over every member."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

from services.kit.clock import from_datetime, to_datetime
from services.kit.errors import FieldViolation, InvalidArgument, NotFound, Violations
from services.kit.ids import MEMBER_ID, REQUEST_ID, check_id
from services.kit.paging import Page, decode_page_token, page_of, page_size
from services.kit.text import shown
from services.progress.base import (
    Cause,
    ProgressBase,
    active_by_id,
    evaluate_deferred,
    record_evaluation,
)
from services.progress.domain.definitions import (
    DEFINITION_ID,
    Badge,
    Challenge,
    Streak,
    TierProgram,
)
from services.progress.domain.evaluate import (
    ChallengeRound,
    StreakFigures,
    badge_value,
    challenge_round,
    current_window,
    evaluate,
    program_standing,
    streak_figures,
    streak_periods,
    today_of,
)
from services.progress.domain.events import ChallengeJoined, Recorded
from services.progress.domain.facts import MemberFacts
from services.progress.domain.records import AwardKind, TierChange
from services.progress.domain.tiers import Floor, Standing
from services.progress.feeding import apply_events
from services.progress.store import SqliteProgressUnit

MAX_REASON = 200
MAX_FUNDING = 10**12
REPLAY_PAGE = 5000


@dataclass(frozen=True, slots=True)
class TierView:
    program_id: str
    program: TierProgram
    standing: Standing


@dataclass(frozen=True, slots=True)
class BadgeView:
    badge_id: str
    badge: Badge
    value: int
    earned: dict[str, int]


@dataclass(frozen=True, slots=True)
class StreakView:
    streak_id: str
    streak: Streak
    figures: StreakFigures
    time_zone: str


@dataclass(frozen=True, slots=True)
class ChallengeView:
    challenge_id: str
    challenge: Challenge
    round: ChallengeRound
    completed_us: int | None


@dataclass(frozen=True, slots=True)
class MemberProgress:
    member_id: str
    tiers: list[TierView]
    badges: list[BadgeView]
    streaks: list[StreakView]
    challenges: list[ChallengeView]


@dataclass(frozen=True, slots=True)
class Difference:
    subject: str
    stored: str
    rebuilt: str


@dataclass(frozen=True, slots=True)
class Moves:
    period_start_us: int
    up: int
    down: int


@dataclass(frozen=True, slots=True)
class Completion:
    definition_id: str
    participants: int
    completions: int


@dataclass(frozen=True, slots=True)
class Stats:
    tiers: list[tuple[str, int]]
    moves: list[Moves]
    badges: list[Completion]
    challenges: list[Completion]


@dataclass(frozen=True, slots=True)
class TierMembers:
    program_id: str
    tier_id: str
    members: int


def tier_population(
    unit: SqliteProgressUnit, program_id: str, program: TierProgram
) -> list[tuple[str, int]]:
    """(tier id, members) for every tier of the program, in its order; a member
    recorded with no tier is in the first."""
    counted = {c.key: c.members for c in unit.tier_counts(program_id)}
    base = program.tiers[0].tier_id
    counted[base] = counted.get(base, 0) + counted.pop("", 0)
    return [(t.tier_id, counted.get(t.tier_id, 0)) for t in program.tiers]


def check_member(member_id: str, violations: Violations | None = None) -> None:
    own = violations is None
    violations = violations or Violations()
    check_id(violations, "member_id", member_id, MEMBER_ID)
    if own:
        violations.raise_if_any()


def member_progress(unit: SqliteProgressUnit, member_id: str, now_us: int) -> MemberProgress:
    definitions = unit.active_definitions()
    floors = unit.floors(member_id)
    awards = unit.awards(member_id)
    earned = {(a.kind, a.definition_id, a.detail): a.award_us for a in awards}
    tiers, badges, streaks, challenges = [], [], [], []
    for definition in definitions:
        spec, key = definition.spec, definition.definition_id
        if isinstance(spec, TierProgram):
            standing = program_standing(unit, member_id, spec, floors.get(key), now_us)
            tiers.append(TierView(key, spec, standing))
        elif isinstance(spec, Badge):
            levels = {
                level.level_id: earned[(AwardKind.BADGE, key, level.level_id)]
                for level in spec.levels
                if (AwardKind.BADGE, key, level.level_id) in earned
            }
            badges.append(BadgeView(key, spec, badge_value(unit, member_id, spec), levels))
        elif isinstance(spec, Streak):
            figures = streak_figures(
                streak_periods(unit, member_id, spec),
                spec.freeze,
                today_of(unit, member_id, spec, now_us),
            )
            zone_name = unit.time_zone(member_id) or spec.default_time_zone
            streaks.append(StreakView(key, spec, figures, zone_name))
        elif isinstance(spec, Challenge):
            window = current_window(spec, now_us)
            if window is None:
                continue
            found = challenge_round(unit, member_id, key, spec, window)
            completed = earned.get((AwardKind.CHALLENGE, key, str(window.start_us)))
            challenges.append(ChallengeView(key, spec, found, completed))
    return MemberProgress(member_id, tiers, badges, streaks, challenges)


class MemberUseCases(ProgressBase):
    async def progress(self, member_id: str) -> MemberProgress:
        check_member(member_id)
        now = self._clock.now_us()
        return await self._store.read(lambda unit: member_progress(unit, member_id, now))

    async def events(self, member_id: str, requested: int, token: str) -> Page[Recorded]:
        violations = Violations()
        check_member(member_id, violations)
        size = page_size(violations, requested)
        violations.raise_if_any()
        query = ("member-events", member_id)
        after = decode_page_token(token, query, int) or 0
        rows = await self._store.read(lambda unit: unit.journal(member_id, after, size + 1))
        return page_of(rows, size, lambda recorded: recorded.sequence, query)

    async def set_floor(
        self,
        program_id: str,
        member_id: str,
        tier_id: str,
        expire_us: int | None,
        reason: str,
    ) -> TierView:
        violations = Violations()
        check_id(violations, "program_id", program_id, DEFINITION_ID)
        check_member(member_id, violations)
        now = self._clock.now_us()
        if tier_id:
            check_id(violations, "tier_id", tier_id, DEFINITION_ID)
            if expire_us is None:
                violations.add("expire_time", "is required with a tier")
            elif expire_us <= now:
                violations.add("expire_time", "must be in the future")
        if not reason.strip() or len(reason) > MAX_REASON or not reason.isprintable():
            violations.add("reason", f"1 to {MAX_REASON} printable characters, got {shown(reason)}")
        violations.raise_if_any()

        def work(unit: SqliteProgressUnit) -> TierView:
            definition = unit.definition(program_id)
            if definition is None or not isinstance(definition.spec, TierProgram):
                raise NotFound(
                    "PROGRAM_NOT_FOUND", f"no tier program {program_id}", {"id": program_id}
                )
            program = definition.spec
            if tier_id and program.rank(tier_id) < 0:
                raise InvalidArgument(
                    [FieldViolation("tier_id", f"{shown(tier_id)} is not a tier of {program_id}")]
                )
            floor = Floor(tier_id, expire_us, reason) if tier_id and expire_us else None
            unit.set_floor(program_id, member_id, floor)
            floors = unit.floors(member_id)
            evaluation = evaluate(unit, member_id, [definition], floors, now)
            record_evaluation(
                unit, member_id, {program_id: definition}, evaluation, now, Cause.FLOOR
            )
            return TierView(program_id, program, evaluation.standings[program_id])

        view = await self._store.write(work)
        self.commits.notify()
        return view

    async def join(self, challenge_id: str, member_id: str) -> ChallengeView:
        violations = Violations()
        check_id(violations, "challenge_id", challenge_id, DEFINITION_ID)
        check_member(member_id, violations)
        violations.raise_if_any()
        now = self._clock.now_us()

        def work(unit: SqliteProgressUnit):
            definition = unit.definition(challenge_id)
            if definition is None or not isinstance(definition.spec, Challenge):
                raise NotFound(
                    "CHALLENGE_NOT_FOUND", f"no challenge {challenge_id}", {"id": challenge_id}
                )
            if not definition.active:
                raise NotFound("CHALLENGE_NOT_FOUND", f"challenge {challenge_id} is archived", {})
            entries, _ = apply_events(unit, [ChallengeJoined(challenge_id, member_id, now)], now)
            spec = definition.spec
            window = current_window(spec, now)
            if window is None:
                window = next((w for w, _, _ in spec.compiled().occurrences(now, 1)), None)
            if window is None:
                raise NotFound("CHALLENGE_OVER", f"challenge {challenge_id} has no window left", {})
            found = challenge_round(unit, member_id, challenge_id, spec, window)
            award = unit.award(member_id, AwardKind.CHALLENGE, challenge_id, str(window.start_us))
            return entries, ChallengeView(
                challenge_id, spec, found, award.award_us if award else None
            )

        entries, view = await self._store.write(work)
        await self._settle(entries)
        return view

    async def rebuild(self, member_id: str) -> tuple[int, list[Difference]]:
        """Replay the member's journal from the start into fresh facts (in memory)
        and compare them, and what they earn, with what is stored."""
        check_member(member_id)
        now = self._clock.now_us()

        def finish(unit: SqliteProgressUnit):
            """An evaluation left by a feed catching up is done first: the stored
            state is what the facts earn, not what they earned before the backlog."""
            deferred = [member_id] if unit.evaluation_deferred(member_id) else []
            return evaluate_deferred(unit, deferred, now)

        entries, changes = await self._store.write(finish)
        if changes:
            self.commits.notify()
        await self._settle(entries)

        def work(unit: SqliteProgressUnit):
            events, after = [], 0
            while True:
                page = unit.journal(member_id, after, REPLAY_PAGE)
                events += [recorded.event for recorded in page]
                if len(page) < REPLAY_PAGE:
                    break
                after = page[-1].sequence
            rebuilt = MemberFacts.replay(member_id, events)
            differences = _fact_differences(unit.snapshot(member_id), rebuilt.snapshot())
            definitions = active_by_id(unit)
            evaluation = evaluate(
                rebuilt, member_id, list(definitions.values()), unit.floors(member_id), now
            )
            for program_id, standing in evaluation.standings.items():
                program = definitions[program_id].spec
                rebuilt_tier = program.tiers[standing.rank].tier_id
                recorded = unit.member_tier(program_id, member_id)
                stored_tier = recorded.tier_id if recorded else program.tiers[0].tier_id
                review_due = recorded is not None and (recorded.next_review_us or now + 1) <= now
                if stored_tier != rebuilt_tier and not review_due:
                    differences.append(Difference(f"tier:{program_id}", stored_tier, rebuilt_tier))
            stored_awards = {(a.kind, a.definition_id, a.detail) for a in unit.awards(member_id)}
            for kind, earned in (
                (AwardKind.BADGE, evaluation.badge_levels),
                (AwardKind.STREAK_MILESTONE, evaluation.milestones),
                (AwardKind.CHALLENGE, evaluation.completions),
            ):
                for definition_id, detail in sorted(earned):
                    if (kind, definition_id, str(detail)) not in stored_awards:
                        differences.append(
                            Difference(
                                f"{kind.value.lower()}:{definition_id}:{detail}",
                                "not awarded",
                                "earned",
                            )
                        )
            return len(events), differences

        return await self._store.read(work)

    async def fund(self, budget_id: str, points: int, request_id: str) -> tuple[str, int]:
        violations = Violations()
        check_id(violations, "budget_id", budget_id, DEFINITION_ID)
        check_id(violations, "request_id", request_id, REQUEST_ID)
        violations.check(0 < points <= MAX_FUNDING, "points", f"must be 1 to {MAX_FUNDING:,}")
        violations.raise_if_any()
        return await self._rewards.fund(budget_id, points, request_id)

    async def tier_members(self) -> list[TierMembers]:
        """Members in each tier of every active tier program (the operator's gauge)."""

        def work(unit: SqliteProgressUnit) -> list[TierMembers]:
            return [
                TierMembers(definition.definition_id, tier_id, members)
                for definition in unit.active_definitions()
                if isinstance(definition.spec, TierProgram)
                for tier_id, members in tier_population(
                    unit, definition.definition_id, definition.spec
                )
            ]

        return await self._store.read(work)

    async def stats(
        self, program_id: str, start_us: int | None, end_us: int | None, period: str
    ) -> Stats:
        violations = Violations()
        if program_id:
            check_id(violations, "program_id", program_id, DEFINITION_ID)
        now = self._clock.now_us()
        end = now if end_us is None else end_us
        start = end - 30 * 86_400 * 1_000_000 if start_us is None else start_us
        violations.check(end > start, "end_time", "must be after start_time")
        violations.raise_if_any()

        def work(unit: SqliteProgressUnit) -> Stats:
            definitions = unit.active_definitions()
            tiers: list[tuple[str, int]] = []
            moves: list[Moves] = []
            if program_id:
                program = unit.definition(program_id)
                if program is None or not isinstance(program.spec, TierProgram):
                    raise NotFound(
                        "PROGRAM_NOT_FOUND", f"no tier program {program_id}", {"id": program_id}
                    )
                tiers = tier_population(unit, program_id, program.spec)
                moves = _moves(unit.changes_between(program_id, start, end), start, end, period)
            badges_done = {c.key: c.members for c in unit.completion_counts(AwardKind.BADGE)}
            challenges_done = {
                c.key: c.members for c in unit.completion_counts(AwardKind.CHALLENGE)
            }
            badges = [
                Completion(
                    d.definition_id,
                    unit.participants([d.spec.rule]),
                    badges_done.get(d.definition_id, 0),
                )
                for d in definitions
                if isinstance(d.spec, Badge)
            ]
            challenges = [
                Completion(
                    d.definition_id,
                    unit.participants([step.rule for step in d.spec.steps]),
                    challenges_done.get(d.definition_id, 0),
                )
                for d in definitions
                if isinstance(d.spec, Challenge)
            ]
            return Stats(tiers, moves, badges, challenges)

        return await self._store.read(work)


def _fact_differences(stored, rebuilt) -> list[Difference]:
    differences = []
    for field in fields(stored):
        mine, theirs = getattr(stored, field.name), getattr(rebuilt, field.name)
        if mine == theirs:
            continue
        if isinstance(mine, tuple):
            left, right = set(mine), set(theirs)
            for item in sorted(left - right, key=repr)[:20]:
                differences.append(Difference(f"facts:{field.name}", repr(item), "missing"))
            for item in sorted(right - left, key=repr)[:20]:
                differences.append(Difference(f"facts:{field.name}", "missing", repr(item)))
        else:
            differences.append(Difference(f"facts:{field.name}", repr(mine), repr(theirs)))
    return differences


def _bucket(instant_us: int, period: str) -> int:
    moment = to_datetime(instant_us)
    day = moment.date()
    if period == "WEEK":
        day -= timedelta(days=day.weekday())
    elif period == "MONTH":
        day = day.replace(day=1)
    return from_datetime(datetime(day.year, day.month, day.day, tzinfo=UTC))


def _moves(changes: list[TierChange], start: int, end: int, period: str) -> list[Moves]:
    up: Counter[int] = Counter()
    down: Counter[int] = Counter()
    for change in changes:
        (up if change.upgrade else down)[_bucket(change.change_us, period)] += 1
    return [Moves(bucket, up[bucket], down[bucket]) for bucket in sorted(set(up) | set(down))]
