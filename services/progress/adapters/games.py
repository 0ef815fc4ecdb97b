"""Games' WatchPlays as progress events.

Fields read from each WatchPlaysResponse (see docs/progress.md): `sequence`;
`play.play_id` (the spin or catch session id), `.member_id`, `.kind`
(PLAY_KIND_SPIN or PLAY_KIND_CATCH), `.game_id` (wheel or catch game),
`.play_time`, `.points_won`, `.score` (a catch's score)."""

from __future__ import annotations

from typing import Any

from loyalty.games.v1 import games_service_pb2 as games_pb

from services.kit.feeds import FeedItem
from services.progress.adapters.contract import find_contract
from services.progress.domain.events import Event, PlayEvent, PlayKind

FEED = "games"
KINDS = {"PLAY_KIND_SPIN": PlayKind.SPIN, "PLAY_KIND_CATCH": PlayKind.CATCH}
CONTRACT = find_contract(
    games_pb, "GamesService", "WatchPlays", "WatchPlaysRequest", "WatchPlaysResponse"
)


def item_of(response: Any) -> FeedItem[list[Event]]:
    play = response.play
    values = play.DESCRIPTOR.fields_by_name["kind"].enum_type.values_by_number
    kind = KINDS.get(values[play.kind].name if play.kind in values else "")
    at = play.play_time.ToMicroseconds()
    if kind is None or not play.member_id:
        return FeedItem(response.sequence, [], at)  # nothing progress counts
    event = PlayEvent(
        play_id=play.play_id,
        member_id=play.member_id,
        kind=kind,
        game_id=play.game_id,
        occur_us=at,
        points_won=play.points_won,
        score=play.score,
    )
    return FeedItem(response.sequence, [event], at)
