"""What the feeds tell progress, as plain values. Each feed's adapter turns its
protobuf messages into these; the domain never sees a message.

Every event has a source (the feed) and a key unique within it (a transfer,
activity or play id), so an event delivered twice is recorded once."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Source(Enum):
    LEDGER = "ledger"
    CAMPAIGNS = "campaigns"
    GAMES = "games"
    # What progress records itself: a member joining an opt-in challenge.
    PROGRESS = "progress"


class PlayKind(Enum):
    SPIN = "SPIN"
    CATCH = "CATCH"


@dataclass(frozen=True, slots=True)
class PointsCredited:
    """Points credited to a member's wallet (ledger: posted, or a hold posted)."""

    transfer_id: str
    member_id: str
    # The ledger's transfer code without its prefix: "EARN", "BONUS", "GAME_PRIZE"...
    code: str
    amount: int
    commit_us: int
    # The activity that earned it (metadata activity_id), whose event time it counts at.
    activity_id: str = ""

    source = Source.LEDGER

    @property
    def key(self) -> str:
        return self.transfer_id


@dataclass(frozen=True, slots=True)
class PointsReversed:
    """A reversal (a refund clawed back, a correction) of an earlier credit."""

    transfer_id: str
    member_id: str
    reversed_id: str
    amount: int
    commit_us: int

    source = Source.LEDGER

    @property
    def key(self) -> str:
        return self.transfer_id


@dataclass(frozen=True, slots=True)
class ActivityEvent:
    """An activity campaigns tracked, with the time it happened."""

    activity_id: str
    member_id: str
    type: str
    occur_us: int
    points: int = 0
    # The member's IANA zone as campaigns knew it (empty: unknown).
    time_zone: str = ""
    # A purchase's amount, or a refund's, in minor units.
    amount_minor: int = 0
    # For a refund: the purchase it refunds.
    refunds_activity_id: str = ""
    attributes: tuple[tuple[str, str], ...] = ()

    source = Source.CAMPAIGNS

    @property
    def key(self) -> str:
        return self.activity_id


@dataclass(frozen=True, slots=True)
class PlayEvent:
    """A spin or a catch game's result."""

    play_id: str
    member_id: str
    kind: PlayKind
    game_id: str
    occur_us: int
    points_won: int = 0
    score: int = 0

    source = Source.GAMES

    @property
    def key(self) -> str:
        return self.play_id


@dataclass(frozen=True, slots=True)
class ChallengeJoined:
    """A member opted in to a challenge."""

    challenge_id: str
    member_id: str
    occur_us: int

    source = Source.PROGRESS

    @property
    def key(self) -> str:
        return f"join:{self.challenge_id}:{self.member_id}"


Event = PointsCredited | PointsReversed | ActivityEvent | PlayEvent | ChallengeJoined


@dataclass(frozen=True, slots=True)
class Recorded:
    """An event as the journal holds it: in the order it was applied."""

    sequence: int
    event: Event
