"""What progress records about a member: their tier per program, tier changes,
awards (badge levels, streak milestones, completed challenges) and the
achievements members watch."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum


class AwardKind(Enum):
    TIER_CHANGED = "TIER_CHANGED"
    BADGE = "BADGE"
    STREAK_MILESTONE = "STREAK_MILESTONE"
    CHALLENGE = "CHALLENGE"


class ChangeReason(Enum):
    QUALIFIED = "QUALIFIED"
    POINTS_REVERSED = "POINTS_REVERSED"
    PERIOD_ENDED = "PERIOD_ENDED"
    FLOOR_SET = "FLOOR_SET"
    FLOOR_EXPIRED = "FLOOR_EXPIRED"
    PROGRAM_CHANGED = "PROGRAM_CHANGED"
    PROGRAM_ARCHIVED = "PROGRAM_ARCHIVED"


@dataclass(frozen=True, slots=True)
class RecordedTier:
    """The tier last recorded (and announced) for a member in a program."""

    program_id: str
    member_id: str
    tier_id: str
    since_us: int
    kept_until_us: int | None
    next_review_us: int | None


@dataclass(frozen=True, slots=True)
class TierChange:
    sequence: int
    program_id: str
    member_id: str
    from_tier: str
    to_tier: str
    upgrade: bool
    reason: str
    change_us: int
    kept_until_us: int | None
    # The program's tier ids, lowest first, when the change was recorded: a
    # follower compares tiers (campaigns' manual floor) without asking for the program.
    tier_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Award:
    """A badge level, streak milestone or challenge window a member earned,
    recorded once; `state` says whether its points were paid."""

    member_id: str
    kind: AwardKind
    definition_id: str
    detail: str
    points: int
    budget_id: str
    award_us: int
    entry_id: str
    state: str
    refusal: str = ""


@dataclass(frozen=True, slots=True)
class Achievement:
    sequence: int
    member_id: str
    kind: AwardKind
    definition_id: str
    detail: str
    points: int
    achieve_us: int


def reward_transfer_id(kind: AwardKind, definition_id: str, detail: str, member_id: str) -> str:
    """The ledger transfer id (and outbox entry id) of an award's points: derived,
    so a retry or a rebuild can only ever name the same transfer. Hashed because
    a definition id, a detail and a member id together can pass the ledger's
    128 characters; the transfer's metadata carries each of them in clear."""
    digest = hashlib.sha256(f"{kind.value}|{definition_id}|{detail}|{member_id}".encode())
    return f"progress:award:{digest.hexdigest()[:40]}"
