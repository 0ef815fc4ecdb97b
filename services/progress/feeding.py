"""Applying the feeds: each batch of events, the facts they make, what the
members concerned have earned, and the feed's cursor, in one transaction.
And reviews: members whose tier may run out with the passing of time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import structlog

from services.kit.clock import MICROS_PER_SECOND
from services.kit.feeds import FeedItem
from services.kit.outbox import OutboxEntry
from services.progress.base import (
    Cause,
    ProgressBase,
    active_by_id,
    evaluate_deferred,
    evaluate_members,
    record_evaluation,
)
from services.progress.domain.evaluate import evaluate
from services.progress.domain.events import ChallengeJoined, Event
from services.progress.domain.records import RecordedTier
from services.progress.store import SqliteProgressUnit

log = structlog.get_logger()

REVIEW_BATCH = 500


@dataclass(frozen=True, slots=True)
class Batch:
    """What one transaction of members did: how many, the award entries to
    settle, and the tier changes."""

    count: int
    entries: list[OutboxEntry]
    changes: int = 0


def apply_events(
    unit: SqliteProgressUnit,
    events: Sequence[Event],
    now_us: int,
    cause: Cause = Cause.EVENTS,
    defer: bool = False,
) -> tuple[list[OutboxEntry], int]:
    """Journal and derive each new event, then evaluate each member touched once
    (or, to `defer`, leave them for `evaluate_deferred`)."""
    touched: dict[str, tuple[list[Event], set[int]]] = {}
    for event in events:
        if not unit.record_event(event):
            continue  # delivered before: recorded once
        moments = unit.apply_fact(event)
        member_events, member_moments = touched.setdefault(event.member_id, ([], set()))
        member_events.append(event)
        member_moments |= moments
    if defer:
        unit.defer_evaluations(list(touched))
        return [], 0
    return evaluate_members(unit, touched, now_us, cause)


class FeedUseCases(ProgressBase):
    async def cursor(self, feed: str) -> int:
        return await self._store.read(lambda unit: unit.cursor(feed))

    async def apply(
        self, feed: str, batch: Sequence[FeedItem[list[Event]]], defer: bool = False
    ) -> int:
        """Apply what the batch holds past the stored cursor, and move the cursor, at
        once; to `defer` (catching up a backlog), leave the members it touched for
        `finish_catch_up`: each is then evaluated once for the whole stretch, not
        once per batch."""
        now = self._clock.now_us()

        def work(unit: SqliteProgressUnit):
            stored = unit.cursor(feed)
            fresh = [item for item in batch if item.sequence > stored]
            if not fresh:
                return stored, [], 0
            events = [event for item in fresh for event in item.value]
            entries, changes = apply_events(unit, events, now, defer=defer)
            unit.set_cursor(feed, fresh[-1].sequence)
            return fresh[-1].sequence, entries, changes

        cursor, entries, changes = await self._store.write(work)
        if changes:
            self.commits.notify()
        await self._settle(entries)
        return cursor

    async def finish_catch_up(self) -> int:
        """Evaluate every member whose evaluation was deferred, against every active
        definition (as a rebuild does)."""

        def work(unit: SqliteProgressUnit, now: int) -> Batch:
            members = unit.deferred_evaluations(REVIEW_BATCH)
            return Batch(len(members), *evaluate_deferred(unit, members, now))

        return await self._in_batches(work)

    async def join(self, event: ChallengeJoined) -> None:
        entries, _ = await self._store.write(
            lambda unit: apply_events(unit, [event], self._clock.now_us())
        )
        await self._settle(entries)

    async def review_due(self) -> int:
        """Re-evaluate the tiers of members whose tier or floor may have run out, then
        the members to evaluate against a definition created or changed since."""

        def reviews(unit: SqliteProgressUnit, now: int) -> Batch:
            due = unit.due_reviews(now, REVIEW_BATCH)
            definitions = active_by_id(unit)
            programs = [d for d in definitions.values() if d.definition_id in {p for p, _ in due}]
            changes = 0
            for program_id, member_id in due:
                program = [d for d in programs if d.definition_id == program_id]
                if not program:
                    unit.save_member_tier(_no_review(unit.member_tier(program_id, member_id)))
                    continue
                evaluation = evaluate(unit, member_id, program, unit.floors(member_id), now)
                changes += record_evaluation(
                    unit, member_id, definitions, evaluation, now, Cause.REVIEW
                ).changes
            return Batch(len(due), [], changes)

        def evaluations(unit: SqliteProgressUnit, now: int) -> Batch:
            due = unit.due_evaluations(REVIEW_BATCH)
            definitions = active_by_id(unit)
            entries = []
            for definition_id, member_id in due:
                unit.evaluated(definition_id, member_id)
                definition = definitions.get(definition_id)
                if definition is None:
                    continue
                evaluation = evaluate(unit, member_id, [definition], {}, now)
                entries += record_evaluation(
                    unit, member_id, definitions, evaluation, now, Cause.REVIEW
                ).entries
            return Batch(len(due), entries)

        return await self._in_batches(reviews) + await self._in_batches(evaluations)

    async def _in_batches(self, work: Callable[[SqliteProgressUnit, int], Batch]) -> int:
        """Run `work` (up to REVIEW_BATCH members a transaction, at the clock's now)
        until a batch comes short; settle what each recorded. Returns the members done."""
        done = 0
        while True:
            now = self._clock.now_us()
            batch = await self._store.write(lambda unit, now=now: work(unit, now))
            if batch.changes:
                self.commits.notify()
            await self._settle(batch.entries)
            done += batch.count
            if batch.count < REVIEW_BATCH:
                return done

    async def run_reviews(self, interval_seconds: float) -> None:
        """Background loop on the injected clock."""
        interval = int(interval_seconds * MICROS_PER_SECOND)
        while True:
            try:
                await self.review_due()
            except Exception:
                log.exception("tier_review_failed")
            await self._clock.sleep_until(self._clock.now_us() + interval)


def _no_review(recorded: RecordedTier) -> RecordedTier:
    """A member of an archived program: nothing more to review."""
    return replace(recorded, next_review_us=None)
