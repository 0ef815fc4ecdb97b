"""What each kind of outbox entry means once the ledger answered: one handler
per kind, run by the kit's LedgerOutbox inside the transaction that closes the
entry, so an entry is either pending with nothing applied or closed with its
meaning applied, whoever settles it (the request, recovery at start, the relay).

- activity_award, clawback: the activity is settled with the member's balance
  after the chain, or, when the ledger refused the chain (or the request
  itself), undone as if it had never been recorded;
- budget_funding: the funding counts in the budget, or is forgotten when the
  ledger refused it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from services.campaigns.catalog import Catalog
from services.campaigns.domain.records import ActivityRecord
from services.campaigns.store import (
    ACTIVITY_AWARD,
    BUDGET_FUNDING,
    CLAWBACK,
    CampaignsStore,
    CampaignsUnit,
)
from services.campaigns.transitions import TransitionTracker
from services.kit.chains import Refusal
from services.kit.clock import Clock
from services.kit.outbox import Handler, Settlement

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class ActivitySettled:
    """The chain committed: the activity is settled, with the member's balance."""

    activity_id: str
    balance: int


@dataclass(frozen=True, slots=True)
class ActivityUndone:
    """The ledger refused the chain: the activity was undone; why."""

    record: ActivityRecord
    refusals: tuple[Refusal, ...]
    # The ledger's words when it refused the request itself (INVALID_ARGUMENT).
    error: str | None

    @property
    def campaign_ids(self) -> set[str]:
        return {leg.campaign_id for leg in self.record.outcome.decision.legs}


@dataclass(frozen=True, slots=True)
class FundingSettled:
    """A budget funding the ledger answered: counted in the budget now (False when
    an earlier settlement counted it, or when the ledger refused it)."""

    campaign_id: str
    amount: int
    counted: bool
    refusals: tuple[Refusal, ...] = ()
    error: str | None = None


Settled = ActivitySettled | ActivityUndone | FundingSettled


def handlers(catalog: Catalog, clock: Clock) -> dict[str, Handler]:
    """The outbox handlers, one per kind of entry this service records. (They read
    the clock only to stamp the feed's record time: running one twice is safe.)"""

    def activity(unit: CampaignsUnit, settlement: Settlement) -> Settled | None:
        entry = settlement.entry
        # Every transfer of an award or clawback chain names its activity.
        waiting = unit.awaiting(entry.request.transfers[0].metadata["activity_id"], entry.entry_id)
        if waiting is None:
            return None
        answer = settlement.answer
        if answer is not None and answer.accepted:
            # The hot path reads no more than the activity's id and member.
            balance = answer.balance_after(waiting.member_id) or 0
            unit.settle_activity(waiting.activity_id, balance)
            unit.record_event(waiting.activity_id, clock.now_us())
            return ActivitySettled(waiting.activity_id, balance)
        record = unit.activity(waiting.activity_id)
        assert record is not None
        activity = record.activity
        assert activity.occur_us is not None
        unit.discard_activity(
            record, catalog.local_days(activity.occur_us, record.outcome.decision)
        )
        refusals = tuple(answer.refusals) if answer is not None else ()
        return ActivityUndone(record, refusals, settlement.error)

    def funding(unit: CampaignsUnit, settlement: Settlement) -> FundingSettled:
        (transfer,) = settlement.entry.request.transfers
        campaign_id = transfer.metadata["campaign_id"]
        answer = settlement.answer
        if answer is not None and answer.accepted:
            counted = unit.settle_funding(transfer.id) is not None
            return FundingSettled(campaign_id, transfer.amount, counted)
        unit.drop_funding(transfer.id)
        refusals = tuple(answer.refusals) if answer is not None else ()
        return FundingSettled(campaign_id, transfer.amount, False, refusals, settlement.error)

    return {ACTIVITY_AWARD: activity, CLAWBACK: activity, BUDGET_FUNDING: funding}


class SettlingStore:
    """The store as the outbox sees it: once a write that applied a settlement has
    committed, what the service keeps in memory (the catalog's budgets, announced
    states) catches up and the event is logged, whoever settled the entry."""

    def __init__(self, store: CampaignsStore, transitions: TransitionTracker) -> None:
        self._store = store
        self._transitions = transitions

    async def write(self, work: Callable[[CampaignsUnit], Any]) -> Any:
        result = await self._store.write(work)
        if isinstance(result, ActivityUndone):
            record = result.record
            log.warning(
                "activity_refused_by_ledger",
                activity_id=record.activity.activity_id,
                refusals=[f"{r.transfer_id}: {r.code}" for r in result.refusals],
                error=result.error,
            )
            ids = result.campaign_ids
            await self._transitions.budgets_changed(
                await self._store.read(lambda unit: unit.budgets(ids))
            )
        elif isinstance(result, FundingSettled):
            if result.refusals or result.error:
                log.error(
                    "budget_funding_refused",
                    campaign_id=result.campaign_id,
                    refusals=[r.code for r in result.refusals],
                    error=result.error,
                )
            elif result.counted:
                log.info("budget_funded", campaign_id=result.campaign_id, amount=result.amount)
                await self._transitions.campaign_changed(result.campaign_id)
        return result
