"""Tracking activities: evaluate against the live campaigns inside the writing
transaction, record the decision with its ledger chain (outbox), post it, mark
it settled; refunds claw back through reversals. Retries replay the first answer."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial

import structlog
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from services.campaigns import ledger_client
from services.campaigns.catalog import Catalog
from services.campaigns.codec import to_plain
from services.campaigns.domain.evaluation import (
    ISSUANCE_ACCOUNT,
    ActivityContext,
    Candidate,
    Decision,
    Usage,
    conditions_hold,
    depends_on_usage,
    evaluate,
    usage_query,
)
from services.campaigns.domain.lifecycle import smallest_award
from services.campaigns.domain.model import REFUND, Activity, Member
from services.campaigns.domain.outcome import ClawbackSummary, Outcome
from services.campaigns.domain.refund import plan_clawback
from services.campaigns.domain.validation import check_activity
from services.campaigns.ledger_client import LedgerClient
from services.campaigns.store import ActivityRecord, CampaignsStore
from services.campaigns.transitions import TransitionTracker
from services.kit.clock import MICROS_PER_SECOND, Clock
from services.kit.errors import AlreadyExists, FailedPrecondition, NotFound, Unavailable, Violations
from services.kit.outbox import LedgerOutbox, all_accepted
from services.kit.schedule import local_date

log = structlog.get_logger()

DAY_US = 86_400 * MICROS_PER_SECOND
ATTEMPTS = 3


@dataclass(frozen=True)
class Policy:
    """Program-wide rules, from the environment."""

    lateness_seconds: int = 72 * 3600
    max_future_seconds: int = 300
    points_ttl_days: int = 365
    surprise_key: bytes = b"loyalty-arcade-dev-surprise-key"


@dataclass(frozen=True, slots=True)
class _Recorded:
    """What a recording transaction decided: a new outcome to post, or a prior record."""

    outcome: Outcome | None = None
    entry_id: str | None = None
    request: ledger_pb.PostTransfersRequest | None = None
    # Budget figures (funded, used) of the campaigns the decision drew on, after it.
    budgets: dict[str, tuple[int, int]] | None = None
    existing: ActivityRecord | None = None


async def read_member(store: CampaignsStore, member_id: str) -> Member:
    """The member, or NOT_FOUND."""
    member = await store.read_member(member_id)
    if member is None:
        raise member_not_found(member_id)
    return member


class ActivityTracker:
    def __init__(
        self,
        store: CampaignsStore,
        ledger: LedgerClient,
        outbox: LedgerOutbox,
        clock: Clock,
        policy: Policy,
        catalog: Catalog,
        transitions: TransitionTracker,
    ) -> None:
        self._store = store
        self._ledger = ledger
        self._outbox = outbox
        self._clock = clock
        self._policy = policy
        self.catalog = catalog
        self.transitions = transitions

    async def track(self, activity: Activity) -> tuple[Outcome, bool]:
        """The activity's outcome and whether it is a replay of an earlier call."""
        self._check_activity(activity)
        try:
            self._check_time(activity)
        except FailedPrecondition:
            # A retry of an activity recorded in time is answered, however late it comes.
            existing = await self._store.read_activity(activity.activity_id)
            if existing is None:
                raise
            return await self._replay(existing, activity), True
        if activity.type == REFUND:
            await read_member(self._store, activity.member_id)
            return await self._track_refund(activity)
        candidates = self.catalog.candidates(activity.type, activity.occur_us)
        speculation = await self._speculate(activity, candidates)
        exhausted: set[str] = set()
        for _ in range(ATTEMPTS):
            recorded = await self._store.writer.submit(
                partial(
                    self._record_award,
                    activity=activity,
                    candidates=candidates,
                    exhausted=set(exhausted),
                    speculation=None if exhausted else speculation,
                )
            )
            if recorded.existing is not None:
                return await self._replay(recorded.existing, activity), True
            outcome, response = await self._post(activity, recorded)
            if outcome is not None:
                return outcome, False
            exhausted |= self._refused_budgets(recorded, response)
        raise FailedPrecondition(
            "LEDGER_REFUSED",
            f"the ledger refused the award chain of activity {activity.activity_id}",
            {"activity_id": activity.activity_id},
        )

    async def dry_run(self, activity: Activity) -> Outcome:
        self._check_activity(activity)
        self._check_time(activity)
        await read_member(self._store, activity.member_id)
        if activity.type == REFUND:
            available = await self._available_for_refund(activity)
            plan_work = self._clawback_work(activity, available, record=False)
            return (await self._store.writer.submit(plan_work)).outcome
        candidates = self.catalog.candidates(activity.type, activity.occur_us)

        def work(connection: sqlite3.Connection) -> Outcome:
            context = self._context(connection, activity)
            decision = self._evaluate(connection, context, candidates, set())
            return self._outcome(activity, decision)

        return await self._store.writer.submit(work)

    def _check_activity(self, activity: Activity) -> None:
        violations = Violations()
        check_activity(violations, activity)
        violations.raise_if_any()

    def _check_time(self, activity: Activity) -> None:
        now = self._clock.now_us()
        late_by = now - activity.occur_us - self._policy.lateness_seconds * MICROS_PER_SECOND
        if late_by > 0:
            raise FailedPrecondition(
                "ACTIVITY_TOO_LATE",
                f"activities count up to {self._policy.lateness_seconds} s after they happen",
                {"activity_id": activity.activity_id, "late_by_us": str(late_by)},
            )
        if activity.occur_us > now + self._policy.max_future_seconds * MICROS_PER_SECOND:
            raise FailedPrecondition(
                "ACTIVITY_IN_FUTURE",
                f"occur_time is more than {self._policy.max_future_seconds} s ahead of now",
                {"activity_id": activity.activity_id},
            )

    def _context(self, connection: sqlite3.Connection, activity: Activity) -> ActivityContext:
        member = self._store.member(connection, activity.member_id)
        if member is None:
            raise member_not_found(activity.member_id)
        return ActivityContext(
            activity=activity,
            member=member,
            first_purchase=not self._store.has_purchase(connection, activity.member_id),
            surprise_key=self._policy.surprise_key,
        )

    def _evaluate(
        self,
        connection: sqlite3.Connection,
        context: ActivityContext,
        candidates: Sequence[Candidate],
        exhausted: set[str],
    ) -> Decision:
        matching = [c for c in candidates if conditions_hold(c, context)]
        queries = [usage_query(c, context) for c in matching if c.campaign.spec.is_bonus]
        usage = self._store.usages(connection, queries)
        for campaign_id in exhausted & usage.keys():
            usage[campaign_id] = replace(usage[campaign_id], budget_remaining=0)
        fresh = [self._fresh(c) for c in matching]
        return evaluate(context, fresh, usage)

    async def _speculate(
        self, activity: Activity, candidates: Sequence[Candidate]
    ) -> Outcome | None:
        """Evaluate before entering the single writer when only budgets can change the
        decision (no caps, quotas or once-only grants among the matching bonuses):
        the writer then only checks that every budget still covers what it needs."""
        member = await read_member(self._store, activity.member_id)
        context = ActivityContext(activity, member, surprise_key=self._policy.surprise_key)
        matching = [self._fresh(c) for c in candidates if conditions_hold(c, context)]
        bonuses = [c for c in matching if c.campaign.spec.is_bonus]
        if any(depends_on_usage(c) for c in bonuses):
            return None
        ample = Usage(budget_remaining=2**62)
        decision = evaluate(context, matching, {c.campaign_id: ample for c in bonuses})
        return self._outcome(activity, decision)

    def _fresh(self, candidate: Candidate) -> Candidate:
        """The catalog's latest version of a candidate (a manager may have acted since)."""
        return self.catalog.get(candidate.campaign_id) or candidate

    def _outcome(self, activity: Activity, decision: Decision) -> Outcome:
        legs = decision.legs
        return Outcome(
            activity_id=activity.activity_id,
            decision=decision,
            transfer_ids=tuple(leg.transfer_id(activity.activity_id) for leg in legs),
            expire_us=self._expire_us(activity) if legs else None,
        )

    def _expire_us(self, activity: Activity) -> int:
        return activity.occur_us + self._policy.points_ttl_days * DAY_US

    def _local_days(self, decision: Decision, activity: Activity) -> dict[str, str]:
        campaign_ids = {leg.campaign_id for leg in decision.legs}
        campaign_ids |= {refused.campaign_id for refused in decision.refused}
        by_zone: dict[str, str] = {}
        days = {}
        for campaign_id in campaign_ids:
            entry = self.catalog.get(campaign_id)
            assert entry is not None
            tz = entry.schedule.zone
            if tz.key not in by_zone:
                by_zone[tz.key] = local_date(activity.occur_us, tz).isoformat()
            days[campaign_id] = by_zone[tz.key]
        return days

    def _record_award(
        self,
        connection: sqlite3.Connection,
        activity: Activity,
        candidates: Sequence[Candidate],
        exhausted: set[str],
        speculation: Outcome | None,
    ) -> _Recorded:
        """Inside the writer: decide against current usage (or confirm the speculation),
        store the decision and its ledger chain."""
        existing = self._store.activity(connection, activity.activity_id)
        if existing is not None:
            return _Recorded(existing=existing)
        if speculation is not None and self._budgets_cover(connection, speculation.decision):
            outcome = speculation
        else:
            context = self._context(connection, activity)
            outcome = self._outcome(
                activity, self._evaluate(connection, context, candidates, exhausted)
            )
        decision = outcome.decision
        legs = decision.legs
        entry_id = self._store.next_entry_id(connection, activity.activity_id) if legs else None
        now = self._clock.now_us()
        self._store.insert_activity(connection, activity, outcome, entry_id, now)
        self._store.record_award(
            connection, activity, decision, self._local_days(decision, activity)
        )
        request = None
        if entry_id is not None:
            request = ledger_client.award_chain(
                activity.activity_id, legs, self._expire_us(activity)
            )
            self._outbox.record(connection, entry_id, request, now)
        budgets = self._store.budgets(connection, [a.campaign_id for a in decision.applied])
        return _Recorded(outcome, entry_id, request, budgets)

    def _budgets_cover(self, connection: sqlite3.Connection, decision: Decision) -> bool:
        needs = decision.budget_needs
        budgets = self._store.budgets(connection, [campaign_id for campaign_id, _ in needs])
        return all(
            budgets[campaign_id][0] - budgets[campaign_id][1] >= need for campaign_id, need in needs
        )

    async def _post(self, activity: Activity, recorded: _Recorded):
        """Post a recorded chain: the settled outcome, or None when the ledger refused
        it (the record is then undone), with the ledger's response."""
        outcome = recorded.outcome
        assert outcome is not None
        await self._note_budgets(recorded.budgets or {})
        if recorded.entry_id is None:
            wallet = await self._ledger.balance(activity.member_id)
            balance = wallet.balance if wallet is not None else 0
            await self._store.writer.submit(
                partial(
                    self._store.settle_activity, activity_id=activity.activity_id, balance=balance
                )
            )
            return replace(outcome, balance=balance), None
        response = await self._outbox.settle(recorded.entry_id, recorded.request)
        balance = await self.apply_settlement(activity.activity_id, recorded.entry_id, response)
        if balance is None:
            log.warning(
                "activity_refused_by_ledger",
                activity_id=activity.activity_id,
                refusals=ledger_client.refusals(response),
            )
            fresh = await self._store.writer.submit(
                partial(self._store.budgets, campaign_ids=list(recorded.budgets or {}))
            )
            await self._note_budgets(fresh)
            return None, response
        log.info(
            "activity_tracked",
            activity_id=activity.activity_id,
            member_id=activity.member_id,
            points=outcome.decision.points_for(activity.member_id),
            campaigns=[applied.campaign_id for applied in outcome.decision.applied],
        )
        return replace(outcome, balance=balance), response

    async def _note_budgets(self, budgets: dict[str, tuple[int, int]]) -> None:
        """Keep the catalog's budget figures current; announce budgets that ran out or refilled."""
        crossed = []
        for campaign_id, (funded, used) in budgets.items():
            entry = self.catalog.get(campaign_id)
            if entry is None:
                continue
            before = entry.campaign
            after = replace(before, budget_funded=funded, budget_used=used)
            self.catalog.put(after)
            smallest = smallest_award(before)
            if (before.budget_remaining < smallest) != (after.budget_remaining < smallest):
                crossed.append(campaign_id)
        if crossed:
            await self.transitions.refresh(crossed)

    def _refused_budgets(self, recorded: _Recorded, response) -> set[str]:
        """Campaigns whose budget account the ledger found short (the next attempt skips them)."""
        outcome = recorded.outcome
        assert outcome is not None
        refused_ids = {transfer_id for transfer_id, _, _ in ledger_client.refusals(response)}
        return {
            leg.campaign_id
            for leg in outcome.decision.legs
            if leg.from_account != ISSUANCE_ACCOUNT
            and leg.transfer_id(outcome.activity_id) in refused_ids
        }

    async def apply_settlement(self, activity_id: str, entry_id: str, response) -> int | None:
        """Mark the activity settled and return the member's balance after it, or undo
        the activity and return None when the ledger refused its chain."""
        accepted = all_accepted(response)

        def work(connection: sqlite3.Connection) -> int | None:
            member_id = self._store.pending_member(connection, activity_id, entry_id)
            if member_id is None:
                return None
            if not accepted:
                record = self._store.activity(connection, activity_id)
                assert record is not None
                days = self._local_days(record.outcome.decision, record.activity)
                self._store.discard_activity(connection, activity_id, days)
                return None
            balance = ledger_client.balance_after(response, member_id) or 0
            self._store.settle_activity(connection, activity_id, balance)
            return balance

        return await self._store.writer.submit(work)

    async def _replay(self, record: ActivityRecord, activity: Activity) -> Outcome:
        first, again = to_plain(record.activity), to_plain(activity)
        if first != again:
            field = _first_difference(first, again, "activity")
            raise AlreadyExists(
                "ACTIVITY_ID_REUSED",
                f"activity {activity.activity_id} was tracked with another {field}",
                {"activity_id": activity.activity_id, "field": field},
            )
        if record.settled or record.entry_id is None:
            return record.outcome
        # Still pending (a concurrent first delivery, or a crash): posting again is
        # idempotent, and whichever call settles first fills in the balance.
        request = ledger_client.parse_request(
            await self._store.writer.submit(
                lambda connection: self._store.outbox_request(connection, record.entry_id)
            )
        )
        response = await self._outbox.settle(record.entry_id, request)
        await self.apply_settlement(activity.activity_id, record.entry_id, response)
        current = await self._store.read_activity(activity.activity_id)
        if current is not None and current.settled:
            return current.outcome
        raise Unavailable(
            "ACTIVITY_IN_PROGRESS",
            f"activity {activity.activity_id} is being retried; ask again shortly",
        )

    # Refunds.

    async def _available_for_refund(self, refund: Activity) -> dict[str, int]:
        assert refund.refund is not None
        purchase = await self._store.read_activity(refund.refund.purchase_activity_id)
        if purchase is None or purchase.activity.type != "purchase":
            raise FailedPrecondition(
                "PURCHASE_NOT_FOUND",
                f"no purchase {refund.refund.purchase_activity_id} to refund",
                {"purchase_activity_id": refund.refund.purchase_activity_id},
            )
        if purchase.activity.member_id != refund.member_id:
            raise FailedPrecondition(
                "PURCHASE_OF_ANOTHER_MEMBER",
                "the refunded purchase belongs to another member",
                {"purchase_activity_id": refund.refund.purchase_activity_id},
            )
        beneficiaries = {leg.beneficiary for leg in purchase.outcome.decision.legs}
        available: dict[str, int] = {}
        for member_id in sorted(beneficiaries):
            wallet = await self._ledger.balance(member_id)
            available[member_id] = wallet.available if wallet is not None else 0
        return available

    def _clawback_work(self, refund: Activity, available: dict[str, int], record: bool):
        assert refund.refund is not None
        purchase_id = refund.refund.purchase_activity_id

        def work(connection: sqlite3.Connection) -> _Recorded:
            existing = self._store.activity(connection, refund.activity_id)
            if existing is not None:
                return _Recorded(existing=existing)
            amount, refunded, _, legs = self._store.purchase_legs(connection, purchase_id)
            if refund.refund.amount_minor > amount - refunded:
                raise FailedPrecondition(
                    "REFUND_EXCEEDS_PURCHASE",
                    f"only {amount - refunded} of purchase {purchase_id} is left to refund",
                    {
                        "purchase_activity_id": purchase_id,
                        "refundable_minor": str(amount - refunded),
                    },
                )
            plan = plan_clawback(amount, refunded, refund.refund.amount_minor, legs, available)
            request = ledger_client.clawback_chain(refund.activity_id, plan)
            transfer_ids = tuple(t.id for t in request.transfers)
            empty = Decision(0, "", (), (), None)
            outcome = Outcome(
                activity_id=refund.activity_id,
                decision=empty,
                transfer_ids=transfer_ids,
                clawback=ClawbackSummary(
                    purchase_id, plan.reversed, plan.unrecovered, transfer_ids
                ),
            )
            if not record:
                return _Recorded(outcome)
            now = self._clock.now_us()
            entry_id = (
                self._store.next_entry_id(connection, refund.activity_id) if transfer_ids else None
            )
            self._store.insert_activity(connection, refund, outcome, entry_id, now)
            self._store.record_clawback(connection, refund, plan)
            if entry_id is not None:
                self._outbox.record(connection, entry_id, request, now)
            budgets = self._store.budgets(connection, [leg.leg.campaign_id for leg in plan.legs])
            return _Recorded(outcome, entry_id, request if entry_id else None, budgets)

        return work

    async def _track_refund(self, refund: Activity) -> tuple[Outcome, bool]:
        # The member may spend between the balance read and the post; then the ledger
        # refuses the chain, the record is undone and the plan is made again.
        for _ in range(ATTEMPTS):
            available = await self._available_for_refund(refund)
            recorded = await self._store.writer.submit(
                self._clawback_work(refund, available, record=True)
            )
            if recorded.existing is not None:
                return await self._replay(recorded.existing, refund), True
            outcome, _ = await self._post(refund, recorded)
            if outcome is not None:
                return outcome, False
        raise FailedPrecondition(
            "LEDGER_REFUSED",
            f"the ledger refused the clawback of refund {refund.activity_id}",
            {"activity_id": refund.activity_id},
        )


def member_not_found(member_id: str) -> NotFound:
    return NotFound(
        "MEMBER_NOT_FOUND", f"member {member_id} does not exist", {"member_id": member_id}
    )


def _first_difference(first, again, path: str) -> str:
    """The dotted path of the first field where two plain values differ."""
    if isinstance(first, dict) and isinstance(again, dict):
        for key in sorted(first.keys() | again.keys()):
            if first.get(key) != again.get(key):
                return _first_difference(first.get(key), again.get(key), f"{path}.{key}")
    return path
