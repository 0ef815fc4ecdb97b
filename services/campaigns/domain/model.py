"""The campaigns service's types. Times are UTC integer microseconds."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from services.kit.ids import budget_account
from services.kit.schedule import LimitPeriod, ScheduleSpec


class CampaignKind(Enum):
    BASE_RULE = "BASE_RULE"
    MULTIPLIER = "MULTIPLIER"
    FIXED_BONUS = "FIXED_BONUS"
    SURPRISE_BONUS = "SURPRISE_BONUS"
    BIRTHDAY_BONUS = "BIRTHDAY_BONUS"
    REFERRAL_BONUS = "REFERRAL_BONUS"


class ReferralStage(Enum):
    INVITE_SENT = "INVITE_SENT"
    SIGNUP = "SIGNUP"
    FIRST_PURCHASE = "FIRST_PURCHASE"


class StackingMode(Enum):
    STACKABLE = "STACKABLE"
    BEST_OF_GROUP = "BEST_OF_GROUP"
    EXCLUSIVE = "EXCLUSIVE"


class CampaignStatus(Enum):
    """The manager's intent."""

    DRAFT = "DRAFT"
    SCHEDULED = "SCHEDULED"
    PAUSED = "PAUSED"
    CANCELLED = "CANCELLED"
    ARCHIVED = "ARCHIVED"


class CampaignState(Enum):
    """What members see, derived from intent, clock and budget."""

    DRAFT = "DRAFT"
    SCHEDULED = "SCHEDULED"
    LIVE = "LIVE"
    PAUSED = "PAUSED"
    ENDED = "ENDED"
    BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"


class RefusalReason(Enum):
    BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"
    MEMBER_LIMIT_REACHED = "MEMBER_LIMIT_REACHED"
    MEMBER_QUOTA_REACHED = "MEMBER_QUOTA_REACHED"
    OUTSIDE_WINDOW = "OUTSIDE_WINDOW"
    LOST_STACKING = "LOST_STACKING"
    NOT_DRAWN = "NOT_DRAWN"
    ALREADY_GRANTED = "ALREADY_GRANTED"
    PAUSED = "PAUSED"
    NO_BASE_POINTS = "NO_BASE_POINTS"
    # Why an activity earned nothing when no campaign refused it in particular.
    NO_CAMPAIGN = "NO_CAMPAIGN"
    NOT_ELIGIBLE = "NOT_ELIGIBLE"


PURCHASE = "purchase"
REFUND = "refund"
REFERRAL_INVITE_SENT = "referral_invite_sent"
REFERRAL_SIGNUP = "referral_signup"


@dataclass(frozen=True, slots=True)
class Birthday:
    month: int
    day: int
    year: int = 0


@dataclass(frozen=True, slots=True)
class Standing:
    """A member's tier in one tier program, as the progress service computed it."""

    member_id: str
    program_id: str
    tier_id: str
    # The program's tiers, lowest first (empty: not known).
    tier_ids: tuple[str, ...] = ()

    def outranks(self, tier: str) -> bool:
        """True unless `tier` is a higher tier of this program than the computed one."""
        if tier not in self.tier_ids or self.tier_id not in self.tier_ids:
            return True
        return self.tier_ids.index(self.tier_id) >= self.tier_ids.index(tier)


@dataclass(frozen=True, slots=True)
class Member:
    member_id: str
    time_zone: str = ""
    birthday: Birthday | None = None
    # The manual tier: a floor under each program's computed tier.
    tier: str = ""
    segments: tuple[str, ...] = ()
    referrer_member_id: str = ""
    opt_ins: tuple[str, ...] = ()
    create_us: int = 0
    update_us: int = 0
    # The computed tiers, one per tier program (the progress feed's, not the profile's).
    standings: tuple[Standing, ...] = ()

    @property
    def tiers(self) -> tuple[str, ...]:
        """The tiers campaign conditions match: in each program the higher of the
        computed tier and the manual one (by the program's order), and the manual
        tier alone where no program that knows it places the member."""
        tiers = [s.tier_id if s.outranks(self.tier) else self.tier for s in self.standings]
        placed = any(self.tier in s.tier_ids for s in self.standings)
        if self.tier and not placed:
            tiers.append(self.tier)
        return tuple(dict.fromkeys(tiers))


@dataclass(frozen=True, slots=True)
class Purchase:
    amount_minor: int
    currency: str = ""
    skus: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Refund:
    purchase_activity_id: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Activity:
    activity_id: str
    member_id: str
    type: str
    # None when the client sent no occur_time (refused by validation).
    occur_us: int | None
    purchase: Purchase | None = None
    refund: Refund | None = None
    attributes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Reward:
    points_per_unit: int = 0
    minor_units_per_unit: int = 100
    points: int = 0
    multiplier_percent: int = 0
    probability_ppm: int = 0
    referral_stage: ReferralStage | None = None
    referrer_points: int = 0
    referred_points: int = 0


@dataclass(frozen=True, slots=True)
class Conditions:
    activity_types: tuple[str, ...] = ()
    min_spend_minor: int = 0
    currency: str = ""
    skus: tuple[str, ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()
    tiers: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    required_opt_in: str = ""


@dataclass(frozen=True, slots=True)
class MemberLimit:
    period: LimitPeriod
    max_points: int


@dataclass(frozen=True, slots=True)
class Limits:
    member_limits: tuple[MemberLimit, ...] = ()
    max_members: int = 0


@dataclass(frozen=True, slots=True)
class Stacking:
    group: str = ""
    mode: StackingMode = StackingMode.STACKABLE
    priority: int = 0


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    display_name: str
    kind: CampaignKind
    schedule: ScheduleSpec
    reward: Reward = field(default_factory=Reward)
    conditions: Conditions = field(default_factory=Conditions)
    budget_points: int = 0
    limits: Limits = field(default_factory=Limits)
    stacking: Stacking = field(default_factory=Stacking)
    # What members are told about it.
    description: str = ""

    @property
    def is_bonus(self) -> bool:
        return self.kind is not CampaignKind.BASE_RULE


@dataclass(frozen=True, slots=True)
class Pause:
    """A manager's pause: from `start_us` until `end_us` (None: not resumed yet)."""

    start_us: int
    end_us: int | None = None

    def holds(self, instant_us: int) -> bool:
        return self.start_us <= instant_us and (self.end_us is None or instant_us < self.end_us)


@dataclass(frozen=True, slots=True)
class Campaign:
    campaign_id: str
    version: int
    spec: CampaignSpec
    status: CampaignStatus
    create_us: int
    update_us: int
    # Points funded into the budget account, and awarded net of clawbacks.
    budget_funded: int = 0
    budget_used: int = 0
    # Every pause, oldest first: activities are judged by when they happened.
    pauses: tuple[Pause, ...] = ()

    @property
    def budget_remaining(self) -> int:
        return self.budget_funded - self.budget_used

    @property
    def budget_account_id(self) -> str:
        return budget_account(self.campaign_id) if self.spec.is_bonus else ""

    def paused_at(self, instant_us: int) -> bool:
        """True when a pause held the campaign at that instant."""
        return any(pause.holds(instant_us) for pause in self.pauses)
