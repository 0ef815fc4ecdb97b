"""What the campaigns service keeps and reads back: the entities its store
returns, named, so no use case unpacks a bare tuple."""

from __future__ import annotations

from dataclasses import dataclass

from services.campaigns.domain.model import Activity, CampaignState, RefusalReason
from services.campaigns.domain.outcome import Outcome
from services.campaigns.domain.refund import AwardedLeg


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    """A tracked activity and what it gave; `settled` once its ledger chain
    committed (or when it needed none); `entry_id` names its outbox entry."""

    activity: Activity
    outcome: Outcome
    settled: bool
    entry_id: str | None


@dataclass(frozen=True, slots=True)
class Awaiting:
    """An activity waiting for its outbox entry to settle: whose it is."""

    activity_id: str
    member_id: str


@dataclass(frozen=True, slots=True)
class PurchaseLegs:
    """A purchase as a refund sees it: what it cost, what refunds took so far,
    whose it was, and its award legs in chain order (base first)."""

    amount_minor: int
    refunded_minor: int
    member_id: str
    legs: tuple[AwardedLeg, ...]

    @property
    def refundable_minor(self) -> int:
        return self.amount_minor - self.refunded_minor


@dataclass(frozen=True, slots=True)
class BudgetFigures:
    """A campaign's budget by this service's bookkeeping."""

    funded: int
    used: int

    @property
    def remaining(self) -> int:
        return self.funded - self.used


@dataclass(frozen=True, slots=True)
class StateChange:
    """A campaign's derived state moving, at the instant it took effect."""

    campaign_id: str
    before: CampaignState
    after: CampaignState
    effect_us: int


@dataclass(frozen=True, slots=True)
class Transition:
    """A stored StateChange with its place in the WatchCampaigns stream."""

    sequence: int
    change: StateChange


@dataclass(frozen=True, slots=True)
class RefusalTally:
    """How many activities a campaign refused for one reason on one local day."""

    day: str
    reason: RefusalReason
    count: int


@dataclass(frozen=True, slots=True)
class DayFigures:
    day: str
    points: int
    activities: int
    members: int


@dataclass(frozen=True, slots=True)
class CampaignFigures:
    points: int
    activities: int
    members: int
    days: tuple[DayFigures, ...]
    refusals: tuple[RefusalTally, ...]
    # Outbox entries of the whole service still waiting for the ledger.
    pending_entries: int

    def refusals_on(self, day: str | None) -> dict[RefusalReason, int]:
        """Refusals by reason on one local day, or over every day (None)."""
        counts: dict[RefusalReason, int] = {}
        for tally in self.refusals:
            if day is None or tally.day == day:
                counts[tally.reason] = counts.get(tally.reason, 0) + tally.count
        return counts


@dataclass(frozen=True, slots=True)
class MemberPoints:
    member_id: str
    points: int


@dataclass(frozen=True, slots=True)
class ActivityEvent:
    """A settled activity in the WatchActivities feed, with its place in it."""

    sequence: int
    activity: Activity
    # Points credited to the acting member; negative for a refund's clawback.
    points: int
    # Every member's points from it (a referral pays the referrer too), by member id.
    credits: tuple[MemberPoints, ...]
    # The member's IANA zone when it settled; empty when the profile has none.
    time_zone: str
    # When it settled (UTC microseconds).
    record_us: int
