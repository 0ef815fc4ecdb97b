"""Campaign state transitions as they happen by the injected clock, stored in
order so a watcher that passes its last sequence resumes without loss or repeat.

A heap holds each evaluated campaign's next window boundary; the tracker sleeps
until the soonest, derives the states at that instant and appends what changed.
After a restart it replays the boundaries passed since its last scan, each with
its own effect time. Manager actions and budget use call refresh()."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator, Iterable

import structlog

from services.campaigns.catalog import EVALUATED, Catalog
from services.campaigns.domain.evaluation import Candidate
from services.campaigns.domain.lifecycle import derive_state
from services.campaigns.domain.model import CampaignState
from services.campaigns.store import CampaignsStore, Transition
from services.kit.clock import Clock

log = structlog.get_logger()

Change = tuple[str, CampaignState, CampaignState, int]


class TransitionTracker:
    def __init__(self, store: CampaignsStore, catalog: Catalog, clock: Clock) -> None:
        self._store = store
        self._catalog = catalog
        self._clock = clock
        self._heap: list[tuple[int, str, int]] = []
        self._next: dict[str, tuple[int, int]] = {}
        self._announced: dict[str, CampaignState] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._appended = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        writer = self._store.writer
        self._announced = await writer.submit(self._store.announced_states)
        scanned = await writer.submit(self._store.scanned_us)
        now = self._clock.now_us()
        for entry in self._catalog.all():
            self._plan(entry, now if scanned is None else scanned)
        await self._run_due(now)
        await self.refresh([entry.campaign_id for entry in self._catalog.all()])
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

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

    def _change(self, entry: Candidate, at_us: int) -> Change | None:
        state = derive_state(entry.campaign, entry.schedule, at_us)
        before = self._announced.get(entry.campaign_id, CampaignState.DRAFT)
        if state is before:
            return None
        self._announced[entry.campaign_id] = state
        return (entry.campaign_id, before, state, at_us)

    async def _run_due(self, now_us: int) -> None:
        async with self._lock:
            changes: list[Change] = []
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

    async def _append(self, changes: list[Change], scanned_us: int | None) -> None:
        await self._store.writer.submit(
            lambda connection: self._store.append_transitions(connection, changes, scanned_us)
        )
        for campaign_id, before, after, effect_us in changes:
            log.info(
                "campaign_transition",
                campaign_id=campaign_id,
                from_state=before.value,
                to_state=after.value,
                effect_us=effect_us,
            )
        if changes:
            self._appended.set()
            self._appended = asyncio.Event()

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

    async def watch(self, after_sequence: int) -> AsyncIterator[Transition]:
        position = after_sequence
        while True:
            appended = self._appended
            batch = await self._store.transitions_after(position)
            for transition in batch:
                yield transition
                position = transition.sequence
            if not batch:
                await appended.wait()
