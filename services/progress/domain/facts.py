"""The facts every figure is computed from, and their in-memory form.

The store keeps these facts in tables and answers the `Facts` questions in
SQL as events arrive; `MemberFacts` rebuilds them for one member from the
journal alone and answers the same questions in Python. RebuildMember
compares the two: two implementations of one definition.

Fact rules (both implementations follow them):
- A credit counts at its activity's event time once that activity is known,
  at its commit time before; its points are net of every reversal of it.
- An activity counts unless it is a purchase refunded in full.
- A play and an activity carry the zone they are counted in: the activity's
  own, else the member's last known zone, else the definition's default.
- The member's anchor (anniversary) is their earliest event.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Protocol

from services.kit.schedule import local_of, zone
from services.progress.domain.definitions import Measure, Rule, StreakPeriod
from services.progress.domain.events import (
    ActivityEvent,
    ChallengeJoined,
    Event,
    PlayEvent,
    PlayKind,
    PointsCredited,
    PointsReversed,
)
from services.progress.domain.tiers import Qualifying

NO_START = -(2**62)
NO_END = 2**62


@dataclass(frozen=True, slots=True)
class Credit:
    transfer_id: str
    code: str
    amount: int
    reversed: int
    effective_us: int
    commit_us: int
    activity_id: str = ""

    @property
    def net(self) -> int:
        return self.amount - self.reversed


@dataclass(frozen=True, slots=True)
class Activity:
    activity_id: str
    type: str
    occur_us: int
    time_zone: str
    amount_minor: int = 0
    refunded_minor: int = 0

    @property
    def counts(self) -> bool:
        return not (self.amount_minor > 0 and self.refunded_minor >= self.amount_minor)


@dataclass(frozen=True, slots=True)
class Play:
    play_id: str
    kind: PlayKind
    game_id: str
    occur_us: int
    time_zone: str
    score: int = 0


@dataclass(frozen=True, slots=True)
class FactsSnapshot:
    """Everything known of one member, in a canonical order, to compare."""

    credits: tuple[Credit, ...]
    activities: tuple[Activity, ...]
    plays: tuple[Play, ...]
    joined: tuple[tuple[str, int], ...]
    time_zone: str


class Facts(Protocol):
    """The questions definitions ask of one member's facts."""

    def history(
        self, member_id: str, codes: frozenset[str], activity_types: tuple[str, ...], start_us: int
    ) -> list[Qualifying]: ...
    def totals(
        self,
        member_id: str,
        codes: frozenset[str],
        activity_types: tuple[str, ...],
        bounds: Sequence[int],
    ) -> list[tuple[int, int]]: ...
    def anchor(self, member_id: str) -> int | None: ...
    def measure(self, member_id: str, rule: Rule, start_us: int, end_us: int) -> int: ...
    def moments(self, member_id: str, rule: Rule) -> list[tuple[int, str]]: ...
    def joined(self, member_id: str, challenge_id: str) -> int | None: ...
    def time_zone(self, member_id: str) -> str: ...


def period_of(instant_us: int, zone_name: str, period: StreakPeriod) -> int:
    """The local day's ordinal, or the ISO week's (Monday's ordinal // 7), in the zone."""
    day = local_of(instant_us, zone(zone_name)).date()
    if period is StreakPeriod.DAY:
        return day.toordinal()
    return (day.toordinal() - day.weekday()) // 7


def period_label(ordinal: int, period: StreakPeriod) -> str:
    if period is StreakPeriod.DAY:
        return date.fromordinal(ordinal).isoformat()
    year, week, _ = date.fromordinal(ordinal * 7 + 1).isocalendar()
    return f"{year}-W{week:02d}"


def rule_matches_play(rule: Rule, play: Play | PlayEvent) -> bool:
    if rule.game_id and play.game_id != rule.game_id:
        return False
    if rule.measure is Measure.SPIN_COUNT:
        return play.kind is PlayKind.SPIN
    if rule.measure is Measure.CATCH_SCORE:
        return play.kind is PlayKind.CATCH
    return rule.measure is Measure.PLAY_COUNT


@dataclass
class MemberFacts:
    """One member's facts, rebuilt in memory by applying their events in journal order."""

    member_id: str
    credits: dict[str, Credit] = field(default_factory=dict)
    activities: dict[str, Activity] = field(default_factory=dict)
    plays: dict[str, Play] = field(default_factory=dict)
    joins: dict[str, int] = field(default_factory=dict)
    zone_name: str = ""
    first_us: int | None = None

    @classmethod
    def replay(cls, member_id: str, events: Iterable[Event]) -> MemberFacts:
        facts = cls(member_id)
        for event in events:
            facts.apply(event)
        return facts

    def _seen(self, instant_us: int) -> None:
        self.first_us = instant_us if self.first_us is None else min(self.first_us, instant_us)

    def apply(self, event: Event) -> None:
        if isinstance(event, PointsCredited):
            if event.transfer_id in self.credits:
                return
            activity = self.activities.get(event.activity_id) if event.activity_id else None
            self.credits[event.transfer_id] = Credit(
                event.transfer_id,
                event.code,
                event.amount,
                0,
                activity.occur_us if activity is not None else event.commit_us,
                event.commit_us,
                event.activity_id,
            )
            self._seen(event.commit_us)
        elif isinstance(event, PointsReversed):
            original = self.credits.get(event.reversed_id)
            if original is not None:
                taken = min(original.amount, original.reversed + event.amount)
                self.credits[event.reversed_id] = replace(original, reversed=taken)
        elif isinstance(event, ActivityEvent):
            if event.activity_id in self.activities:
                return
            if event.time_zone:
                self.zone_name = event.time_zone
            self.activities[event.activity_id] = Activity(
                event.activity_id,
                event.type,
                event.occur_us,
                event.time_zone or self.zone_name,
                0 if event.refunds_activity_id else event.amount_minor,
            )
            for transfer_id, credit in self.credits.items():
                if credit.activity_id == event.activity_id:
                    self.credits[transfer_id] = replace(credit, effective_us=event.occur_us)
            refunded = self.activities.get(event.refunds_activity_id)
            if refunded is not None:
                self.activities[refunded.activity_id] = replace(
                    refunded, refunded_minor=refunded.refunded_minor + event.amount_minor
                )
            self._seen(event.occur_us)
        elif isinstance(event, PlayEvent):
            if event.play_id in self.plays:
                return
            self.plays[event.play_id] = Play(
                event.play_id,
                event.kind,
                event.game_id,
                event.occur_us,
                self.zone_name,
                event.score,
            )
            self._seen(event.occur_us)
        elif isinstance(event, ChallengeJoined):
            self.joins.setdefault(event.challenge_id, event.occur_us)

    # -- the Facts questions

    def history(
        self, member_id: str, codes: frozenset[str], activity_types: tuple[str, ...], start_us: int
    ) -> list[Qualifying]:
        entries = [
            Qualifying(credit.effective_us, points=credit.net)
            for credit in self.credits.values()
            if credit.code in codes and credit.net > 0 and credit.effective_us >= start_us
        ]
        entries += [
            Qualifying(activity.occur_us, activities=1)
            for activity in self.activities.values()
            if activity.type in activity_types and activity.counts and activity.occur_us >= start_us
        ]
        return sorted(entries, key=lambda entry: (entry.at_us, entry.points, entry.activities))

    def totals(
        self,
        member_id: str,
        codes: frozenset[str],
        activity_types: tuple[str, ...],
        bounds: Sequence[int],
    ) -> list[tuple[int, int]]:
        """(points, activities) in each [bounds[i], bounds[i + 1])."""
        sums = [[0, 0] for _ in bounds[1:]]
        for entry in self.history(member_id, codes, activity_types, bounds[0]):
            index = bisect_right(bounds, entry.at_us) - 1
            if 0 <= index < len(sums):
                sums[index][0] += entry.points
                sums[index][1] += entry.activities
        return [(points, activities) for points, activities in sums]

    def anchor(self, member_id: str) -> int | None:
        return self.first_us

    def measure(self, member_id: str, rule: Rule, start_us: int, end_us: int) -> int:
        if rule.measure is Measure.POINTS_EARNED:
            return sum(
                credit.net
                for credit in self.credits.values()
                if credit.code in rule.codes and start_us <= credit.effective_us < end_us
            )
        if rule.measure is Measure.ACTIVITY_COUNT:
            return sum(
                1
                for activity in self.activities.values()
                if activity.type == rule.activity_type
                and activity.counts
                and start_us <= activity.occur_us < end_us
            )
        plays = [
            play
            for play in self.plays.values()
            if rule_matches_play(rule, play) and start_us <= play.occur_us < end_us
        ]
        if rule.measure is Measure.CATCH_SCORE:
            return max((play.score for play in plays), default=0)
        return len(plays)

    def moments(self, member_id: str, rule: Rule) -> list[tuple[int, str]]:
        if rule.measure is Measure.ACTIVITY_COUNT:
            return sorted(
                (activity.occur_us, activity.time_zone)
                for activity in self.activities.values()
                if activity.type == rule.activity_type and activity.counts
            )
        return sorted(
            (play.occur_us, play.time_zone)
            for play in self.plays.values()
            if rule_matches_play(rule, play)
        )

    def joined(self, member_id: str, challenge_id: str) -> int | None:
        return self.joins.get(challenge_id)

    def time_zone(self, member_id: str) -> str:
        return self.zone_name

    def snapshot(self) -> FactsSnapshot:
        return FactsSnapshot(
            tuple(sorted(self.credits.values(), key=lambda c: c.transfer_id)),
            tuple(sorted(self.activities.values(), key=lambda a: a.activity_id)),
            tuple(sorted(self.plays.values(), key=lambda p: p.play_id)),
            tuple(sorted(self.joins.items())),
            self.zone_name,
        )
