"""Campaign state transitions as they happen by the injected clock, stored in
order so a watcher that passes its last sequence resumes without loss or repeat.

A heap holds each evaluated campaign's next window boundary; the tracker sleeps
until the soonest, derives the states at that instant and appends what changed.
After a restart it replays the boundaries passed since its last scan, each with
its own effect time. Manager actions and budget use tell it what changed
(campaign_changed, budgets_changed), and it keeps the catalog current: it
follows the catalog feed (store.py CATALOG_FEED), which every replica's
campaign writes stamp, reloading only the campaigns changed since it last read,
on each commit wake (on PostgreSQL, every replica's commits wake it)."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import replace

import structlog

from services.campaigns.catalog import EVALUATED, Catalog
from services.campaigns.domain.evaluation import Candidate
from services.campaigns.domain.lifecycle import derive_state, smallest_award
from services.campaigns.domain.model import Campaign, CampaignState
from services.campaigns.domain.records import BudgetFigures, StateChange, Transition
from services.campaigns.store import CampaignsStore
from services.kit.clock import Clock
from services.kit.feeds import FEED_PAGE, CommitSignal, serve_pages

log = structlog.get_logger()


class TransitionTracker:
    def __init__(
        self, store: CampaignsStore, catalog: Catalog, clock: Clock, commits: CommitSignal
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._clock = clock
        self._commits = commits
        # (boundary, campaign id, version), soonest first.
        self._heap: list[tuple[int, str, int]] = []
        self._next: dict[str, tuple[int, int]] = {}
        self._announced: dict[str, CampaignState] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._follower: asyncio.Task | None = None
        # The catalog feed's number the catalog holds every change up to.
        self.catalog_position = 0
        self._following = asyncio.Lock()
        # Notified after each read of the catalog feed (tests wait on it).
        self.followed = CommitSignal()

    async def start(self) -> None:
        """Load the catalog, announce what happened while the service was down."""
        campaigns, self.catalog_position = await self._store.read(
            lambda unit: (unit.campaigns(), unit.catalog_position())
        )
        for campaign in campaigns:
            self._catalog.put(campaign)
        self._announced = await self._store.read(lambda unit: unit.announced_states())
        scanned = await self._store.read(lambda unit: unit.scanned_us())
        now = self._clock.now_us()
        for entry in self._catalog.all():
            self._plan(entry, now if scanned is None else scanned)
        await self._run_due(now)
        await self.refresh([entry.campaign_id for entry in self._catalog.all()])
        self._task = asyncio.create_task(self._loop())
        self._follower = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        tasks = [task for task in (self._task, self._follower) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = self._follower = None

    async def campaign_changed(self, campaign_id: str) -> Campaign | None:
        """A campaign this replica (a manager, a funding) changed: the catalog
        catches up, and the campaign's new state is announced."""
        await self.follow_catalog()
        entry = self._catalog.get(campaign_id)
        if entry is None:
            return None
        await self.refresh([campaign_id])
        return entry.campaign

    async def follow_catalog(self) -> None:
        """Reload the campaigns any replica changed since the catalog last read the
        feed, and queue their next window boundaries: every replica's tracker
        announces those, so one that dies leaves them to the others. The change
        itself is announced by the replica that made it (campaign_changed), once
        its funding is counted, so no replica announces the moment between a
        schedule and its funding."""
        async with self._following:
            after = self.catalog_position
            changed, position = await self._store.read(lambda unit: unit.catalog_changes(after))
            now = self._clock.now_us()
            for campaign in changed:
                self._plan(self._catalog.put(campaign), now)
            self.catalog_position = position
        self.followed.notify()

    async def _follow(self) -> None:
        while True:
            version = self._commits.version
            try:
                await self.follow_catalog()
            except Exception:
                log.exception("catalog_follow_failed")
            await self._commits.wait_past(version)

    async def budgets_changed(self, budgets: Mapping[str, BudgetFigures]) -> None:
        """Keep the catalog's budget figures current; announce budgets that ran out
        or refilled."""
        crossed = []
        for campaign_id, figures in budgets.items():
            entry = self._catalog.get(campaign_id)
            if entry is None:
                continue
            before = entry.campaign
            after = replace(before, budget_funded=figures.funded, budget_used=figures.used)
            self._catalog.put(after)
            smallest = smallest_award(before)
            if (before.budget_remaining < smallest) != (after.budget_remaining < smallest):
                crossed.append(campaign_id)
        if crossed:
            await self.refresh(crossed)

    def _plan(self, entry: Candidate, after_us: int) -> None:
        """Queue the campaign's next boundary after `after_us`, once."""
        campaign = entry.campaign
        if campaign.status not in EVALUATED:
            self._next.pop(campaign.campaign_id, None)
            return
        boundary = entry.schedule.next_boundary(after_us)
        if boundary is None:
            self._next.pop(campaign.campaign_id, None)
            return
        key = (boundary, campaign.version)
        if self._next.get(campaign.campaign_id) != key:
            self._next[campaign.campaign_id] = key
            heapq.heappush(self._heap, (boundary, campaign.campaign_id, campaign.version))
            self._wake.set()

    def _change(self, entry: Candidate, at_us: int) -> StateChange | None:
        state = derive_state(entry.campaign, entry.schedule, at_us)
        before = self._announced.get(entry.campaign_id, CampaignState.DRAFT)
        if state is before:
            return None
        self._announced[entry.campaign_id] = state
        return StateChange(entry.campaign_id, before, state, at_us)

    async def _run_due(self, now_us: int) -> None:
        async with self._lock:
            changes: list[StateChange] = []
            while self._heap and self._heap[0][0] <= now_us:
                boundary, campaign_id, version = heapq.heappop(self._heap)
                if self._next.get(campaign_id) != (boundary, version):
                    continue
                del self._next[campaign_id]
                entry = self._catalog.get(campaign_id)
                if entry is None:
                    continue
                change = self._change(entry, boundary)
                if change is not None:
                    changes.append(change)
                self._plan(entry, boundary)
            await self._append(changes, now_us)

    async def refresh(self, campaign_ids: Iterable[str]) -> None:
        """Announce what manager actions or budget use changed, effective now."""
        now = self._clock.now_us()
        async with self._lock:
            changes = []
            for campaign_id in campaign_ids:
                entry = self._catalog.get(campaign_id)
                if entry is None:
                    continue
                change = self._change(entry, now)
                if change is not None:
                    changes.append(change)
                self._plan(entry, now)
            if changes:
                await self._append(changes, None)

    async def _append(self, changes: list[StateChange], scanned_us: int | None) -> None:
        await self._store.write(lambda unit: unit.append_transitions(changes, scanned_us))
        for change in changes:
            log.info(
                "campaign_transition",
                campaign_id=change.campaign_id,
                from_state=change.before.value,
                to_state=change.after.value,
                effect_us=change.effect_us,
            )

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            waits = [asyncio.ensure_future(self._wake.wait())]
            if self._heap:
                waits.append(asyncio.ensure_future(self._clock.sleep_until(self._heap[0][0])))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
            try:
                await self._run_due(self._clock.now_us())
            except Exception:
                log.exception("transition_scan_failed")

    def watch(self, after_sequence: int) -> AsyncIterator[Transition]:
        """Every stored transition after `after_sequence`, in order, forever."""

        async def page(after: int) -> list[Transition]:
            return await self._store.read(lambda unit: unit.transitions_after(after, FEED_PAGE))

        return serve_pages(page, after_sequence, self._commits)
