"""The campaigns service's types. Times are UTC integer microseconds."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

# The schedule types moved to the kit with the schedule code; re-exported for campaigns.
from services.kit.schedule import LimitPeriod, LocalTime, ScheduleSpec, ZoneMode  # noqa: F401


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


PURCHASE = "purchase"
REFUND = "refund"
REFERRAL_INVITE_SENT = "referral_invite_sent"
REFERRAL_SIGNUP = "referral_signup"
WELL_KNOWN_TYPES = frozenset(
    {
        PURCHASE,
        REFUND,
        "social_share",
        "product_review",
        "profile_completed",
        "app_login",
        REFERRAL_INVITE_SENT,
        REFERRAL_SIGNUP,
        "referral_first_purchase",
        "game_played",
    }
)


@dataclass(frozen=True, slots=True)
class Birthday:
    month: int
    day: int
    year: int = 0


@dataclass(frozen=True, slots=True)
class Member:
    member_id: str
    time_zone: str = ""
    birthday: Birthday | None = None
    tier: str = ""
    segments: tuple[str, ...] = ()
    referrer_member_id: str = ""
    opt_ins: tuple[str, ...] = ()
    create_us: int = 0
    update_us: int = 0


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
    occur_us: int
    purchase: Purchase | None = None
    refund: Refund | None = None
    attributes: tuple[tuple[str, str], ...] = ()

    def attribute(self, name: str) -> str | None:
        return dict(self.attributes).get(name)


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

    @property
    def is_bonus(self) -> bool:
        return self.kind is not CampaignKind.BASE_RULE


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

    @property
    def budget_remaining(self) -> int:
        return self.budget_funded - self.budget_used

    @property
    def budget_account_id(self) -> str:
        return budget_account_id(self.campaign_id) if self.spec.is_bonus else ""


def budget_account_id(campaign_id: str) -> str:
    return f"campaign:{campaign_id}:budget"
