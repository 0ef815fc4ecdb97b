"""A campaign's figures, reconciled with its budget account in the ledger."""

from __future__ import annotations

from dataclasses import dataclass

from services.campaigns.base import UseCases, existing_campaign, raise_if_any
from services.campaigns.domain.model import Campaign, CampaignStatus
from services.campaigns.domain.records import CampaignFigures
from services.campaigns.domain.validation import check_campaign_id
from services.campaigns.store import CampaignsUnit


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


@dataclass(frozen=True, slots=True)
class _Read:
    campaign: Campaign
    figures: CampaignFigures


class CampaignStats(UseCases):
    async def stats(self, campaign_id: str) -> Stats:
        raise_if_any(check_campaign_id, campaign_id)

        def work(unit: CampaignsUnit) -> _Read:
            return _Read(existing_campaign(unit, campaign_id), unit.figures(campaign_id))

        # One snapshot: the budget and the figures agree with each other.
        read = await self._store.read(work)
        balance = 0
        if read.campaign.spec.is_bonus and read.campaign.status is not CampaignStatus.DRAFT:
            budget = await self._ledger.balance(read.campaign.budget_account_id)
            balance = budget.balance if budget is not None else 0
        return Stats(read.campaign, read.figures, balance)
