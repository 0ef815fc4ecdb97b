"""The gateway's rules: who may act as whom, how fast, for how long, from where.

Pure Python: no grpc, no HTTP, no JWT library. Time comes in as integer
microseconds read from the injected clock by the caller.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from services.kit.clock import MICROS_PER_SECOND
from services.kit.errors import FieldViolation, InvalidArgument, PermissionDenied

PLAYER = "player"
CAMPAIGN_MANAGER = "campaign-manager"
ADMIN = "admin"
KNOWN_ROLES = frozenset({PLAYER, CAMPAIGN_MANAGER, ADMIN})
MANAGER_ROLES = frozenset({CAMPAIGN_MANAGER, ADMIN})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as the verified token says: never from client headers."""

    subject: str
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    @property
    def is_manager(self) -> bool:
        return bool(self.roles & MANAGER_ROLES)


class Audience(Enum):
    """Which side of the API a method belongs to. PUBLIC methods need no token
    (gRPC reflection, which describes only what the gateway exposes); the
    address's rate limit still applies."""

    PLAYER = "player"
    MANAGER = "manager"
    PUBLIC = "public"


@dataclass(frozen=True, slots=True)
class AccessRule:
    """How one method is guarded.

    `member_field` names the request field (a dotted path) that holds the
    member the call acts for; a player may only name themselves there.
    `player_choices` limits what callers without a manager role may put in
    some fields (a player may report a share, not a purchase).
    `owner_field` names the answer's field (a dotted path) that holds the
    member the answer is about, for calls whose request names no member (a
    spin by its id): a player only receives their own.
    """

    audience: Audience
    member_field: str | None = None
    player_choices: tuple[tuple[str, frozenset[str]], ...] = ()
    owner_field: str | None = None
    # Reads a member's support team needs (wallet, profile, progress, a dry run):
    # managers may name any member there, as admins may everywhere.
    managers_name_any_member: bool = False


def acting_member(principal: Principal, requested: str, rule: AccessRule) -> str:
    """The member a player call acts for: the caller when none is named, the
    named member when it is the caller, anyone for an admin (and for a manager
    where the rule lets staff support members)."""
    if requested in ("", principal.subject):
        return principal.subject
    if principal.is_admin or (rule.managers_name_any_member and principal.is_manager):
        return requested
    roles = sorted(MANAGER_ROLES) if rule.managers_name_any_member else [ADMIN]
    raise PermissionDenied(
        "MEMBER_MISMATCH",
        "a player may only act as the member named in their token; acting for another"
        f" member needs the {' or '.join(roles)} role",
        {"member_id": requested, "roles": ",".join(roles)},
    )


def check_owner(principal: Principal, owner: str) -> None:
    """An answer about `owner` may reach the caller only when it is theirs (or an admin)."""
    if owner in ("", principal.subject) or principal.is_admin:
        return
    # Whose it is stays unsaid: naming the other member would leak it.
    raise PermissionDenied("MEMBER_MISMATCH", "a player may only see their own data")


POINTS = "points"
PRIZE_PREFIX = "prize:"
PRIZE_SLUG_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def wallet_account_id(member_id: str, unit: str) -> str:
    """The ledger account holding a member's unit: the member id for points,
    `<member id>/prize:<slug>` for a prize."""
    if unit in ("", POINTS):
        return member_id
    slug = unit.removeprefix(PRIZE_PREFIX)
    if unit.startswith(PRIZE_PREFIX) and slug and set(slug) <= PRIZE_SLUG_CHARACTERS:
        return f"{member_id}/{unit}"
    raise InvalidArgument(
        [FieldViolation("unit", "must be empty, 'points' or 'prize:<lower-case slug>'")]
    )


def authorize(principal: Principal, rule: AccessRule, chosen: Mapping[str, str]) -> None:
    """Manager calls need the campaign-manager or admin role; other callers may
    only choose the listed values in the rule's restricted fields."""
    if rule.audience is Audience.MANAGER and not principal.is_manager:
        raise PermissionDenied(
            "ROLE_REQUIRED",
            "this call needs the campaign-manager or admin role",
            {"roles": ",".join(sorted(MANAGER_ROLES))},
        )
    if principal.is_manager:
        return
    for field_path, allowed in rule.player_choices:
        value = chosen.get(field_path, "")
        if value not in allowed:
            raise PermissionDenied(
                "CHOICE_NOT_ALLOWED",
                f"a player may not send {field_path} {value!r}",
                {"field": field_path, "allowed": ",".join(sorted(allowed))},
            )


@dataclass(slots=True)
class TokenBucket:
    """`capacity` calls at once, refilled at `rate_per_second`."""

    capacity: float
    rate_per_second: float
    tokens: float
    updated_us: int

    def take(self, now_us: int) -> int:
        """Take one token; return 0 when allowed, else the microseconds until one is due."""
        elapsed = max(0, now_us - self.updated_us) / MICROS_PER_SECOND
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate_per_second)
        self.updated_us = max(self.updated_us, now_us)
        if self.tokens >= 1:
            self.tokens -= 1
            return 0
        missing = 1 - self.tokens
        return math.ceil(missing / self.rate_per_second * MICROS_PER_SECOND)


class RateLimiter:
    """One token bucket per key (a member or an address), bounded in memory:
    the least recently used key is forgotten first, which can only be generous."""

    def __init__(self, capacity: int, rate_per_second: float, max_keys: int = 100_000) -> None:
        if capacity < 1 or rate_per_second <= 0:
            raise ValueError("a rate limit needs a capacity >= 1 and a positive rate")
        self._capacity = capacity
        self._rate = rate_per_second
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str, now_us: int) -> int:
        """0 when the call may go ahead, else the microseconds to wait."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self._capacity, self._rate, float(self._capacity), now_us)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now_us)


def retry_after_seconds(wait_us: int) -> int:
    """Retry-After is whole seconds, rounded up so a client that obeys it succeeds."""
    return max(1, math.ceil(wait_us / MICROS_PER_SECOND))


@dataclass(frozen=True, slots=True)
class DeadlinePolicy:
    """The client's timeout is forwarded but capped; a default applies when none is sent.
    Streams live longer, so they have their own cap and default."""

    default_seconds: float
    max_seconds: float
    stream_max_seconds: float

    def upstream_timeout(self, client_timeout_seconds: float | None, *, stream: bool) -> float:
        cap = self.stream_max_seconds if stream else self.max_seconds
        if client_timeout_seconds is None:
            return cap if stream else min(self.default_seconds, cap)
        return max(0.0, min(client_timeout_seconds, cap))


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """Browsers may call from these origins only; `*` is refused on purpose
    because calls carry credentials."""

    allowed_origins: frozenset[str]

    @classmethod
    def of(cls, origins: Iterable[str]) -> CorsPolicy:
        cleaned = {origin.strip().rstrip("/") for origin in origins if origin.strip()}
        if "*" in cleaned:
            raise ValueError("CORS origins must be listed; '*' is not allowed")
        return cls(frozenset(cleaned))

    def allows(self, origin: str) -> bool:
        return origin in self.allowed_origins
