"""What the games service keeps: wheel versions, seed pairs, spins, catch games
and sessions, prize stockings and the plays audit log, as plain values the store
returns; the ids derived from business keys; and what a play may disclose."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from enum import StrEnum

from services.games.domain.catch import CatchConfig, CatchVerdict
from services.games.domain.wheel import Prize, WheelConfig


def derived_id(prefix: str, *parts: str) -> str:
    """A stable id from business keys, so a retry finds the same play."""
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return f"{prefix}-{digest[:32]}"


def spin_id(member_id: str, request_id: str) -> str:
    return derived_id("s", member_id, request_id)


def catch_session_id(game_id: str, member_id: str, request_id: str) -> str:
    return derived_id("c", game_id, member_id, request_id)


@dataclass(frozen=True, slots=True)
class WheelVersion:
    wheel_id: str
    version: int
    config: WheelConfig
    sold_out: tuple[int, ...]
    config_sha256: str
    create_us: int
    wheel_create_us: int


@dataclass(frozen=True, slots=True)
class SeedPair:
    pair_id: int
    member_id: str
    server_seed: bytes
    commitment: str
    client_seed: str
    next_nonce: int
    revealed_us: int | None = None


class SpinStatus(StrEnum):
    PENDING = "pending"
    SETTLED = "settled"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class SpinRecord:
    spin_id: str
    wheel_id: str
    version: int
    member_id: str
    request_id: str
    pair_id: int
    client_seed: str
    nonce: int
    draw_value: int
    drawn_index: int
    landed_index: int
    fallback_reason: str | None
    prize: Prize
    status: SpinStatus
    reason: str | None
    # The outbox entry that settles it (its fallback's, once it fell back).
    entry_id: str | None
    transfer_ids: tuple[str, ...]
    points_balance_after: int | None
    day: str
    spins_today: int
    create_us: int


@dataclass(frozen=True, slots=True)
class CatchGame:
    game_id: str
    config: CatchConfig
    create_us: int


class SessionStatus(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    SETTLED = "settled"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CatchSession:
    session_id: str
    game_id: str
    member_id: str
    request_id: str
    seed: bytes
    start_us: int
    expire_us: int
    status: SessionStatus = SessionStatus.OPEN
    fingerprint: str | None = None
    score: int | None = None
    awarded: int | None = None
    verdicts: tuple[CatchVerdict, ...] = ()
    # The award's ledger transfer id, which is also its outbox entry's id.
    transfer_id: str | None = None
    day: str | None = None
    week: str | None = None
    daily_points_left: int | None = None
    submit_us: int | None = None
    # Why its basket trace is not a person's (catch.Finding); empty when none.
    findings: tuple[str, ...] = ()


class StockingStatus(StrEnum):
    PENDING = "pending"
    SETTLED = "settled"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Stocking:
    """Stock added to a wheel's prize pool; the transfer id is its outbox entry's id."""

    transfer_id: str
    wheel_id: str
    unit: str
    quantity: int
    request_id: str
    status: StockingStatus
    reason: str | None
    create_us: int


@dataclass(frozen=True, slots=True)
class LeaderboardRow:
    rank: int
    member_id: str
    best_score: int
    achieve_us: int


# ---------------------------------------------------------------- the audit log


class PlayKind(StrEnum):
    SPIN = "spin"
    CATCH = "catch"


class PlayStatus(StrEnum):
    PENDING = "pending"
    SETTLED = "settled"
    FALLBACK = "fallback"
    REJECTED = "rejected"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Counters:
    nonce: int = 0
    spins_today: int = 0
    points_today: int = 0


@dataclass(frozen=True, slots=True)
class DrawProof:
    """What a spin was drawn from; the draw itself only once it was paid for."""

    server_seed_sha256: str
    client_seed: str
    nonce: int
    odds_version: int
    draw_value: int | None = None
    drawn_index: int | None = None


@dataclass(frozen=True, slots=True)
class PlayDetail:
    proof: DrawProof | None = None
    landed_index: int | None = None
    prize: Prize | None = None
    verdicts: tuple[CatchVerdict, ...] = ()
    transfer_ids: tuple[str, ...] = ()
    counters_before: Counters | None = None
    counters_after: Counters | None = None
    # For catches: the session's score.
    score: int | None = None


@dataclass(frozen=True, slots=True)
class PlayEntry:
    """An audit entry to append, in the same transaction as what it records."""

    play_id: str
    kind: PlayKind
    game_id: str
    member_id: str
    status: PlayStatus
    reason: str | None
    create_us: int
    detail: PlayDetail = PlayDetail()


@dataclass(frozen=True, slots=True)
class Play:
    sequence: int
    entry: PlayEntry


@dataclass(frozen=True, slots=True)
class PlayResult:
    """A result in the plays feed: its gapless number there, and the play."""

    sequence: int
    play: Play


UNPAID = frozenset({PlayStatus.PENDING, PlayStatus.REJECTED, PlayStatus.FAILED})


def disclosed(play: Play) -> Play:
    """What a reader may see of a play. A draw that was not paid for (pending: its
    cost not yet taken; refused: it never will be) reveals nothing of its outcome:
    its nonce is drawn again by the next paid spin, so showing the drawn segment,
    the draw value, the landing, the prize or a fallback reason would tell the
    member what that spin gives before they pay for it."""
    entry = play.entry
    if entry.status not in UNPAID:
        return play
    detail = entry.detail
    proof = detail.proof and replace(detail.proof, draw_value=None, drawn_index=None)
    hidden = PlayDetail(
        proof=proof,
        verdicts=detail.verdicts,
        score=detail.score,
        counters_before=detail.counters_before,
        counters_after=detail.counters_after if entry.status != PlayStatus.PENDING else None,
    )
    reason = entry.reason if entry.status != PlayStatus.PENDING else None
    return Play(play.sequence, replace(entry, detail=hidden, reason=reason))
