"""The plays audit log: every spin and catch play, appended in the transaction
that decides it, read by member or by game, oldest first; and the feed of its
results (WatchPlays), numbered without gaps in commit order, resumable from any
number. What a reader sees of a play that was not paid for is records.disclosed's
rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from services.games.base import Games
from services.games.domain.records import Play, PlayResult, disclosed
from services.kit.errors import Violations
from services.kit.feeds import FEED_PAGE, serve_pages
from services.kit.ids import MEMBER_ID, RESOURCE_ID, check_id
from services.kit.paging import Page, decode_page_token, page_of, page_size


class Plays:
    def __init__(self, games: Games) -> None:
        self._store = games.store
        self._commits = games.commits

    async def watch(self, after_sequence: int) -> AsyncIterator[PlayResult]:
        """Every result after `after_sequence`, in commit order, then each new one as
        it commits, forever. A consumer stores the last number it applied with what
        it derived, and resumes from it: nothing is missed or seen twice."""

        async def page(after: int) -> list[PlayResult]:
            return await self._store.read(lambda unit: unit.results_after(after, FEED_PAGE))

        async for result in serve_pages(page, after_sequence, self._commits):
            yield replace(result, play=disclosed(result.play))

    async def list_plays(
        self,
        member_id: str,
        game_id: str,
        start_us: int | None,
        end_us: int | None,
        requested_size: int,
        page_token: str,
    ) -> Page[Play]:
        violations = Violations()
        if member_id:
            check_id(violations, "member_id", member_id, MEMBER_ID)
        if game_id:
            check_id(violations, "game_id", game_id, RESOURCE_ID)
        violations.check(bool(member_id or game_id), "member_id", "give member_id, game_id or both")
        size = page_size(violations, requested_size)
        if start_us is not None and end_us is not None:
            violations.check(start_us < end_us, "end_time", "must be after start_time")
        violations.raise_if_any()
        query = ("plays", member_id, game_id, start_us, end_us)
        after = decode_page_token(page_token, query, int) or 0
        plays = await self._store.read(
            lambda unit: unit.list_plays(member_id, game_id, start_us, end_us, after, size + 1)
        )
        # Sequences follow commit order, so a page never skips or repeats a play.
        page = page_of(plays, size, lambda play: play.sequence, query)
        return Page([disclosed(play) for play in page.items], page.next_page_token)
