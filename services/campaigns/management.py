"""Campaign management: definitions and their versions, the lifecycle (schedule,
pause, resume, cancel, archive), budget funding through the outbox, and the
reads managers and apps share (one campaign, listings, schedules)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

import structlog

from services.campaigns import ledger
from services.campaigns.base import (
    CampaignView,
    UseCases,
    campaign_not_found,
    existing_campaign,
    raise_if_any,
)
from services.campaigns.domain.lifecycle import apply_action, derive_state
from services.campaigns.domain.model import (
    Campaign,
    CampaignSpec,
    CampaignState,
    CampaignStatus,
)
from services.campaigns.domain.validation import (
    check_campaign_id,
    check_instant,
    check_spec,
    check_zone,
)
from services.campaigns.store import BUDGET_FUNDING, CampaignsUnit
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    Violations,
)
from services.kit.outbox import OutboxEntry
from services.kit.paging import Page, decode_page_token, page_of, page_size
from services.kit.schedule import Window, zone

log = structlog.get_logger()

MAX_PAGE = 500
DEFAULT_OCCURRENCES = 10
MAX_OCCURRENCES = 100


@dataclass(frozen=True, slots=True)
class Occurrence:
    window: Window
    local_start: datetime
    local_end: datetime


@dataclass(frozen=True, slots=True)
class Occurrences:
    """A campaign's next windows, in `zone_name`."""

    zone_name: str
    occurrences: tuple[Occurrence, ...]


@dataclass(frozen=True, slots=True)
class _Changed:
    """A management write: the campaign after it, and the funding it recorded."""

    campaign: Campaign
    funding: OutboxEntry | None = None


# What an update does to a spec: the current one in, the next version's out. Pure.
SpecChange = Callable[[CampaignSpec], CampaignSpec]


def _check_spec(campaign_id: str, spec: CampaignSpec) -> None:
    violations = Violations()
    check_campaign_id(violations, campaign_id)
    check_spec(violations, spec)
    violations.raise_if_any()


class Management(UseCases):
    async def create(self, campaign_id: str, spec: CampaignSpec) -> CampaignView:
        _check_spec(campaign_id, spec)
        now = self._clock.now_us()

        def work(unit: CampaignsUnit) -> Campaign:
            existing = unit.campaign(campaign_id)
            if existing is not None:
                if existing.version == 1 and existing.spec == spec:
                    return existing
                raise AlreadyExists(
                    "CAMPAIGN_EXISTS",
                    f"campaign {campaign_id} exists with another spec",
                    {"campaign_id": campaign_id},
                )
            campaign = Campaign(campaign_id, 1, spec, CampaignStatus.DRAFT, now, now)
            # A plain INSERT: a concurrent create of the id (another replica's)
            # conflicts and this runs again, answering as above.
            unit.insert_campaign(campaign)
            return campaign

        await self._store.write(work)
        log.info("campaign_created", campaign_id=campaign_id, kind=spec.kind.value)
        return await self.refreshed(campaign_id)

    async def update(
        self, campaign_id: str, change: SpecChange, expected_version: int
    ) -> CampaignView:
        """A new version with the spec `change` makes of the current one, in one
        transaction: what a partial update does not name keeps its value."""
        violations = Violations()
        check_campaign_id(violations, campaign_id)
        violations.check(expected_version >= 0, "expected_version", "must not be negative")
        violations.raise_if_any()
        now = self._clock.now_us()

        def work(unit: CampaignsUnit) -> _Changed:
            current = existing_campaign(unit, campaign_id)
            spec = change(current.spec)
            _check_spec(campaign_id, spec)
            if spec == current.spec:
                return _Changed(current)
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
            unit.put_campaign(updated)
            funded = current.status is not CampaignStatus.DRAFT and spec.is_bonus
            return _Changed(updated, self._record_funding(unit, updated, now) if funded else None)

        changed = await self._store.write(work)
        await self._fund(changed)
        log.info("campaign_updated", campaign_id=campaign_id, version=changed.campaign.version)
        return await self.refreshed(campaign_id)

    def _record_funding(
        self, unit: CampaignsUnit, campaign: Campaign, now_us: int
    ) -> OutboxEntry | None:
        """Record funding up to the spec's budget; budgets only grow once scheduled."""
        intended = unit.funding_intended(campaign.campaign_id)
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
        unit.add_funding(transfer_id, campaign.campaign_id, delta)
        return unit.outbox.record(
            f"funding:{campaign.campaign_id}:v{campaign.version}",
            BUDGET_FUNDING,
            ledger.funding_transfer(transfer_id, campaign.campaign_id, delta),
            now_us,
        )

    async def _fund(self, changed: _Changed) -> None:
        """Post a recorded funding; settlement.py counts it in the budget."""
        if changed.funding is not None:
            await self._outbox.settle(changed.funding)

    async def act(self, campaign_id: str, action: str) -> CampaignView:
        """schedule, pause, resume, cancel or archive; repeating an action is a no-op."""
        raise_if_any(check_campaign_id, campaign_id)
        current = await self._store.read(lambda unit: existing_campaign(unit, campaign_id))
        if action == "schedule" and current.spec.is_bonus:
            await self._ledger.open_budget(campaign_id)
        now = self._clock.now_us()

        def work(unit: CampaignsUnit) -> _Changed:
            campaign = existing_campaign(unit, campaign_id)
            schedule = self._catalog.schedule_of(campaign)
            changed = apply_action(campaign, action, derive_state(campaign, schedule, now), now)
            if changed is None:
                return _Changed(campaign)
            unit.put_campaign(changed)
            funded = action == "schedule" and campaign.spec.is_bonus
            return _Changed(changed, self._record_funding(unit, changed, now) if funded else None)

        changed = await self._store.write(work)
        self._catalog.put(changed.campaign)
        await self._fund(changed)
        log.info(
            "campaign_status_changed", campaign_id=campaign_id, status=changed.campaign.status.value
        )
        return await self.refreshed(campaign_id)

    async def get(self, campaign_id: str) -> CampaignView:
        raise_if_any(check_campaign_id, campaign_id)
        return self.view(await self._store.read(lambda unit: existing_campaign(unit, campaign_id)))

    async def list_campaigns(
        self,
        states: set[CampaignState],
        start_us: int | None,
        end_us: int | None,
        requested_size: int,
        page_token: str,
    ) -> Page[CampaignView]:
        violations = Violations()
        size = page_size(violations, requested_size, MAX_PAGE)
        check_instant(violations, "start_time", start_us)
        check_instant(violations, "end_time", end_us)
        if start_us is not None and end_us is not None:
            violations.check(end_us > start_us, "end_time", "must be after start_time")
        violations.raise_if_any()
        query = (sorted(state.value for state in states), start_us, end_us)
        after = decode_page_token(page_token, query, str) or ""
        matched: list[CampaignView] = []
        for campaign in await self._store.read(lambda unit: unit.campaigns(after)):
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
        return page_of(matched, size, lambda view: view.campaign.campaign_id, query)

    def _overlaps(self, campaign: Campaign, start_us: int | None, end_us: int | None) -> bool:
        if start_us is None and end_us is None:
            return True
        schedule = self._catalog.schedule_of(campaign)
        after = start_us if start_us is not None else schedule.first_start_us()
        if schedule.always:
            return schedule.spec.end_us is None or schedule.spec.end_us > after
        found = schedule.occurrences(after, 1)
        return bool(found) and (end_us is None or found[0][0].start_us < end_us)

    async def schedule(
        self, campaign_id: str, count: int, after_us: int | None, time_zone: str
    ) -> Occurrences:
        violations = Violations()
        check_campaign_id(violations, campaign_id)
        violations.check(count >= 0, "count", "must not be negative")
        check_instant(violations, "after_time", after_us)
        if time_zone:
            check_zone(violations, "time_zone", time_zone)
        violations.raise_if_any()
        campaign = await self._store.read(lambda unit: unit.campaign(campaign_id))
        if campaign is None:
            raise campaign_not_found(campaign_id)
        schedule = self._catalog.schedule_of(campaign)
        tz = zone(time_zone) if time_zone else schedule.zone
        after = self._clock.now_us() if after_us is None else after_us
        found = schedule.occurrences(after, min(count or DEFAULT_OCCURRENCES, MAX_OCCURRENCES), tz)
        return Occurrences(tz.key, tuple(Occurrence(*occurrence) for occurrence in found))
