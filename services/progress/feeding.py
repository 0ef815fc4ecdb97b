"""Applying the feeds: each batch of events, the facts they make, what the
members concerned have earned, and the feed's cursor, in one transaction.
And reviews: members whose tier may run out with the passing of time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import structlog

from services.kit.clock import MICROS_PER_SECOND
from services.kit.feeds import FeedItem
from services.progress.base import Cause, ProgressBase, active_by_id, record_evaluation
from services.progress.domain.evaluate import evaluate
from services.progress.domain.events import ChallengeJoined, Event
from services.progress.domain.records import RecordedTier
from services.progress.store import SqliteProgressUnit

log = structlog.get_logger()

REVIEW_BATCH = 500


def apply_events(
    unit: SqliteProgressUnit, events: Sequence[Event], now_us: int, cause: Cause = Cause.EVENTS
):
    """Journal and derive each new event, then evaluate each member touched once."""
    touched: dict[str, tuple[list[Event], set[int]]] = {}
    for event in events:
        if not unit.record_event(event):
            continue  # delivered before: recorded once
        moments = unit.apply_fact(event)
        member_events, member_moments = touched.setdefault(event.member_id, ([], set()))
        member_events.append(event)
        member_moments |= moments
    definitions = active_by_id(unit)
    listed = list(definitions.values())
    entries, changes = [], 0
    # One read of what every member touched holds, not one per member.
    held = unit.held_awards(list(touched))
    for member_id, (member_events, moments) in touched.items():
        evaluation = evaluate(
            unit, member_id, listed, unit.floors(member_id), now_us, member_events, moments
        )
        recorded = record_evaluation(
            unit, member_id, definitions, evaluation, now_us, cause, held[member_id]
        )
        entries += recorded.entries
        changes += recorded.changes
    return entries, changes


class FeedUseCases(ProgressBase):
    async def cursor(self, feed: str) -> int:
        return await self._store.read(lambda unit: unit.cursor(feed))

    async def apply(self, feed: str, batch: Sequence[FeedItem[list[Event]]]) -> int:
        """Apply what the batch holds past the stored cursor, and move the cursor, at once."""
        now = self._clock.now_us()

        def work(unit: SqliteProgressUnit):
            stored = unit.cursor(feed)
            fresh = [item for item in batch if item.sequence > stored]
            if not fresh:
                return stored, [], 0
            events = [event for item in fresh for event in item.value]
            entries, changes = apply_events(unit, events, now)
            unit.set_cursor(feed, fresh[-1].sequence)
            return fresh[-1].sequence, entries, changes

        cursor, entries, changes = await self._store.write(work)
        if changes:
            self.commits.notify()
        await self._settle(entries)
        return cursor

    async def join(self, event: ChallengeJoined) -> None:
        entries, _ = await self._store.write(
            lambda unit: apply_events(unit, [event], self._clock.now_us())
        )
        await self._settle(entries)

    async def review_due(self) -> int:
        """Re-evaluate the tiers of members whose tier or floor may have run out."""
        reviewed = 0
        while True:
            now = self._clock.now_us()

            def work(unit: SqliteProgressUnit, now: int = now):
                due = unit.due_reviews(now, REVIEW_BATCH)
                definitions = active_by_id(unit)
                programs = [
                    d for d in definitions.values() if d.definition_id in {p for p, _ in due}
                ]
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
                return len(due), changes

            count, changes = await self._store.write(work)
            reviewed += count
            if changes:
                self.commits.notify()
            if count < REVIEW_BATCH:
                return reviewed + await self._evaluate_pending()

    async def _evaluate_pending(self) -> int:
        """Members to evaluate against a definition created or changed since."""
        evaluated = 0
        while True:
            now = self._clock.now_us()

            def work(unit: SqliteProgressUnit, now: int = now):
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
                return len(due), entries

            count, entries = await self._store.write(work)
            await self._settle(entries)
            evaluated += count
            if count < REVIEW_BATCH:
                return evaluated

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
