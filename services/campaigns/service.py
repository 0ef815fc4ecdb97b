"""Use cases of the campaigns service: members, campaign management (versions,
lifecycle, budget funding through the outbox, schedules, stats, transitions),
and activities, which it hands to the ActivityTracker."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import structlog

from services.campaigns import ledger_client
from services.campaigns.catalog import Catalog
from services.campaigns.domain.lifecycle import apply_action, derive_state
from services.campaigns.domain.model import (
    Activity,
    Campaign,
    CampaignSpec,
    CampaignState,
    CampaignStatus,
    Member,
)
from services.campaigns.domain.outcome import Outcome
from services.campaigns.domain.validation import (
    CAMPAIGN_ID,
    MEMBER_ID,
    check_id,
    check_instant,
    check_member,
    check_spec,
    check_zone,
)
from services.campaigns.ledger_client import LedgerClient
from services.campaigns.store import CampaignFigures, CampaignsStore, Transition
from services.campaigns.tracking import ActivityTracker, Policy, read_member
from services.campaigns.transitions import TransitionTracker
from services.kit.clock import MICROS_PER_SECOND, Clock
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unavailable,
    Violations,
)
from services.kit.outbox import LedgerOutbox, Settled, all_accepted
from services.kit.schedule import Schedule, zone

log = structlog.get_logger()

RELAY_INTERVAL_US = 5 * MICROS_PER_SECOND
DEFAULT_PAGE = 50
MAX_PAGE = 500
DEFAULT_OCCURRENCES = 10
MAX_OCCURRENCES = 100


@dataclass(frozen=True, slots=True)
class CampaignView:
    campaign: Campaign
    state: CampaignState


@dataclass(frozen=True, slots=True)
class Stats:
    campaign: Campaign
    figures: CampaignFigures
    ledger_balance: int

    @property
    def reconciled(self) -> bool:
        """Our bookkeeping matches the ledger's budget account, with nothing in flight."""
        return (
            self.campaign.budget_remaining == self.ledger_balance
            and self.figures.pending_entries == 0
        )


class CampaignsService:
    def __init__(
        self,
        store: CampaignsStore,
        ledger: LedgerClient,
        outbox: LedgerOutbox,
        clock: Clock,
        policy: Policy,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._outbox = outbox
        self._clock = clock
        self.catalog = Catalog()
        self.transitions = TransitionTracker(store, self.catalog, clock)
        self.tracker = ActivityTracker(
            store, ledger, outbox, clock, policy, self.catalog, self.transitions
        )
        self._relay: asyncio.Task | None = None

    # Start and stop.

    async def start(self) -> None:
        for campaign in await self._store.read_campaigns():
            self.catalog.put(campaign)
        await self.transitions.start()
        # What a crash left recorded but not posted is finished first.
        await self.settle_pending()
        self._relay = asyncio.create_task(self._relay_stale())

    async def stop(self) -> None:
        if self._relay is not None:
            self._relay.cancel()
            await asyncio.gather(self._relay, return_exceptions=True)
        await self.transitions.stop()

    async def _relay_stale(self) -> None:
        """Retry entries deferred while the ledger was unreachable: only those still
        pending a whole interval later, so chains being posted right now by their
        own request are not posted a second time."""
        seen: set[str] = set()
        while True:
            await self._clock.sleep_until(self._clock.now_us() + RELAY_INTERVAL_US)
            try:
                pending = dict(await self._outbox.pending())
                for entry_id in sorted(pending.keys() & seen):
                    response = await self._outbox.settle(entry_id, pending[entry_id])
                    await self._on_settled(Settled(entry_id, pending[entry_id], response))
                seen = set(pending)
            except Unavailable:
                log.warning("ledger_unavailable_for_relay")
            except Exception:
                log.exception("outbox_relay_failed")

    async def settle_pending(self) -> int:
        return await self._outbox.settle_pending(self._on_settled)

    async def _on_settled(self, settled: Settled) -> None:
        kind, _, rest = settled.entry_id.partition(":")
        if kind == "activity":
            activity_id = rest.rpartition(":")[0]
            await self.tracker.apply_settlement(activity_id, settled.entry_id, settled.response)
        elif kind == "funding":
            await self._apply_funding(settled.request, settled.response)

    # Members.

    async def upsert_member(self, member: Member) -> tuple[Member, bool]:
        violations = Violations()
        check_member(violations, member)
        violations.raise_if_any()
        referrer = member.referrer_member_id
        if referrer and await self._store.read_member(referrer) is None:
            raise FailedPrecondition(
                "REFERRER_NOT_FOUND",
                f"referrer {referrer} is not a member",
                {"referrer_member_id": referrer},
            )
        await self._ledger.open_wallet(member.member_id)
        now = self._clock.now_us()

        def work(connection: sqlite3.Connection) -> tuple[Member, bool]:
            current = self._store.member(connection, member.member_id)
            if current is not None and current.referrer_member_id not in ("", referrer):
                raise FailedPrecondition(
                    "REFERRER_ALREADY_SET",
                    f"member {member.member_id} was referred by {current.referrer_member_id}",
                    {"referrer_member_id": current.referrer_member_id},
                )
            created_us = current.create_us if current else now
            stored = replace(member, create_us=created_us, update_us=now)
            if current is not None and replace(current, update_us=now) == stored:
                return current, False
            self._store.put_member(connection, stored)
            return stored, current is None

        stored, created = await self._store.writer.submit(work)
        log.info("member_upserted", member_id=member.member_id, created=created)
        return stored, created

    async def get_member(self, member_id: str) -> Member:
        violations = Violations()
        check_id(violations, "member_id", MEMBER_ID, member_id)
        violations.raise_if_any()
        return await read_member(self._store, member_id)

    # Activities.

    async def track(self, activity: Activity) -> tuple[Outcome, bool]:
        """The activity's outcome and whether it is a replay of an earlier call."""
        return await self.tracker.track(activity)

    async def dry_run(self, activity: Activity) -> Outcome:
        return await self.tracker.dry_run(activity)

    # Campaigns.

    def _check_campaign_id(self, campaign_id: str) -> None:
        violations = Violations()
        check_id(violations, "campaign_id", CAMPAIGN_ID, campaign_id)
        violations.raise_if_any()

    def _check_spec(self, campaign_id: str, spec: CampaignSpec) -> None:
        violations = Violations()
        check_id(violations, "campaign_id", CAMPAIGN_ID, campaign_id)
        check_spec(violations, spec)
        violations.raise_if_any()

    def _schedule_of(self, campaign: Campaign) -> Schedule:
        entry = self.catalog.get(campaign.campaign_id)
        if entry is not None and entry.campaign.version == campaign.version:
            return entry.schedule
        return Schedule(campaign.spec.schedule)

    def view(self, campaign: Campaign) -> CampaignView:
        schedule = self._schedule_of(campaign)
        return CampaignView(campaign, derive_state(campaign, schedule, self._clock.now_us()))

    async def create_campaign(self, campaign_id: str, spec: CampaignSpec) -> CampaignView:
        self._check_spec(campaign_id, spec)
        now = self._clock.now_us()

        def work(connection: sqlite3.Connection) -> Campaign:
            existing = self._store.campaign(connection, campaign_id)
            if existing is not None:
                if existing.version == 1 and existing.spec == spec:
                    return existing
                raise AlreadyExists(
                    "CAMPAIGN_EXISTS",
                    f"campaign {campaign_id} exists with another spec",
                    {"campaign_id": campaign_id},
                )
            campaign = Campaign(campaign_id, 1, spec, CampaignStatus.DRAFT, now, now)
            self._store.put_campaign(connection, campaign)
            return campaign

        campaign = await self._store.writer.submit(work)
        log.info("campaign_created", campaign_id=campaign_id, kind=spec.kind.value)
        return await self._refreshed(campaign.campaign_id)

    async def update_campaign(
        self, campaign_id: str, spec: CampaignSpec, expected_version: int
    ) -> CampaignView:
        self._check_spec(campaign_id, spec)
        if expected_version < 0:
            raise InvalidArgument([FieldViolation("expected_version", "must not be negative")])
        now = self._clock.now_us()

        def work(connection: sqlite3.Connection):
            current = self._existing(connection, campaign_id)
            if spec == current.spec:
                return current, None
            if expected_version and expected_version != current.version:
                raise FailedPrecondition(
                    "VERSION_MISMATCH",
                    f"campaign {campaign_id} is at version {current.version}",
                    {"campaign_id": campaign_id, "version": str(current.version)},
                )
            if current.status in (CampaignStatus.CANCELLED, CampaignStatus.ARCHIVED):
                raise FailedPrecondition(
                    "CAMPAIGN_ENDED", f"campaign {campaign_id} is {current.status.value.lower()}"
                )
            if spec.kind is not current.spec.kind:
                raise InvalidArgument([FieldViolation("spec.kind", "a campaign keeps its kind")])
            updated = replace(current, version=current.version + 1, spec=spec, update_us=now)
            self._store.put_campaign(connection, updated)
            funding = None
            if current.status is not CampaignStatus.DRAFT and spec.is_bonus:
                funding = self._record_funding(connection, updated)
            return updated, funding

        campaign, funding = await self._store.writer.submit(work)
        if funding is not None:
            await self._post_funding(campaign, funding)
        log.info("campaign_updated", campaign_id=campaign_id, version=campaign.version)
        return await self._refreshed(campaign_id)

    def _existing(self, connection: sqlite3.Connection, campaign_id: str) -> Campaign:
        campaign = self._store.campaign(connection, campaign_id)
        if campaign is None:
            raise NotFound(
                "CAMPAIGN_NOT_FOUND",
                f"campaign {campaign_id} does not exist",
                {"campaign_id": campaign_id},
            )
        return campaign

    def _record_funding(self, connection: sqlite3.Connection, campaign: Campaign):
        """Record funding up to the spec's budget; budgets only grow once scheduled."""
        intended = self._store.funding_intended(connection, campaign.campaign_id)
        delta = campaign.spec.budget_points - intended
        if delta < 0:
            raise FailedPrecondition(
                "BUDGET_DECREASE",
                f"the budget of {campaign.campaign_id} is already funded with {intended} points",
                {"campaign_id": campaign.campaign_id, "funded": str(intended)},
            )
        if delta == 0:
            return None
        transfer_id = f"campaign:{campaign.campaign_id}:funding:v{campaign.version}"
        request = ledger_client.funding_transfer(transfer_id, campaign.campaign_id, delta)
        entry_id = f"funding:{campaign.campaign_id}:v{campaign.version}"
        self._store.add_funding(connection, transfer_id, campaign.campaign_id, delta)
        self._outbox.record(connection, entry_id, request, self._clock.now_us())
        return entry_id, request

    async def _post_funding(self, campaign: Campaign, funding) -> None:
        entry_id, request = funding
        response = await self._outbox.settle(entry_id, request)
        await self._apply_funding(request, response)

    async def _apply_funding(self, request, response) -> None:
        if not all_accepted(response):
            log.error("funding_refused", refusals=ledger_client.refusals(response))
            return
        transfer_id = request.transfers[0].id
        campaign_id = await self._store.writer.submit(
            lambda connection: self._store.settle_funding(connection, transfer_id)
        )
        if campaign_id is not None:
            log.info("budget_funded", campaign_id=campaign_id, amount=request.transfers[0].amount)
            await self._refreshed(campaign_id)

    async def _refreshed(self, campaign_id: str) -> CampaignView:
        campaign = await self._store.read_campaign(campaign_id)
        assert campaign is not None
        self.catalog.put(campaign)
        view = self.view(campaign)
        await self.transitions.refresh([campaign_id])
        return view

    async def get_campaign(self, campaign_id: str) -> CampaignView:
        self._check_campaign_id(campaign_id)
        campaign = await self._store.read_campaign(campaign_id)
        if campaign is None:
            raise NotFound(
                "CAMPAIGN_NOT_FOUND",
                f"campaign {campaign_id} does not exist",
                {"campaign_id": campaign_id},
            )
        return self.view(campaign)

    async def act(self, campaign_id: str, action: str) -> CampaignView:
        """schedule, pause, resume, cancel or archive; repeating an action is a no-op."""
        self._check_campaign_id(campaign_id)
        current = await self.get_campaign(campaign_id)
        if action == "schedule" and current.campaign.spec.is_bonus:
            await self._ledger.open_budget(campaign_id)
        now = self._clock.now_us()

        def work(connection: sqlite3.Connection):
            campaign = self._existing(connection, campaign_id)
            schedule = self._schedule_of(campaign)
            status = apply_action(campaign, action, derive_state(campaign, schedule, now))
            if status is None:
                return campaign, None
            changed = replace(campaign, status=status, update_us=now)
            self._store.put_campaign(connection, changed)
            funding = None
            if action == "schedule" and campaign.spec.is_bonus:
                funding = self._record_funding(connection, changed)
            return changed, funding

        campaign, funding = await self._store.writer.submit(work)
        self.catalog.put(campaign)
        if funding is not None:
            await self._post_funding(campaign, funding)
        log.info("campaign_status_changed", campaign_id=campaign_id, status=campaign.status.value)
        return await self._refreshed(campaign_id)

    async def list_campaigns(
        self,
        states: set[CampaignState],
        start_us: int | None,
        end_us: int | None,
        page_size: int,
        after_id: str,
    ) -> tuple[list[CampaignView], str]:
        violations = Violations()
        violations.check(page_size >= 0, "page_size", "must not be negative")
        check_instant(violations, "start_time", start_us)
        check_instant(violations, "end_time", end_us)
        if start_us is not None and end_us is not None:
            violations.check(end_us > start_us, "end_time", "must be after start_time")
        violations.raise_if_any()
        size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
        matched: list[CampaignView] = []
        for campaign in await self._store.read_campaigns():
            if campaign.campaign_id <= after_id:
                continue
            if not states and campaign.status is CampaignStatus.ARCHIVED:
                continue
            view = self.view(campaign)
            if states and view.state not in states:
                continue
            if not self._overlaps(campaign, start_us, end_us):
                continue
            matched.append(view)
            if len(matched) > size:
                break
        if len(matched) > size:
            return matched[:size], matched[size - 1].campaign.campaign_id
        return matched, ""

    def _overlaps(self, campaign: Campaign, start_us: int | None, end_us: int | None) -> bool:
        if start_us is None and end_us is None:
            return True
        schedule = self._schedule_of(campaign)
        after = start_us if start_us is not None else schedule.first_start_us()
        if schedule.always:
            return schedule.spec.end_us is None or schedule.spec.end_us > after
        found = schedule.occurrences(after, 1)
        return bool(found) and (end_us is None or found[0][0].start_us < end_us)

    async def get_schedule(
        self, campaign_id: str, count: int, after_us: int | None, time_zone: str
    ):
        violations = Violations()
        check_id(violations, "campaign_id", CAMPAIGN_ID, campaign_id)
        violations.check(count >= 0, "count", "must not be negative")
        check_instant(violations, "after_time", after_us)
        if time_zone:
            check_zone(violations, "time_zone", time_zone)
        violations.raise_if_any()
        view = await self.get_campaign(campaign_id)
        entry = self.catalog.get(campaign_id)
        assert entry is not None
        tz = zone(time_zone) if time_zone else entry.schedule.zone
        after = self._clock.now_us() if after_us is None else after_us
        occurrences = entry.schedule.occurrences(
            after, min(count or DEFAULT_OCCURRENCES, MAX_OCCURRENCES), tz
        )
        return view, tz.key, occurrences

    async def stats(self, campaign_id: str) -> Stats:
        view = await self.get_campaign(campaign_id)
        figures = await self._store.figures(campaign_id)
        balance = 0
        if view.campaign.spec.is_bonus and view.campaign.status is not CampaignStatus.DRAFT:
            budget = await self._ledger.balance(view.campaign.budget_account_id)
            balance = budget.balance if budget is not None else 0
        return Stats(view.campaign, figures, balance)

    async def watch(self, after_sequence: int) -> AsyncIterator[Transition]:
        if after_sequence < 0:
            raise InvalidArgument([FieldViolation("after_sequence", "must not be negative")])
        async for transition in self.transitions.watch(after_sequence):
            yield transition
