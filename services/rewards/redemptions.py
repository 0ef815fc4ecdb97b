"""Redeeming, claiming prizes, fulfilment, cancellations and refunds.

A redemption is one outbox step, so a process killed anywhere finishes or
voids it on restart, with the relay, and no client retry:

1. One transaction checks the limits, assigns the code (`UPDATE ... WHERE
   state = 'free'`: a code goes to one redemption only; none left is
   CODES_EXHAUSTED at once, with nothing recorded) or stores the generated one,
   and records the PROCESSING redemption with `redemption.redeem`: one linked
   chain holding the member's payment and the stock and posting both holds.
2. The ledger commits the whole chain or none of it. Accepted: ISSUED (the code
   is shown) or AWAITING_FULFILMENT. Refused: FAILED with the reason, the code
   back to the pool (it was never shown); nothing was held or taken.

Refunds and cancellations are one step, `redemption.reverse`, recorded with
REFUNDING (the code is void at once) or CANCELLING.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import structlog

from services.kit.clock import Clock
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Violations,
)
from services.kit.errors import FieldViolation as Violation
from services.kit.ids import MEMBER_ID, PRIZE_UNIT, REQUEST_ID, REWARD_ID
from services.kit.outbox import Settlement
from services.kit.paging import Page, page_of
from services.kit.text import shown
from services.rewards.base import MAX_POSITION, Step, UseCases, paging, require, reward_or_404
from services.rewards.domain import eligibility
from services.rewards.domain.catalog import MAX_QUANTITY, Limits, Reward, RewardKind, check_text
from services.rewards.domain.codes import generate_code
from services.rewards.domain.eligibility import MemberProfile, Usage
from services.rewards.domain.offers import Offer
from services.rewards.domain.redemptions import (
    REFUNDABLE_KINDS,
    Redemption,
    RedemptionEvent,
    RedemptionState,
    failure,
    redemption_id,
    refusal_reason,
)
from services.rewards.ledger import (
    member_wallet,
    points_hold_id,
    redeem_chain,
    reversal_chain,
    reward_accounts,
    stock_hold_id,
)
from services.rewards.store import RewardsUnit

log = structlog.get_logger()

REDEEM = "redemption.redeem"
REVERSE = "redemption.reverse"
MAX_REASON = 500


def _entry_id(redemption_id_: str, step: str) -> str:
    return f"redeem:{redemption_id_}:{step}"


def _redemption_of(entry_id: str) -> str:
    """The redemption an entry id built by _entry_id names."""
    return entry_id.removeprefix("redeem:").rpartition(":")[0]


def _pending(unit: RewardsUnit, redemption: Redemption) -> Step:
    entry = unit.outbox.entry(redemption.entry_id) if redemption.entry_id else None
    return Step(redemption, entry)


class RedemptionHandlers:
    """One handler per outbox kind; each runs in the transaction that closes its entry."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def handlers(self) -> dict:
        return {
            REDEEM: self.on_redeem,
            REVERSE: self.on_reverse,
        }

    def _fail(self, unit: RewardsUnit, redemption: Redemption, reason: str) -> Step:
        failed = redemption.moved(
            RedemptionState.FAILED,
            self._clock.now_us(),
            reason,
            failure_reason=reason,
            entry_id="",
            code="",
        )
        unit.release_code(redemption.redemption_id)
        unit.save_redemption(failed)
        log.info("redemption_failed", redemption_id=redemption.redemption_id, reason=reason)
        return Step(failed)

    def _current(self, unit: RewardsUnit, settlement: Settlement) -> Redemption | None:
        entry_id = settlement.entry.entry_id
        redemption = unit.redemption(_redemption_of(entry_id))
        if redemption is None or redemption.entry_id != entry_id:
            log.error("redemption_entry_orphaned", entry_id=entry_id)
            return None
        return redemption

    def on_redeem(self, unit: RewardsUnit, settlement: Settlement) -> Step | None:
        redemption = self._current(unit, settlement)
        if redemption is None:
            return None
        answer = settlement.answer
        if answer is None:
            return self._fail(unit, redemption, "LEDGER_REFUSED")
        if not answer.accepted:
            points = answer.refusal_of(points_hold_id(redemption.redemption_id))
            stock = answer.refusal_of(stock_hold_id(redemption.redemption_id))
            reason = refusal_reason(
                points.code if points else None,
                stock.code if stock else None,
                redemption.price_unit,
            )
            return self._fail(unit, redemption, reason)
        now = self._clock.now_us()
        done = (
            RedemptionState.AWAITING_FULFILMENT
            if redemption.kind == RewardKind.PHYSICAL
            else RedemptionState.ISSUED
        )
        issued = redemption.moved(done, now, posted_us=now, entry_id="")
        unit.save_redemption(issued)
        log.info("redemption_completed", redemption_id=redemption.redemption_id, state=done.name)
        return Step(issued)

    def on_reverse(self, unit: RewardsUnit, settlement: Settlement) -> Step | None:
        redemption = self._current(unit, settlement)
        if redemption is None:
            return None
        now = self._clock.now_us()
        answer = settlement.answer
        refunding = redemption.state == RedemptionState.REFUNDING
        if answer is None or not answer.accepted:
            # A reversal of our own posted transfers is refused only by a bug: keep
            # the redemption where it was, with the refusal in its history.
            codes = ",".join(r.code for r in answer.refusals) if answer else "INVALID_ARGUMENT"
            log.error("redemption_reversal_refused", redemption_id=redemption.redemption_id)
            back = RedemptionState.ISSUED if refunding else RedemptionState.AWAITING_FULFILMENT
            restored = redemption.moved(back, now, f"REVERSAL_REFUSED: {codes}", entry_id="")
            unit.save_redemption(restored)
            return Step(restored)
        done = RedemptionState.REFUNDED if refunding else RedemptionState.CANCELLED
        reversed_ = redemption.moved(done, now, reversed_us=now, entry_id="")
        unit.save_redemption(reversed_)
        return Step(reversed_)


class _ProfileNeeded(Exception):
    """The reward now has rules that read the member's profile, which was not asked."""


# How long a reward read outside a redemption's transaction is reused. Only facts
# that never change with a version (kind, price unit, prize unit) and a hint
# (whether to ask for the member's profile) are taken from it; the transaction
# reads the current version and asks again when the hint was wrong.
KNOWN_REWARD_US = 5 * 1_000_000


@dataclass(frozen=True, slots=True)
class _Known:
    until_us: int
    reward: Reward
    # Its ledger accounts (but members'), opened once: they follow from the facts above.
    accounts: list


class Redemptions(UseCases):
    def __init__(self, context) -> None:
        super().__init__(context)
        self._known: dict[str, _Known] = {}

    async def _known_reward(self, reward_id: str) -> _Known:
        now = self._clock.now_us()
        known = self._known.get(reward_id)
        if known is not None and now < known.until_us:
            return known
        reward = await self._store.read(lambda unit: reward_or_404(unit, reward_id))
        known = _Known(now + KNOWN_REWARD_US, reward, reward_accounts(reward))
        self._known[reward_id] = known
        return known

    async def redeem(
        self,
        member_id: str,
        reward_id: str,
        quantity: int,
        request_id: str,
        *,
        offer: Offer | None = None,
    ) -> Redemption:
        """The redemption, ISSUED or AWAITING_FULFILMENT; FAILED_PRECONDITION with
        the reason when refused (on every retry too)."""
        checks = [("member_id", member_id, MEMBER_ID), ("reward_id", reward_id, REWARD_ID)]
        if offer is None:
            checks.append(("request_id", request_id, REQUEST_ID))
        require(*checks)
        quantity = quantity or 1
        if not 1 <= quantity <= MAX_QUANTITY:
            raise InvalidArgument([Violation("quantity", f"must be between 1 and {MAX_QUANTITY}")])
        known = await self._known_reward(reward_id)
        reward = known.reward
        profile = await self._profiles.profile(member_id) if reward.spec.needs_profile else None
        wallets = (
            [member_wallet(member_id, reward.spec.prize_unit)]
            if reward.spec.kind == RewardKind.PRIZE_UNIT
            else []
        )
        await self._ledger.ensure(*known.accounts, *wallets)
        # Drawn here, outside the transaction, so the work that stores it is safe to rerun.
        drawn = (
            generate_code(reward.spec.length_of_codes)
            if reward.spec.kind == RewardKind.GENERATED_CODE
            else ""
        )
        rid = redemption_id(member_id, request_id)
        now = self._clock.now_us()

        def work(unit: RewardsUnit) -> Step:
            existing = unit.redemption(rid)
            if existing is not None:
                if (existing.reward_id, existing.quantity) != (reward_id, quantity):
                    raise AlreadyExists(
                        "REQUEST_ID_REUSED",
                        f"request {shown(request_id)} redeemed another reward or quantity",
                        {"redemption_id": rid},
                    )
                return _pending(unit, existing)
            current = reward_or_404(unit, reward_id)
            spec = current.spec
            if profile is None and spec.needs_profile:
                raise _ProfileNeeded()
            refused = eligibility.refusal(
                current, profile or MemberProfile(), now, via_offer=offer is not None
            )
            if refused is not None:
                raise FailedPrecondition(refused.reason, refused.message, {"reward_id": reward_id})
            if spec.kind.gives_code and quantity != 1:
                raise InvalidArgument(
                    [Violation("quantity", "a code reward is redeemed one at a time")]
                )
            if spec.limits != Limits():
                zone = profile.time_zone if profile is not None else ""
                starts = eligibility.period_starts(now, zone, spec.time_zone)
                usage = unit.usage(member_id, [reward_id], starts).get(reward_id, Usage())
                left = eligibility.limit_left(spec.limits, usage)
                if left is not None and quantity > left:
                    raise FailedPrecondition(
                        "LIMIT_REACHED",
                        f"the member may redeem {left} more of reward {reward_id} now",
                        {"reward_id": reward_id, "limit_left": left},
                    )
            code = drawn
            if spec.kind == RewardKind.CODE_POOL:
                code = unit.assign_code(reward_id, rid) or ""
            elif spec.kind == RewardKind.GENERATED_CODE and not unit.add_assigned_code(
                reward_id, code, rid
            ):
                code = ""
            if spec.kind.gives_code and not code:
                raise FailedPrecondition(
                    "CODES_EXHAUSTED",
                    f"reward {reward_id} has no code left",
                    {"reward_id": reward_id},
                )
            unit_price = offer.spec.price_points if offer is not None else spec.price
            redemption = Redemption(
                redemption_id=rid,
                member_id=member_id,
                request_id=request_id,
                reward_id=reward_id,
                reward_version=current.version,
                kind=spec.kind,
                quantity=quantity,
                price_total=unit_price * quantity,
                price_unit=spec.price_unit,
                value=spec.value.times(quantity),
                state=RedemptionState.PROCESSING,
                created_us=now,
                updated_us=now,
                entry_id=_entry_id(rid, "redeem"),
                code=code,
                offer_id=offer.offer_id if offer is not None else "",
                history=(RedemptionEvent(RedemptionState.PROCESSING, now),),
            )
            redemption = unit.insert_redemption(redemption)
            chain = redeem_chain(redemption, current, spec.credit_points)
            entry = unit.outbox.record(redemption.entry_id, REDEEM, chain, now)
            return Step(redemption, entry)

        try:
            step = await self._store.write(work)
        except _ProfileNeeded:
            # The reward changed since it was last read here: it needs the member's profile now.
            self._known.pop(reward_id, None)
            profile = await self._profiles.profile(member_id)
            step = await self._store.write(work)
        redemption = await self._drive(step, self._reread(rid))
        if redemption.state == RedemptionState.FAILED:
            raise failure(redemption)
        return redemption

    def _reread(self, rid: str):
        def read(unit: RewardsUnit) -> Step:
            redemption = unit.redemption(rid)
            assert redemption is not None, rid
            return _pending(unit, redemption)

        return read

    async def claim_prize(self, member_id: str, prize_unit: str, request_id: str) -> Redemption:
        require(
            ("member_id", member_id, MEMBER_ID),
            ("prize_unit", prize_unit, PRIZE_UNIT),
            ("request_id", request_id, REQUEST_ID),
        )

        def find(unit: RewardsUnit) -> str | None:
            for reward in unit.rewards("", 10_000, archived=False, listed_only=True):
                if reward.spec.price_unit == prize_unit:
                    return reward.reward_id
            return None

        reward_id = await self._store.read(find)
        if reward_id is None:
            raise NotFound(
                "NO_REWARD_CLAIMS_PRIZE",
                f"no reward claims {shown(prize_unit)}",
                {"prize_unit": prize_unit},
            )
        return await self.redeem(member_id, reward_id, 1, request_id)

    async def get(self, member_id: str, redemption_id_: str) -> Redemption:
        require(("member_id", member_id, MEMBER_ID), ("redemption_id", redemption_id_, REQUEST_ID))
        found = await self._store.read(lambda unit: unit.redemption(redemption_id_))
        if found is None or found.member_id != member_id:
            raise _not_found(redemption_id_)
        return found

    async def list_mine(self, member_id: str, size: int, token: str) -> Page[Redemption]:
        require(("member_id", member_id, MEMBER_ID))
        query = ("mine", member_id)
        size, before = paging(size, token, query, int)
        rows = await self._store.read(
            lambda unit: unit.member_redemptions(member_id, before or MAX_POSITION, size + 1)
        )
        return page_of(rows, size, lambda r: r.seq, query)

    async def list(
        self, reward_id: str, state: RedemptionState | None, size: int, token: str
    ) -> Page[Redemption]:
        if reward_id:
            require(("reward_id", reward_id, REWARD_ID))
        query = ("all", reward_id, int(state) if state is not None else 0)
        size, before = paging(size, token, query, int)
        rows = await self._store.read(
            lambda unit: unit.redemptions(reward_id, state, before or MAX_POSITION, size + 1)
        )
        return page_of(rows, size, lambda r: r.seq, query)

    async def fulfil(self, redemption_id_: str, note: str) -> Redemption:
        _check_reason(redemption_id_, note, "note")
        now = self._clock.now_us()

        def work(unit: RewardsUnit) -> Redemption:
            redemption = _found(unit, redemption_id_)
            if redemption.state == RedemptionState.FULFILLED:
                return redemption
            fulfilled = redemption.moved(RedemptionState.FULFILLED, now, note)
            unit.save_redemption(fulfilled)
            return fulfilled

        return await self._store.write(work)

    async def cancel(self, redemption_id_: str, reason: str) -> Redemption:
        return await self._reverse(redemption_id_, reason, refund=False)

    async def refund(self, redemption_id_: str, reason: str) -> Redemption:
        return await self._reverse(redemption_id_, reason, refund=True)

    async def _reverse(self, redemption_id_: str, reason: str, *, refund: bool) -> Redemption:
        _check_reason(redemption_id_, reason, "reason")
        now = self._clock.now_us()
        doing, done = (
            (RedemptionState.REFUNDING, RedemptionState.REFUNDED)
            if refund
            else (RedemptionState.CANCELLING, RedemptionState.CANCELLED)
        )

        def work(unit: RewardsUnit) -> Step:
            redemption = _found(unit, redemption_id_)
            if redemption.state in (doing, done):
                return _pending(unit, redemption)
            if refund and redemption.kind not in REFUNDABLE_KINDS:
                raise FailedPrecondition(
                    "NOT_REFUNDABLE",
                    f"a {redemption.kind.name} redemption cannot be refunded",
                    {"redemption_id": redemption_id_},
                )
            moving = redemption.moved(doing, now, reason)
            if refund:
                unit.void_code(redemption_id_)
            chain = reversal_chain(redemption, stock_too=not refund)
            if not chain.transfers:
                finished = moving.moved(done, now, reversed_us=now)
                unit.save_redemption(finished)
                return Step(finished)
            entry = unit.outbox.record(_entry_id(redemption_id_, "reverse"), REVERSE, chain, now)
            moving = replace(moving, entry_id=entry.entry_id)
            unit.save_redemption(moving)
            return Step(moving, entry)

        return await self._drive(await self._store.write(work), self._reread(redemption_id_))


def _check_reason(redemption_id_: str, text: str, field: str) -> None:
    require(("redemption_id", redemption_id_, REQUEST_ID))
    violations = Violations()
    check_text(violations, field, text, MAX_REASON)
    violations.raise_if_any()


def _not_found(redemption_id_: str) -> NotFound:
    return NotFound(
        "REDEMPTION_NOT_FOUND",
        f"no redemption {shown(redemption_id_)}",
        {"redemption_id": redemption_id_},
    )


def _found(unit: RewardsUnit, redemption_id_: str) -> Redemption:
    found = unit.redemption(redemption_id_)
    if found is None:
        raise _not_found(redemption_id_)
    return found
