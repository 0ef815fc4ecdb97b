"""What tracking an activity gave: the breakdown members and managers see."""

from __future__ import annotations

from dataclasses import dataclass

from services.campaigns.domain.evaluation import Decision


@dataclass(frozen=True, slots=True)
class ClawbackSummary:
    purchase_activity_id: str
    points_reversed: int
    points_unrecovered: int
    transfer_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    activity_id: str
    decision: Decision
    transfer_ids: tuple[str, ...]
    expire_us: int | None = None
    clawback: ClawbackSummary | None = None
    # The acting member's balance after the chain; filled in once posted.
    balance: int = 0
