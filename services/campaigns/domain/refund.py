"""Refund clawbacks: take back what the refunded purchase earned, in proportion.

Rounding: after a refund, each award leg of the purchase owes
floor(leg points x refunded so far / purchase amount) in total; this refund
takes that minus what earlier refunds of the purchase already accounted for.
Partial refunds round down (in the member's favour); once the purchase is
refunded in full every leg is taken back exactly, whatever the steps.

A clawback never makes a wallet negative: each beneficiary gives back at most
their available balance (legs in chain order: base first), and the rest is
recorded as unrecovered and reported; it is not chased by later refunds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AwardedLeg:
    """One posted award leg of the purchase and what refunds took so far."""

    leg_key: str
    transfer_id: str
    beneficiary: str
    campaign_id: str
    points: int
    accounted: int  # reversed plus unrecovered by earlier refunds


@dataclass(frozen=True, slots=True)
class ClawbackLeg:
    leg: AwardedLeg
    reverse: int
    unrecovered: int

    def transfer_id(self, refund_activity_id: str) -> str:
        return f"activity:{refund_activity_id}:clawback:{self.leg.leg_key}"


@dataclass(frozen=True, slots=True)
class ClawbackPlan:
    legs: tuple[ClawbackLeg, ...]

    @property
    def reversed(self) -> int:
        return sum(leg.reverse for leg in self.legs)

    @property
    def unrecovered(self) -> int:
        return sum(leg.unrecovered for leg in self.legs)


def plan_clawback(
    purchase_amount: int,
    refunded_before: int,
    refund_amount: int,
    legs: Sequence[AwardedLeg],
    available: Mapping[str, int],
) -> ClawbackPlan:
    if not 0 < refund_amount <= purchase_amount - refunded_before:
        raise ValueError("the refund exceeds what remains of the purchase")
    refunded = refunded_before + refund_amount
    left = dict(available)
    planned = []
    for leg in legs:
        owed = leg.points * refunded // purchase_amount - leg.accounted
        if owed <= 0:
            continue
        reverse = min(owed, max(left.get(leg.beneficiary, 0), 0))
        left[leg.beneficiary] = left.get(leg.beneficiary, 0) - reverse
        planned.append(ClawbackLeg(leg, reverse, owed - reverse))
    return ClawbackPlan(tuple(planned))
