"""The feeds progress serves: every tier change (campaigns and rewards follow
it) and each member's achievements, gapless and in commit order (the sequence
is assigned in the transaction that records the change), resumable."""

from __future__ import annotations

from collections.abc import AsyncIterator

from services.kit.errors import Violations
from services.kit.feeds import FEED_PAGE, serve_pages
from services.kit.ids import check_id
from services.progress.base import ProgressBase
from services.progress.domain.definitions import DEFINITION_ID
from services.progress.domain.records import Achievement, TierChange
from services.progress.members import check_member


class WatchUseCases(ProgressBase):
    async def tier_changes(self, after_sequence: int, program_id: str) -> AsyncIterator[TierChange]:
        if program_id:
            violations = Violations()
            check_id(violations, "program_id", program_id, DEFINITION_ID)
            violations.raise_if_any()

        async def page(after: int) -> list[TierChange]:
            return await self._store.read(
                lambda unit: unit.tier_changes(after, program_id, FEED_PAGE)
            )

        async for change in serve_pages(page, after_sequence, self.commits):
            yield change

    async def achievements(self, member_id: str, after_sequence: int) -> AsyncIterator[Achievement]:
        check_member(member_id)

        async def page(after: int) -> list[Achievement]:
            return await self._store.read(
                lambda unit: unit.achievements(member_id, after, FEED_PAGE)
            )

        async for achievement in serve_pages(page, after_sequence, self.commits):
            yield achievement
