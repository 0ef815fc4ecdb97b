"""Tracking activities: evaluate against the live campaigns, record the decision
with its ledger chain (outbox) in one transaction, post it; the settlement
(settlement.py) marks it settled in the transaction that closes the entry.
Refunds go to refunds.py. A retry replays the first answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import partial

import structlog

from services.campaigns import ledger
from services.campaigns.activities import ATTEMPTS, ActivityUseCases, Recorded, Tracked
from services.campaigns.base import Context, existing_member, raise_if_any
from services.campaigns.domain.evaluation import (
    ActivityContext,
    Candidate,
    Decision,
    Usage,
    conditions_hold,
    depends_on_usage,
    evaluate,
    usage_query,
)
from services.campaigns.domain.model import REFUND, Activity
from services.campaigns.domain.outcome import Outcome
from services.campaigns.domain.validation import check_activity
from services.campaigns.refunds import Refunds
from services.campaigns.settlement import ActivityUndone
from services.campaigns.store import ACTIVITY_AWARD, CampaignsUnit
from services.kit.errors import FailedPrecondition
from services.kit.ids import ISSUANCE_ACCOUNT

log = structlog.get_logger()


class Tracking(ActivityUseCases):
    def __init__(self, context: Context, refunds: Refunds) -> None:
        super().__init__(context)
        self._refunds = refunds

    async def track(self, activity: Activity) -> Tracked:
        raise_if_any(check_activity, activity)
        try:
            self.check_time(activity)
        except FailedPrecondition:
            # A retry of an activity recorded in time is answered, however late it comes.
            existing = await self._store.read(lambda unit: unit.activity(activity.activity_id))
            if existing is None:
                raise
            return Tracked(await self.replay(existing, activity), True)
        if activity.type == REFUND:
            return await self._refunds.track(activity)
        exhausted: set[str] = set()
        for _ in range(ATTEMPTS):
            recorded = await self._record_current(activity, frozenset(exhausted))
            if recorded.existing is not None:
                return Tracked(await self.replay(recorded.existing, activity), True)
            await self._transitions.budgets_changed(recorded.budgets or {})
            settled = await self.post(activity, recorded)
            if isinstance(settled, Outcome):
                log.info(
                    "activity_tracked",
                    activity_id=activity.activity_id,
                    member_id=activity.member_id,
                    points=settled.decision.points_for(activity.member_id),
                    campaigns=[applied.campaign_id for applied in settled.decision.applied],
                )
                return Tracked(settled, False)
            if settled.error is not None:
                break  # the ledger refused the request itself: asking again cannot help
            exhausted |= self._short_budgets(settled)
        raise FailedPrecondition(
            "LEDGER_REFUSED",
            f"the ledger refused the award chain of activity {activity.activity_id}",
            {"activity_id": activity.activity_id},
        )

    async def _record_current(self, activity: Activity, exhausted: frozenset[str]) -> Recorded:
        """Record the activity, decided from a catalog no older than the campaign rows
        the write locks: a write that finds the catalog feed past what this replica
        has read (another replica changed a campaign) records nothing and runs
        again once the catalog has caught up."""
        while True:
            known = self._transitions.catalog_position
            candidates = self._catalog.candidates(activity.type, activity.occur_us)
            speculation = None if exhausted else await self._speculate(activity, candidates)
            recorded = await self._store.write(
                partial(
                    self._record,
                    activity=activity,
                    candidates=candidates,
                    exhausted=exhausted,
                    speculation=speculation,
                    known=known,
                )
            )
            if not recorded.stale:
                return recorded
            await self._transitions.follow_catalog()

    async def dry_run(self, activity: Activity) -> Outcome:
        raise_if_any(check_activity, activity)
        self.check_time(activity)
        if activity.type == REFUND:
            return await self._refunds.dry_run(activity)
        await self._transitions.follow_catalog()
        candidates = self._catalog.candidates(activity.type, activity.occur_us)

        def work(unit: CampaignsUnit) -> Outcome:
            context = self._context(unit, activity)
            return self._outcome(activity, self._evaluate(unit, context, candidates, frozenset()))

        # A read: a snapshot of usage now, never queued behind the writer.
        return await self._store.read(work)

    def _context(self, unit: CampaignsUnit, activity: Activity) -> ActivityContext:
        return ActivityContext(
            activity=activity,
            member=existing_member(unit, activity.member_id),
            first_purchase=not unit.has_purchase(activity.member_id),
            surprise_key=self._policy.surprise_key,
        )

    def _evaluate(
        self,
        unit: CampaignsUnit,
        context: ActivityContext,
        candidates: Sequence[Candidate],
        exhausted: frozenset[str],
    ) -> Decision:
        """Decide from the usage this transaction reads: budgets, caps, quotas and
        once-only grants are counted in the same transaction that records the award."""
        fresh = [self._fresh(c) for c in candidates]
        matching = [c for c in fresh if conditions_hold(c, context)]
        queries = [usage_query(c, context) for c in matching if c.campaign.spec.is_bonus]
        usage = unit.usages(queries)
        for campaign_id in exhausted & usage.keys():
            usage[campaign_id] = replace(usage[campaign_id], budget_remaining=0)
        return evaluate(context, fresh, usage)

    async def _speculate(
        self, activity: Activity, candidates: Sequence[Candidate]
    ) -> Outcome | None:
        """Evaluate before entering the single writer when only budgets can change the
        decision (no caps, quotas or once-only grants among the matching bonuses):
        the writer then only checks that every budget still covers what it needs."""
        member = await self._store.read(lambda unit: existing_member(unit, activity.member_id))
        context = ActivityContext(activity, member, surprise_key=self._policy.surprise_key)
        fresh = [self._fresh(c) for c in candidates]
        bonuses = [c for c in fresh if c.campaign.spec.is_bonus and conditions_hold(c, context)]
        if any(depends_on_usage(c) for c in bonuses):
            return None
        ample = Usage(budget_remaining=2**62)
        decision = evaluate(context, fresh, {c.campaign_id: ample for c in bonuses})
        return self._outcome(activity, decision)

    def _fresh(self, candidate: Candidate) -> Candidate:
        """The catalog's latest version of a candidate (a manager may have acted since)."""
        return self._catalog.get(candidate.campaign_id) or candidate

    def _outcome(self, activity: Activity, decision: Decision) -> Outcome:
        legs = decision.legs
        assert activity.occur_us is not None
        return Outcome(
            activity_id=activity.activity_id,
            decision=decision,
            transfer_ids=tuple(leg.transfer_id(activity.activity_id) for leg in legs),
            expire_us=self._policy.expire_us(activity.occur_us) if legs else None,
        )

    def _record(
        self,
        unit: CampaignsUnit,
        activity: Activity,
        candidates: Sequence[Candidate],
        exhausted: frozenset[str],
        speculation: Outcome | None,
        known: int,
    ) -> Recorded:
        """Inside the writer: decide against current usage (or confirm the speculation),
        store the decision and its ledger chain. The catalog feed is read after the
        decision has locked its campaign rows: a campaign changed before that shows."""
        existing = unit.activity(activity.activity_id)
        if existing is not None:
            return Recorded(existing=existing)
        if speculation is not None and self._budgets_cover(unit, speculation.decision):
            outcome = speculation
        else:
            context = self._context(unit, activity)
            outcome = self._outcome(activity, self._evaluate(unit, context, candidates, exhausted))
        if unit.catalog_position() != known:
            return Recorded(stale=True)
        decision = outcome.decision
        assert activity.occur_us is not None
        now = self._clock.now_us()
        entry_id = None
        if decision.legs:
            entry_id = f"activity:{activity.activity_id}:{unit.next_attempt(activity.activity_id)}"
        unit.insert_activity(activity, outcome, entry_id, now)
        budgets = unit.record_award(
            activity, decision, self._catalog.local_days(activity.occur_us, decision)
        )
        entry = None
        if entry_id is not None:
            assert outcome.expire_us is not None
            request = ledger.award_chain(activity.activity_id, decision.legs, outcome.expire_us)
            entry = unit.outbox.record(entry_id, ACTIVITY_AWARD, request, now)
        else:
            unit.record_event(activity.activity_id, now)  # settled as recorded
        return Recorded(outcome, entry, budgets)

    def _budgets_cover(self, unit: CampaignsUnit, decision: Decision) -> bool:
        needs = decision.budget_needs
        budgets = unit.budgets(campaign_id for campaign_id, _ in needs)
        return all(budgets[campaign_id].remaining >= need for campaign_id, need in needs)

    def _short_budgets(self, undone: ActivityUndone) -> set[str]:
        """Campaigns whose budget account the ledger found short (the next attempt skips them)."""
        refused = {refusal.transfer_id for refusal in undone.refusals}
        return {
            leg.campaign_id
            for leg in undone.record.outcome.decision.legs
            if leg.from_account != ISSUANCE_ACCOUNT
            and leg.transfer_id(undone.record.activity.activity_id) in refused
        }
