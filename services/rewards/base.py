"""What every rewards use case shares: the store, the clock, the ledger, the
outbox, member profiles, and driving a chain of outbox entries to its end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.kit.clock import Clock
from services.kit.errors import NotFound, Violations
from services.kit.ids import IdRule, check_id
from services.kit.outbox import LedgerOutbox, OutboxEntry
from services.kit.paging import decode_page_token, page_size
from services.kit.stores import UnitStore
from services.rewards.domain.catalog import Reward
from services.rewards.ledger import RewardsLedger
from services.rewards.profiles import MemberProfiles
from services.rewards.store import RewardsUnit

MAX_POSITION = 2**62


@dataclass(frozen=True, slots=True)
class Step:
    """Where a piece of work stands: its row, and the outbox entry to settle next
    (None when nothing is left to post)."""

    value: Any
    next: OutboxEntry | None = None


@dataclass
class Context:
    store: UnitStore[RewardsUnit]
    clock: Clock
    ledger: RewardsLedger
    outbox: LedgerOutbox[RewardsUnit]
    profiles: MemberProfiles


class UseCases:
    def __init__(self, context: Context) -> None:
        self._context = context
        self._store = context.store
        self._clock = context.clock
        self._ledger = context.ledger
        self._outbox = context.outbox
        self._profiles = context.profiles

    async def _drive(self, step: Step, reread: Callable[[RewardsUnit], Step]) -> Any:
        """Settle entries until none is left. When another task applied an entry
        first (the relay, or a retry of the same request), read where things
        stand and go on from there. An unreachable ledger raises UNAVAILABLE and
        leaves the rest to the relay."""
        while step.next is not None:
            settled = await self._outbox.settle(step.next)
            step = settled if settled is not None else await self._store.read(reread)
        return step.value


def require(*checks: tuple[str, str, IdRule]) -> None:
    """Each (field, value, rule) checked at once; INVALID_ARGUMENT naming every bad field."""
    violations = Violations()
    for field, value, rule in checks:
        check_id(violations, field, value, rule)
    violations.raise_if_any()


def paging(requested: int, token: str, query: tuple, kind: type) -> tuple[int, Any]:
    violations = Violations()
    size = page_size(violations, requested)
    violations.raise_if_any()
    return size, decode_page_token(token, query, kind)


def reward_or_404(unit: RewardsUnit, reward_id: str) -> Reward:
    reward = unit.reward(reward_id)
    if reward is None:
        raise NotFound("REWARD_NOT_FOUND", f"no reward {reward_id}", {"reward_id": reward_id})
    return reward
