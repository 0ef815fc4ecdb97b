"""A redemption and the states it moves through. Pure: no grpc, no sqlite.

    PROCESSING --holds placed, code or fulfilment, holds posted--> ISSUED
               \\                                             \\-> AWAITING_FULFILMENT
               \\--refused, or voided after a failure--------> FAILED (nothing taken)
    AWAITING_FULFILMENT -> FULFILLED
    AWAITING_FULFILMENT -> CANCELLING -> CANCELLED (points and stock returned)
    ISSUED, FULFILLED   -> REFUNDING  -> REFUNDED  (points returned, code void)

Every change is kept in the redemption's history.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from enum import IntEnum

from services.kit.errors import FailedPrecondition
from services.kit.ids import POINTS
from services.rewards.domain.catalog import Money, RewardKind


class RedemptionState(IntEnum):
    """Values equal the protobuf contract's."""

    UNSPECIFIED = 0
    PROCESSING = 1
    ISSUED = 2
    AWAITING_FULFILMENT = 3
    FULFILLED = 4
    CANCELLING = 5
    CANCELLED = 6
    REFUNDING = 7
    REFUNDED = 8
    FAILED = 9


# Redemptions that count toward a member's limits: in flight or delivered.
COUNTED = (
    RedemptionState.PROCESSING,
    RedemptionState.ISSUED,
    RedemptionState.AWAITING_FULFILMENT,
    RedemptionState.FULFILLED,
)
# Redemptions whose points were taken and not given back.
TOOK_POINTS = (
    RedemptionState.ISSUED,
    RedemptionState.AWAITING_FULFILMENT,
    RedemptionState.FULFILLED,
)
NEXT: dict[RedemptionState, tuple[RedemptionState, ...]] = {
    RedemptionState.PROCESSING: (
        RedemptionState.ISSUED,
        RedemptionState.AWAITING_FULFILMENT,
        RedemptionState.FAILED,
    ),
    RedemptionState.AWAITING_FULFILMENT: (
        RedemptionState.FULFILLED,
        RedemptionState.CANCELLING,
    ),
    RedemptionState.CANCELLING: (RedemptionState.CANCELLED, RedemptionState.AWAITING_FULFILMENT),
    RedemptionState.ISSUED: (RedemptionState.REFUNDING,),
    RedemptionState.FULFILLED: (RedemptionState.REFUNDING,),
    RedemptionState.REFUNDING: (RedemptionState.REFUNDED, RedemptionState.ISSUED),
}
REFUNDABLE_KINDS = (RewardKind.CODE_POOL, RewardKind.GENERATED_CODE, RewardKind.PHYSICAL)


@dataclass(frozen=True, slots=True)
class RedemptionEvent:
    state: RedemptionState
    at_us: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Redemption:
    redemption_id: str
    member_id: str
    request_id: str
    reward_id: str
    reward_version: int
    kind: RewardKind
    quantity: int
    price_total: int
    price_unit: str
    value: Money
    state: RedemptionState
    created_us: int
    updated_us: int
    # The outbox entry driving the redemption now ('' when none is pending).
    entry_id: str = ""
    # The code: drawn before the holds for a generated code, assigned after them
    # for a pool; shown only once ISSUED, and never again after a refund.
    code: str = ""
    failure_reason: str = ""
    offer_id: str = ""
    posted_us: int | None = None
    reversed_us: int | None = None
    history: tuple[RedemptionEvent, ...] = ()
    # Its position in the order redemptions were made (0 until stored).
    seq: int = 0

    @property
    def shown_code(self) -> str:
        shown = self.state in (RedemptionState.ISSUED, RedemptionState.FULFILLED)
        return self.code if shown else ""

    @property
    def points(self) -> int:
        return self.price_total if self.price_unit == POINTS else 0

    def moved(self, to: RedemptionState, now_us: int, reason: str = "", **changes) -> Redemption:
        """This redemption in state `to`, with the change in its history."""
        if to not in NEXT.get(self.state, ()):
            raise FailedPrecondition(
                "REDEMPTION_STATE_CONFLICT",
                f"redemption {self.redemption_id} is {self.state.name}; it cannot become {to.name}",
                {"redemption_id": self.redemption_id, "state": self.state.name},
            )
        return replace(
            self,
            state=to,
            updated_us=now_us,
            history=(*self.history, RedemptionEvent(to, now_us, reason)),
            **changes,
        )


def redemption_id(member_id: str, request_id: str) -> str:
    """Derived from the member and their request id, so a retry finds the first
    attempt; short, so every transfer id built on it fits the ledger's 128."""
    digest = hashlib.sha256(f"{member_id}\n{request_id}".encode()).hexdigest()
    return f"rd-{digest[:24]}"


def refusal_reason(points_refusal: str | None, stock_refusal: str | None, unit: str) -> str:
    """What a refused hold chain means to the member (ledger result codes in, reasons out)."""
    if points_refusal in ("INSUFFICIENT_BALANCE", "ACCOUNT_NOT_FOUND"):
        return "INSUFFICIENT_POINTS" if unit == POINTS else "PRIZE_NOT_HELD"
    if stock_refusal in ("INSUFFICIENT_BALANCE", "ACCOUNT_NOT_FOUND"):
        return "OUT_OF_STOCK"
    return "LEDGER_REFUSED"


FAILURE_MESSAGES = {
    "INSUFFICIENT_POINTS": "the member does not have enough points; nothing was taken",
    "PRIZE_NOT_HELD": "the member does not hold that prize; nothing was taken",
    "OUT_OF_STOCK": "the reward is out of stock; nothing was taken",
    "CODES_EXHAUSTED": "the reward's code pool is empty; nothing was taken",
    "LEDGER_REFUSED": "the ledger refused the redemption; nothing was taken",
}


def failure(redemption: Redemption) -> FailedPrecondition:
    """The error a FAILED redemption answers with, the first time and on every retry."""
    reason = redemption.failure_reason or "LEDGER_REFUSED"
    return FailedPrecondition(
        reason,
        FAILURE_MESSAGES.get(reason, "the redemption was refused; nothing was taken"),
        {"redemption_id": redemption.redemption_id, "reward_id": redemption.reward_id},
    )
