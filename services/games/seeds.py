"""Seed pairs: a member's committed server seed, their client seed and the nonce;
choosing the client seed, and rotating the pair, which reveals the server seed."""

from __future__ import annotations

from dataclasses import dataclass, replace

import structlog

from services.games.base import Games, require
from services.games.domain.records import SeedPair
from services.games.store import GamesUnit
from services.kit.errors import FailedPrecondition, Violations
from services.kit.ids import CLIENT_SEED, MEMBER_ID, check_id

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Rotation:
    revealed: SeedPair
    current: SeedPair


def refuse_while_pending(unit: GamesUnit, member_id: str) -> None:
    """A pending spin was drawn with the pair's current seeds and nonce: they may
    not change until it is settled."""
    pending = unit.pending_spin_of(member_id)
    if pending is not None:
        raise FailedPrecondition(
            "SPIN_IN_PROGRESS",
            "a spin of this member is being settled; try again shortly",
            {"spin_id": pending.spin_id},
        )


class Seeds:
    def __init__(self, games: Games) -> None:
        self._games = games
        self._store = games.store

    async def get_seed_pair(self, member_id: str) -> SeedPair:
        require(("member_id", member_id, MEMBER_ID))
        pair = await self._store.read(lambda unit: unit.active_seed_pair(member_id))
        if pair is not None:
            return pair
        now = self._games.clock.now_us()
        return await self._store.write(lambda unit: self._games.active_pair(unit, member_id, now))

    async def set_client_seed(self, member_id: str, client_seed: str) -> SeedPair:
        require(("member_id", member_id, MEMBER_ID), ("client_seed", client_seed, CLIENT_SEED))
        games = self._games

        def change(unit: GamesUnit) -> SeedPair:
            refuse_while_pending(unit, member_id)
            pair = games.active_pair(unit, member_id, games.clock.now_us())
            unit.set_client_seed(pair.pair_id, client_seed)
            return replace(pair, client_seed=client_seed)

        async with games.members.hold(member_id):
            return await self._store.write(change)

    async def rotate_seed(self, member_id: str, client_seed: str) -> Rotation:
        violations = Violations()
        check_id(violations, "member_id", member_id, MEMBER_ID)
        if client_seed:
            check_id(violations, "client_seed", client_seed, CLIENT_SEED)
        violations.raise_if_any()
        games = self._games

        def rotate(unit: GamesUnit) -> Rotation:
            refuse_while_pending(unit, member_id)
            now = games.clock.now_us()
            old = games.active_pair(unit, member_id, now)
            unit.reveal_seed_pair(old.pair_id, now)
            new = unit.insert_seed_pair(
                member_id, games.new_seed(), client_seed or old.client_seed, now
            )
            return Rotation(replace(old, revealed_us=now), new)

        async with games.members.hold(member_id):
            rotation = await self._store.write(rotate)
        log.info("seed_rotated", member_id=member_id, revealed=rotation.revealed.commitment)
        return rotation
