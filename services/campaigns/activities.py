"""What tracking and refunds share: the time rules of an activity, posting a
recorded chain through the outbox, and answering a delivery of an activity
already recorded (a replay)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from services.campaigns.base import UseCases
from services.campaigns.codec import to_plain
from services.campaigns.domain.model import Activity
from services.campaigns.domain.outcome import Outcome
from services.campaigns.domain.records import ActivityRecord, BudgetFigures
from services.campaigns.settlement import ActivitySettled, ActivityUndone
from services.kit.clock import MICROS_PER_SECOND
from services.kit.errors import AlreadyExists, FailedPrecondition, Unavailable
from services.kit.outbox import OutboxEntry

# A chain the ledger refuses (a budget drained outside this service, a wallet
# spent between a balance read and a clawback) is decided again, this many times.
ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Tracked:
    """The activity's outcome, and whether it answers an earlier delivery."""

    outcome: Outcome
    replayed: bool


@dataclass(frozen=True, slots=True)
class Recorded:
    """What a recording transaction did: a new decision with the outbox entry that
    posts it (None when there is nothing to post) and the budgets it drew on,
    or the record of an earlier delivery of the same activity; `stale`: nothing
    recorded, the catalog it decided from was behind the catalog feed."""

    outcome: Outcome | None = None
    entry: OutboxEntry | None = None
    budgets: dict[str, BudgetFigures] | None = None
    existing: ActivityRecord | None = None
    stale: bool = False


def first_difference(first, again, path: str) -> str:
    """The dotted path of the first field where two plain values differ."""
    if isinstance(first, dict) and isinstance(again, dict):
        for key in sorted(first.keys() | again.keys()):
            if first.get(key) != again.get(key):
                return first_difference(first.get(key), again.get(key), f"{path}.{key}")
    return path


class ActivityUseCases(UseCases):
    """The base of Tracking and Refunds."""

    def check_time(self, activity: Activity) -> None:
        assert activity.occur_us is not None
        now = self._clock.now_us()
        late_by = now - activity.occur_us - self._policy.lateness_seconds * MICROS_PER_SECOND
        if late_by > 0:
            raise FailedPrecondition(
                "ACTIVITY_TOO_LATE",
                f"activities count up to {self._policy.lateness_seconds} s after they happen",
                {"activity_id": activity.activity_id, "late_by_us": str(late_by)},
            )
        if activity.occur_us > now + self._policy.max_future_seconds * MICROS_PER_SECOND:
            raise FailedPrecondition(
                "ACTIVITY_IN_FUTURE",
                f"occur_time is more than {self._policy.max_future_seconds} s ahead of now",
                {"activity_id": activity.activity_id},
            )

    async def post(self, activity: Activity, recorded: Recorded) -> Outcome | ActivityUndone:
        """Post a recorded chain: the settled outcome with the member's balance, or
        what the ledger refused (the record is then undone)."""
        outcome = recorded.outcome
        assert outcome is not None
        if recorded.entry is None:
            # Nothing to post: settled when recorded; the balance is for the answer.
            wallet = await self._ledger.balance(activity.member_id)
            balance = wallet.balance if wallet is not None else 0
            await self._store.write(lambda unit: unit.set_balance(activity.activity_id, balance))
            return replace(outcome, balance=balance)
        settled = await self._outbox.settle(recorded.entry)
        if isinstance(settled, ActivitySettled):
            return replace(outcome, balance=settled.balance)
        if isinstance(settled, ActivityUndone):
            return settled
        # Another task (the relay, a concurrent delivery) settled it first.
        return await self._settled_elsewhere(activity)

    async def _settled_elsewhere(self, activity: Activity) -> Outcome:
        current = await self._store.read(lambda unit: unit.activity(activity.activity_id))
        if current is not None and current.settled:
            return current.outcome
        raise Unavailable(
            "ACTIVITY_IN_PROGRESS",
            f"activity {activity.activity_id} is being retried; ask again shortly",
            {"activity_id": activity.activity_id},
        )

    async def replay(self, record: ActivityRecord, activity: Activity) -> Outcome:
        """The first answer to an activity delivered again; ACTIVITY_ID_REUSED when
        the content differs."""
        first, again = to_plain(record.activity), to_plain(activity)
        if first != again:
            field = first_difference(first, again, "activity")
            raise AlreadyExists(
                "ACTIVITY_ID_REUSED",
                f"activity {activity.activity_id} was tracked with another {field}",
                {"activity_id": activity.activity_id, "field": field},
            )
        if record.settled or record.entry_id is None:
            return record.outcome
        # Still pending (a concurrent first delivery, or a crash): posting again is
        # idempotent, and whichever settles first applies the answer.
        entry_id = record.entry_id
        entry = await self._store.read(lambda unit: unit.outbox.entry(entry_id))
        if entry is not None:
            settled = await self._outbox.settle(entry)
            if isinstance(settled, ActivitySettled):
                return replace(record.outcome, balance=settled.balance)
        return await self._settled_elsewhere(activity)
