"""Refunds: take back what the refunded purchase earned, in proportion
(domain/refund.py), through ledger reversals recorded with the outbox."""

from __future__ import annotations

import structlog

from services.campaigns import ledger
from services.campaigns.activities import ATTEMPTS, ActivityUseCases, Recorded, Tracked
from services.campaigns.base import existing_member
from services.campaigns.domain.evaluation import Decision
from services.campaigns.domain.model import PURCHASE, Activity
from services.campaigns.domain.outcome import ClawbackSummary, Outcome
from services.campaigns.domain.refund import plan_clawback
from services.campaigns.store import CLAWBACK, CampaignsUnit
from services.kit.errors import FailedPrecondition

log = structlog.get_logger()

NOTHING = Decision(0, "", (), (), None)


class Refunds(ActivityUseCases):
    async def track(self, refund: Activity) -> Tracked:
        """Called by Tracking once the activity passed its checks."""
        await self._store.read(lambda unit: existing_member(unit, refund.member_id))
        # The member may spend between the balance read and the post; then the ledger
        # refuses the chain, the record is undone and the plan is made again.
        for _ in range(ATTEMPTS):
            available = await self._available(refund)
            recorded = await self._store.write(
                lambda unit, available=available: self._plan(unit, refund, available, True)
            )
            if recorded.existing is not None:
                return Tracked(await self.replay(recorded.existing, refund), True)
            await self._transitions.budgets_changed(recorded.budgets or {})
            settled = await self.post(refund, recorded)
            if isinstance(settled, Outcome):
                log.info(
                    "refund_tracked",
                    activity_id=refund.activity_id,
                    member_id=refund.member_id,
                    points_reversed=settled.clawback.points_reversed if settled.clawback else 0,
                )
                return Tracked(settled, False)
            if settled.error is not None:
                break  # the ledger refused the request itself: asking again cannot help
        raise FailedPrecondition(
            "LEDGER_REFUSED",
            f"the ledger refused the clawback of refund {refund.activity_id}",
            {"activity_id": refund.activity_id},
        )

    async def dry_run(self, refund: Activity) -> Outcome:
        await self._store.read(lambda unit: existing_member(unit, refund.member_id))
        available = await self._available(refund)
        recorded = await self._store.read(lambda unit: self._plan(unit, refund, available, False))
        if recorded.existing is not None:
            return recorded.existing.outcome
        assert recorded.outcome is not None
        return recorded.outcome

    async def _available(self, refund: Activity) -> dict[str, int]:
        """What each member the purchase paid still holds (a clawback never takes more)."""
        assert refund.refund is not None
        purchase_id = refund.refund.purchase_activity_id
        purchase = await self._store.read(lambda unit: unit.activity(purchase_id))
        if purchase is None or purchase.activity.type != PURCHASE:
            raise _no_purchase(purchase_id)
        if purchase.activity.member_id != refund.member_id:
            raise FailedPrecondition(
                "PURCHASE_OF_ANOTHER_MEMBER",
                "the refunded purchase belongs to another member",
                {"purchase_activity_id": purchase_id},
            )
        available: dict[str, int] = {}
        for member_id in sorted({leg.beneficiary for leg in purchase.outcome.decision.legs}):
            wallet = await self._ledger.balance(member_id)
            available[member_id] = wallet.available if wallet is not None else 0
        return available

    def _plan(
        self, unit: CampaignsUnit, refund: Activity, available: dict[str, int], record: bool
    ) -> Recorded:
        """The clawback from what the purchase has left to refund in this transaction;
        recorded with its chain when `record`."""
        assert refund.refund is not None
        purchase_id = refund.refund.purchase_activity_id
        existing = unit.activity(refund.activity_id)
        if existing is not None:
            return Recorded(existing=existing)
        purchase = unit.purchase_legs(purchase_id)
        if purchase is None:  # undone since it was read: the ledger refused its chain
            raise _no_purchase(purchase_id)
        if refund.refund.amount_minor > purchase.refundable_minor:
            raise FailedPrecondition(
                "REFUND_EXCEEDS_PURCHASE",
                f"only {purchase.refundable_minor} of purchase {purchase_id} is left to refund",
                {
                    "purchase_activity_id": purchase_id,
                    "refundable_minor": str(purchase.refundable_minor),
                },
            )
        plan = plan_clawback(
            purchase.amount_minor,
            purchase.refunded_minor,
            refund.refund.amount_minor,
            purchase.legs,
            available,
        )
        request = ledger.clawback_chain(refund.activity_id, plan)
        transfer_ids = tuple(transfer.id for transfer in request.transfers)
        outcome = Outcome(
            activity_id=refund.activity_id,
            decision=NOTHING,
            transfer_ids=transfer_ids,
            clawback=ClawbackSummary(purchase_id, plan.reversed, plan.unrecovered, transfer_ids),
        )
        if not record:
            return Recorded(outcome)
        now = self._clock.now_us()
        entry_id = None
        if transfer_ids:
            entry_id = f"activity:{refund.activity_id}:{unit.next_attempt(refund.activity_id)}"
        unit.insert_activity(refund, outcome, entry_id, now)
        unit.record_clawback(refund, plan)
        entry = None
        if entry_id is not None:
            entry = unit.outbox.record(entry_id, CLAWBACK, request, now)
        else:
            unit.record_event(refund.activity_id, now)  # settled as recorded: nothing to reverse
        budgets = unit.budgets(leg.leg.campaign_id for leg in plan.legs)
        return Recorded(outcome, entry, budgets)


def _no_purchase(purchase_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        "PURCHASE_NOT_FOUND",
        f"no purchase {purchase_id} to refund",
        {"purchase_activity_id": purchase_id},
    )
