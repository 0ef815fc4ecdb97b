"""The catalog: what a reward is, what a valid spec looks like, and the ledger
units its price and stock are counted in. Pure: no grpc, no sqlite."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum

from services.kit.errors import Violations
from services.kit.ids import POINTS, PRIZE_UNIT, reward_stock_account, reward_unit
from services.kit.text import shown
from services.rewards.domain.zones import check_zone

MAX_TITLE = 200
MAX_DESCRIPTION = 2000
MAX_URL = 2000
MAX_PRICE = 10**12
MAX_LIST = 50
MAX_QUANTITY = 100
DEFAULT_CODE_LENGTH = 10
CODE_LENGTHS = range(6, 33)
# Tiers, segments and categories: labels a manager picks.
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
CURRENCY = re.compile(r"[A-Z]{3}")


class RewardKind(IntEnum):
    """Values equal the protobuf contract's."""

    UNSPECIFIED = 0
    CODE_POOL = 1
    GENERATED_CODE = 2
    PHYSICAL = 3
    CREDIT = 4
    PRIZE_UNIT = 5

    @property
    def gives_code(self) -> bool:
        return self in (RewardKind.CODE_POOL, RewardKind.GENERATED_CODE)


class CatalogLabel(IntEnum):
    """What the app shows on a catalog entry; values equal the protobuf contract's."""

    UNSPECIFIED = 0
    EARLY_ACCESS = 1
    COMING_SOON = 2
    SOLD_OUT = 3
    LIMIT_REACHED = 4


@dataclass(frozen=True, slots=True)
class Money:
    amount_minor: int = 0
    currency: str = ""

    def times(self, quantity: int) -> Money:
        return Money(self.amount_minor * quantity, self.currency)


@dataclass(frozen=True, slots=True)
class EarlyAccess:
    tier: str
    start_us: int


@dataclass(frozen=True, slots=True)
class Limits:
    """Units one member may redeem per local day, week, month and ever (0: no limit)."""

    per_day: int = 0
    per_week: int = 0
    per_month: int = 0
    total: int = 0

    @property
    def by_period(self) -> bool:
        return bool(self.per_day or self.per_week or self.per_month)


@dataclass(frozen=True, slots=True)
class RewardSpec:
    title: str
    kind: RewardKind
    price: int = 0
    price_unit: str = POINTS
    description: str = ""
    image_url: str = ""
    category: str = ""
    value: Money = field(default_factory=Money)
    credit_points: int = 0
    prize_unit: str = ""
    code_length: int = 0
    start_us: int | None = None
    end_us: int | None = None
    time_zone: str = "UTC"
    tiers: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    early_access: tuple[EarlyAccess, ...] = ()
    limits: Limits = field(default_factory=Limits)
    hidden: bool = False

    @property
    def needs_profile(self) -> bool:
        """Whether judging a redemption needs the member's tier, segments or zone."""
        return bool(self.tiers or self.segments or self.early_access or self.limits.by_period)

    @property
    def stock_unit(self) -> str:
        """What the stock account counts: the prize unit given, or the reward's own unit."""
        return self.prize_unit if self.kind == RewardKind.PRIZE_UNIT else ""

    @property
    def length_of_codes(self) -> int:
        return self.code_length or DEFAULT_CODE_LENGTH


@dataclass(frozen=True, slots=True)
class Reward:
    reward_id: str
    version: int
    spec: RewardSpec
    archived: bool = False
    created_us: int = 0
    updated_us: int = 0

    @property
    def stock_unit(self) -> str:
        return self.spec.stock_unit or reward_unit(self.reward_id)

    @property
    def stock_account(self) -> str:
        return reward_stock_account(self.reward_id)


def _labels(violations: Violations, path: str, values: tuple[str, ...]) -> None:
    if len(values) > MAX_LIST:
        violations.add(path, f"at most {MAX_LIST} entries")
        return
    for index, value in enumerate(values):
        if not LABEL.fullmatch(value):
            violations.add(
                f"{path}[{index}]",
                f"must be 1 to 40 letters, digits or . _ - , got {shown(value)}",
            )


def check_text(violations: Violations, path: str, value: str, limit: int, required=False) -> None:
    if required and not value.strip():
        violations.add(path, "is required")
    elif len(value) > limit:
        violations.add(path, f"must be at most {limit:,} characters, got {len(value):,}")
    elif any(ord(character) < 32 and character not in "\n\t" for character in value):
        violations.add(path, "must not hold control characters")


def check_unit(violations: Violations, path: str, unit: str) -> None:
    if not PRIZE_UNIT.matches(unit):
        violations.add(path, f"{PRIZE_UNIT.description}, got {shown(unit)}")


def validate_spec(spec: RewardSpec, path: str = "spec") -> None:
    """Every problem of a spec at once, as field violations."""
    violations = Violations()
    check_text(violations, f"{path}.title", spec.title, MAX_TITLE, required=True)
    check_text(violations, f"{path}.description", spec.description, MAX_DESCRIPTION)
    if spec.image_url and not (
        spec.image_url.startswith("https://") and len(spec.image_url) <= MAX_URL
    ):
        violations.add(f"{path}.image_url", f"must be an https URL of at most {MAX_URL} characters")
    if spec.category:
        _labels(violations, f"{path}.category", (spec.category,))
    if spec.kind == RewardKind.UNSPECIFIED:
        violations.add(f"{path}.kind", "is required")
    if not 0 <= spec.price <= MAX_PRICE:
        violations.add(f"{path}.price", f"must be between 0 and {MAX_PRICE:,}")
    if spec.price_unit != POINTS:
        check_unit(violations, f"{path}.price_unit", spec.price_unit)
    if spec.value.amount_minor < 0 or spec.value.amount_minor > MAX_PRICE:
        violations.add(f"{path}.value.amount_minor", f"must be between 0 and {MAX_PRICE:,}")
    if (spec.value.amount_minor or spec.value.currency) and not CURRENCY.fullmatch(
        spec.value.currency
    ):
        violations.add(f"{path}.value.currency", "must be an ISO 4217 code such as EUR")
    if spec.kind == RewardKind.CREDIT:
        if not 0 <= spec.credit_points <= MAX_PRICE:
            violations.add(f"{path}.credit_points", f"must be between 0 and {MAX_PRICE:,}")
    elif spec.credit_points:
        violations.add(f"{path}.credit_points", "only for REWARD_KIND_CREDIT")
    if spec.kind == RewardKind.PRIZE_UNIT:
        check_unit(violations, f"{path}.prize_unit", spec.prize_unit)
    elif spec.prize_unit:
        violations.add(f"{path}.prize_unit", "only for REWARD_KIND_PRIZE_UNIT")
    if spec.code_length and spec.code_length not in CODE_LENGTHS:
        violations.add(f"{path}.code_length", "must be between 6 and 32 (0: 10)")
    if spec.start_us is not None and spec.end_us is not None and spec.end_us <= spec.start_us:
        violations.add(f"{path}.end_time", "must be after start_time")
    check_zone(violations, f"{path}.time_zone", spec.time_zone)
    _labels(violations, f"{path}.tiers", spec.tiers)
    _labels(violations, f"{path}.segments", spec.segments)
    if len(spec.early_access) > MAX_LIST:
        violations.add(f"{path}.early_access", f"at most {MAX_LIST} entries")
    else:
        _labels(violations, f"{path}.early_access.tier", tuple(e.tier for e in spec.early_access))
        tiers = [entry.tier for entry in spec.early_access]
        if len(set(tiers)) != len(tiers):
            violations.add(f"{path}.early_access", "names a tier twice")
        for index, entry in enumerate(spec.early_access):
            if spec.start_us is None or entry.start_us >= spec.start_us:
                violations.add(
                    f"{path}.early_access[{index}].start_time", "must be before start_time"
                )
    for name in ("per_day", "per_week", "per_month", "total"):
        if not 0 <= getattr(spec.limits, name) <= 1_000_000:
            violations.add(f"{path}.limits.{name}", "must be between 0 and 1,000,000")
    violations.raise_if_any()


def changed_identity(old: RewardSpec, new: RewardSpec) -> str:
    """What an update may not change (redemptions and stock depend on it), or ''."""
    for name in ("kind", "price_unit", "prize_unit"):
        if getattr(old, name) != getattr(new, name):
            return name
    return ""


def opens_at(spec: RewardSpec, tiers: frozenset[str]) -> int | None:
    """The first instant a member of `tiers` may redeem (None: from the start of time)."""
    early = [entry.start_us for entry in spec.early_access if entry.tier in tiers]
    if early:
        return min(early)
    return spec.start_us
