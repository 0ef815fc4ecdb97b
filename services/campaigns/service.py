"""Use cases of the campaigns service: validation, idempotency and the outbox
flow (record the decision and its ledger chain in one local transaction, post
the chain, mark it settled) over the store, the catalog and the ledger."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from functools import partial

import structlog

from services.campaigns import ledger_client
from services.campaigns.catalog import Catalog
from services.campaigns.codec import to_plain
from services.campaigns.domain.evaluation import (
    ISSUANCE_ACCOUNT,
    ActivityContext,
    Candidate,
    Decision,
    conditions_hold,
    evaluate,
    usage_query,
)
from services.campaigns.domain.lifecycle import apply_action, derive_state, smallest_award
from services.campaigns.domain.model import (
    REFUND,
    Activity,
    Campaign,
    CampaignSpec,
    CampaignState,
    CampaignStatus,
    Member,
)
from services.campaigns.domain.outcome import ClawbackSummary, Outcome
from services.campaigns.domain.refund import plan_clawback
from services.campaigns.domain.schedule import Schedule, local_date, zone
from services.campaigns.domain.validation import (
    CAMPAIGN_ID,
    MEMBER_ID,
    check_activity,
    check_id,
    check_instant,
    check_member,
    check_spec,
    check_zone,
)
from services.campaigns.ledger_client import LedgerClient
from services.campaigns.store import ActivityRecord, CampaignFigures, CampaignsStore, Transition
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

log = structlog.get_logger()

DAY_US = 86_400 * MICROS_PER_SECOND
ATTEMPTS = 3
RELAY_INTERVAL_US = 2 * MICROS_PER_SECOND
DEFAULT_PAGE = 50
MAX_PAGE = 500
DEFAULT_OCCURRENCES = 10
MAX_OCCURRENCES = 100


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
    request: object = None
    # Budget figures (funded, used) of the campaigns the decision drew on, after it.
    budgets: dict[str, tuple[int, int]] | None = None
    existing: ActivityRecord | None = None


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
        self._policy = policy
        self.catalog = Catalog()
        self.transitions = TransitionTracker(store, self.catalog, clock)
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
            await self._apply_settlement(activity_id, settled.entry_id, settled.response)
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
        return await self._member(member_id)

    async def _member(self, member_id: str) -> Member:
        member = await self._store.read_member(member_id)
        if member is None:
            raise _member_not_found(member_id)
        return member

    # Activities.

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
            await self._member(activity.member_id)
            return await self._track_refund(activity)
        candidates = self.catalog.candidates(activity.type, activity.occur_us)
        exhausted: set[str] = set()
        for _ in range(ATTEMPTS):
            recorded = await self._store.writer.submit(
                partial(
                    self._record_award,
                    activity=activity,
                    candidates=candidates,
                    exhausted=set(exhausted),
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
        await self._member(activity.member_id)
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
            raise _member_not_found(activity.member_id)
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
    ) -> _Recorded:
        """Inside the writer: evaluate against fresh usage, store the decision and its chain."""
        existing = self._store.activity(connection, activity.activity_id)
        if existing is not None:
            return _Recorded(existing=existing)
        context = self._context(connection, activity)
        decision = self._evaluate(connection, context, candidates, exhausted)
        outcome = self._outcome(activity, decision)
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

    async def _post(self, activity: Activity, recorded: _Recorded):
        """Post a recorded chain: the settled outcome, or None when the ledger refused
        it (the record is then undone), with the ledger's response."""
        outcome = recorded.outcome
        assert outcome is not None
        await self._note_budgets(recorded.budgets or {})
        if recorded.entry_id is None:
            balance = (await self._ledger.balance(activity.member_id)).balance
            await self._store.writer.submit(
                partial(
                    self._store.settle_activity, activity_id=activity.activity_id, balance=balance
                )
            )
            return replace(outcome, balance=balance), None
        response = await self._outbox.settle(recorded.entry_id, recorded.request)
        balance = await self._apply_settlement(activity.activity_id, recorded.entry_id, response)
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

    async def _apply_settlement(self, activity_id: str, entry_id: str, response) -> int | None:
        """Mark the activity settled and return the member's balance after it, or undo
        the activity and return None when the ledger refused its chain."""
        accepted = all_accepted(response)

        def work(connection: sqlite3.Connection) -> int | None:
            member_id = self._store.pending_member(connection, activity_id, entry_id)
            if member_id is None:
                return None
            if not accepted:
                self._store.discard_activity(connection, activity_id)
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
        await self._apply_settlement(activity.activity_id, record.entry_id, response)
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
        return {
            member_id: (await self._ledger.balance(member_id)).available
            for member_id in sorted(beneficiaries)
        }

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
            balance = (await self._ledger.balance(view.campaign.budget_account_id)).balance
        return Stats(view.campaign, figures, balance)

    async def watch(self, after_sequence: int) -> AsyncIterator[Transition]:
        if after_sequence < 0:
            raise InvalidArgument([FieldViolation("after_sequence", "must not be negative")])
        async for transition in self.transitions.watch(after_sequence):
            yield transition


def _member_not_found(member_id: str) -> NotFound:
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
