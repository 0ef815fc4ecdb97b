"""What every use case of the games works over (the store, the ledger, the
outbox, the clock, one lock per member) and the few helpers they share.

Correctness comes from inside each `store.write(work)`: a work reads what it
decides on and writes its decision in one transaction (the pending spin that
holds a member's nonce, the daily limit, a session already submitted). The
per-member lock only spares a member's concurrent calls work that would be
refused anyway; it is not what keeps nonces in order."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from services.games.domain.draw import SERVER_SEED_BYTES
from services.games.domain.records import SeedPair
from services.games.ledger import GamesLedger
from services.games.store import GamesUnit
from services.kit.clock import Clock
from services.kit.errors import AlreadyExists, NotFound, Violations
from services.kit.feeds import CommitSignal
from services.kit.ids import IdRule, check_id
from services.kit.outbox import LedgerOutbox
from services.kit.stores import UnitStore
from services.kit.text import shown


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: Counter[str] = Counter()

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] += 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                del self._locks[key]


def new_server_seed() -> bytes:
    return secrets.token_bytes(SERVER_SEED_BYTES)


@dataclass(frozen=True)
class Games:
    """The games service's dependencies, shared by every use case."""

    store: UnitStore[GamesUnit]
    ledger: GamesLedger
    outbox: LedgerOutbox[GamesUnit]
    clock: Clock
    members: KeyedLocks = field(default_factory=KeyedLocks)
    new_seed: Callable[[], bytes] = new_server_seed
    # Given by the store after each commit (its on_commit): wakes the plays feed.
    commits: CommitSignal = field(default_factory=CommitSignal)

    def active_pair(self, unit: GamesUnit, member_id: str, now_us: int) -> SeedPair:
        """The member's seed pair, committed on first use. The first client seed
        is random too, until the member chooses one."""
        pair = unit.active_seed_pair(member_id)
        if pair is None:
            pair = unit.insert_seed_pair(member_id, self.new_seed(), secrets.token_hex(8), now_us)
        return pair


def require(*checks: tuple[str, str, IdRule]) -> None:
    """INVALID_ARGUMENT naming every (field, value, rule) whose value breaks its rule."""
    violations = Violations()
    for name, value, rule in checks:
        check_id(violations, name, value, rule)
    violations.raise_if_any()


def create_once(existing, wanted, insert: Callable[[], object], conflict: AlreadyExists) -> bool:
    """Idempotent creation by id: insert when absent, accept the same
    configuration again, refuse another one. True when this call inserted."""
    if existing is None:
        insert()
        return True
    if existing != wanted:
        raise conflict
    return False


def wheel_not_found(wheel_id: str, version: int = 0) -> NotFound:
    return NotFound(
        "WHEEL_NOT_FOUND",
        f"no wheel {shown(wheel_id)}" + (f" with odds version {version}" if version else ""),
        {"wheel_id": wheel_id},
    )
