"""Games' WatchPlays as progress events.

Fields read from each WatchPlaysResponse (see docs/progress.md): `sequence`;
`play.play_id` (the spin or catch session id), `.member_id`, `.kind`
(PLAY_KIND_SPIN or PLAY_KIND_CATCH), `.game_id` (wheel or catch game),
`.status`, `.create_time` (when games recorded the result: the event time),
`.prize.points` (points won; 0 for a prize item or nothing), `.score` (a
catch's score).

Only PLAY_STATUS_SETTLED and PLAY_STATUS_FALLBACK are plays: the member paid
and games settled them in the ledger (a fallback spin landed on the wheel's
"try again" slice because the drawn prize was sold out or capped, and it
counts against the member's spins of the day like any other). A
PLAY_STATUS_REJECTED result was refused (not enough points, the daily limit,
a ledger refusal, an implausible catch trace): nothing was charged or
awarded, so it is not a spin and moves the cursor only. Pending entries are
not in the feed."""

from __future__ import annotations

from loyalty.games.v1 import games_service_pb2 as games_pb

from services.kit.feeds import FeedItem
from services.progress.adapters.contract import find_contract
from services.progress.domain.events import Event, PlayEvent, PlayKind

FEED = "games"
KINDS = {games_pb.PLAY_KIND_SPIN: PlayKind.SPIN, games_pb.PLAY_KIND_CATCH: PlayKind.CATCH}
RESULTS = frozenset({games_pb.PLAY_STATUS_SETTLED, games_pb.PLAY_STATUS_FALLBACK})
CONTRACT = find_contract(
    games_pb, "GamesService", "WatchPlays", "WatchPlaysRequest", "WatchPlaysResponse"
)


def item_of(response: games_pb.WatchPlaysResponse) -> FeedItem[list[Event]]:
    play = response.play
    at = play.create_time.ToMicroseconds()
    kind = KINDS.get(play.kind)
    if kind is None or play.status not in RESULTS or not play.member_id:
        return FeedItem(response.sequence, [], at)  # nothing progress counts
    event = PlayEvent(
        play_id=play.play_id,
        member_id=play.member_id,
        kind=kind,
        game_id=play.game_id,
        occur_us=at,
        # The oneof's other arm (a prize item) or no prize reads as 0 points.
        points_won=play.prize.points,
        score=play.score,
    )
    return FeedItem(response.sequence, [event], at)
