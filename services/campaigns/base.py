"""What every campaigns use case shares: its collaborators, the program's
policy, and the few steps several use cases take (a campaign or member or
NOT_FOUND, a campaign's member-visible view)."""

from __future__ import annotations

from dataclasses import dataclass

from services.campaigns.catalog import Catalog
from services.campaigns.domain.lifecycle import derive_state
from services.campaigns.domain.model import Campaign, CampaignState, Member
from services.campaigns.ledger import CampaignsLedger
from services.campaigns.store import CampaignsStore, CampaignsUnit
from services.campaigns.transitions import TransitionTracker
from services.kit.clock import MICROS_PER_SECOND, Clock
from services.kit.errors import NotFound, Violations
from services.kit.outbox import LedgerOutbox

DAY_US = 86_400 * MICROS_PER_SECOND


@dataclass(frozen=True, slots=True)
class Policy:
    """Program-wide rules, from the service's settings."""

    lateness_seconds: int
    max_future_seconds: int
    points_ttl_days: int
    surprise_key: bytes

    def expire_us(self, occur_us: int) -> int:
        """When points earned by an activity at `occur_us` expire."""
        return occur_us + self.points_ttl_days * DAY_US


@dataclass(frozen=True, slots=True)
class Context:
    """The collaborators of every use case, wired once by server.build_server."""

    store: CampaignsStore
    ledger: CampaignsLedger
    outbox: LedgerOutbox[CampaignsUnit]
    clock: Clock
    policy: Policy
    catalog: Catalog
    transitions: TransitionTracker


@dataclass(frozen=True, slots=True)
class CampaignView:
    """A campaign with the state members see now."""

    campaign: Campaign
    state: CampaignState


def raise_if_any(check, *args) -> None:
    """Run one validation function over a fresh Violations and raise what it found."""
    violations = Violations()
    check(violations, *args)
    violations.raise_if_any()


def campaign_not_found(campaign_id: str) -> NotFound:
    return NotFound(
        "CAMPAIGN_NOT_FOUND",
        f"campaign {campaign_id} does not exist",
        {"campaign_id": campaign_id},
    )


def member_not_found(member_id: str) -> NotFound:
    return NotFound(
        "MEMBER_NOT_FOUND", f"member {member_id} does not exist", {"member_id": member_id}
    )


def existing_campaign(unit: CampaignsUnit, campaign_id: str) -> Campaign:
    campaign = unit.campaign(campaign_id)
    if campaign is None:
        raise campaign_not_found(campaign_id)
    return campaign


def existing_member(unit: CampaignsUnit, member_id: str) -> Member:
    member = unit.member(member_id)
    if member is None:
        raise member_not_found(member_id)
    return member


class UseCases:
    """The base of each group of use cases (members.py, management.py, ...)."""

    def __init__(self, context: Context) -> None:
        self._store = context.store
        self._ledger = context.ledger
        self._outbox = context.outbox
        self._clock = context.clock
        self._policy = context.policy
        self._catalog = context.catalog
        self._transitions = context.transitions

    def view(self, campaign: Campaign) -> CampaignView:
        schedule = self._catalog.schedule_of(campaign)
        return CampaignView(campaign, derive_state(campaign, schedule, self._clock.now_us()))

    async def refreshed(self, campaign_id: str) -> CampaignView:
        """The stored campaign, now also in the catalog, with its changes announced."""
        campaign = await self._transitions.campaign_changed(campaign_id)
        if campaign is None:
            raise campaign_not_found(campaign_id)
        return self.view(campaign)
