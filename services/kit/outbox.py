"""Local intent first, then the ledger: nothing is lost or posted twice when a
process dies between recording a decision and posting it, and nothing is left
half applied when it dies after the ledger answered.

1. A use case records the PostTransfersRequest it intends, with an explicit
   kind, in the same transaction as its own rows (`unit.outbox.record`).
2. `LedgerOutbox.settle` posts it, through unary calls or a kit StreamPoster
   (one PostTransfersStream per channel). Transfer ids are idempotency keys, so
   posting again after a crash, or from two tasks, or after a stream broke
   before its answer came (UNAVAILABLE, like a lost unary answer), commits once.
3. Closing the entry and applying what the answer means to the service's own
   rows (the kind's handler) are one transaction: an entry is either pending
   with nothing applied, or closed with its meaning applied.

The relay posts what is still pending once its own request had time to do it
(a crash, an unreachable ledger), with one policy for every service:
exponential backoff per entry, the entry's age in every log line. Claiming an
entry pushes its next attempt out first (a lease), so with several replicas on
one database each due entry is tried by one of them at a time.

Metrics: the relay counts its retries by kind and outcome; `watch_backlog` serves
the entries pending and the age of the oldest, read from the store at scrape time
(a figure of the database, the same from every replica).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import grpc
import structlog
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.kit.chains import ChainAnswer
from services.kit.clock import MICROS_PER_SECOND, Clock
from services.kit.errors import Unavailable
from services.kit.ledger_stream import LedgerPoster, poster_of
from services.kit.metrics import Metrics, OutboxMetrics, gauge
from services.kit.outgoing import call_with_retry
from services.kit.postgres import skip_locked

log = structlog.get_logger()

OUTBOX_MIGRATION = """
CREATE TABLE ledger_outbox (
  entry_id TEXT PRIMARY KEY,
  request BLOB NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'settled', 'failed')),
  created_at INTEGER NOT NULL,
  settled_at INTEGER,
  response BLOB,
  error TEXT
);
CREATE INDEX ledger_outbox_pending ON ledger_outbox (created_at) WHERE state = 'pending';
"""
# Each entry says what it is (one handler per kind) and when the relay may try it.
# A service adds the UPDATE that gives its older entries their kinds.
OUTBOX_KINDS_MIGRATION = """
ALTER TABLE ledger_outbox ADD COLUMN kind TEXT NOT NULL DEFAULT '';
ALTER TABLE ledger_outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger_outbox ADD COLUMN next_attempt_at INTEGER NOT NULL DEFAULT 0;
DROP INDEX ledger_outbox_pending;
CREATE INDEX ledger_outbox_due ON ledger_outbox (next_attempt_at) WHERE state = 'pending';
"""

# Both migrations above in PostgreSQL's types, for a service's PostgreSQL schema.
PG_OUTBOX_MIGRATION = """
CREATE TABLE ledger_outbox (
  entry_id TEXT PRIMARY KEY,
  request BYTEA NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'settled', 'failed')),
  created_at BIGINT NOT NULL,
  settled_at BIGINT,
  response BYTEA,
  error TEXT,
  kind TEXT NOT NULL DEFAULT '',
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX ledger_outbox_due ON ledger_outbox (next_attempt_at) WHERE state = 'pending';
"""


@dataclass(frozen=True, slots=True)
class RelayPolicy:
    # A new entry is left to the request that recorded it for this long.
    grace_us: int = 5 * MICROS_PER_SECOND
    first_backoff_us: int = 1 * MICROS_PER_SECOND
    max_backoff_us: int = 60 * MICROS_PER_SECOND
    batch: int = 200

    def backoff_us(self, attempts: int) -> int:
        """How long after its `attempts`-th try an entry is tried again."""
        return min(self.max_backoff_us, self.first_backoff_us << min(max(attempts - 1, 0), 20))


POLICY = RelayPolicy()
EVERYTHING_US = 2**62


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    entry_id: str
    kind: str
    request: ledger_pb.PostTransfersRequest
    created_us: int
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Backlog:
    pending: int
    oldest_created_us: int | None


class OutboxUnit(Protocol):
    """The outbox's part of a service's unit of work."""

    def record(
        self, entry_id: str, kind: str, request: ledger_pb.PostTransfersRequest, now_us: int
    ) -> OutboxEntry: ...
    def entry(self, entry_id: str) -> OutboxEntry | None: ...
    def claim_due(self, due_by_us: int, now_us: int, limit: int) -> list[OutboxEntry]: ...
    def close(
        self, entry_id: str, answer: ChainAnswer | None, error: str | None, now_us: int
    ) -> bool: ...
    def backlog(self) -> Backlog: ...


class HasOutbox(Protocol):
    outbox: OutboxUnit


ENTRY_COLUMNS = "entry_id, kind, request, created_at, attempts"


def _entry(row) -> OutboxEntry:
    entry_id, kind, request, created_us, attempts = row
    return OutboxEntry(
        entry_id, kind, ledger_pb.PostTransfersRequest.FromString(request), created_us, attempts
    )


class SqliteOutbox:
    """The ledger_outbox table, inside the caller's transaction."""

    def __init__(self, connection: sqlite3.Connection, policy: RelayPolicy = POLICY) -> None:
        self._db = connection
        self._policy = policy

    def record(
        self, entry_id: str, kind: str, request: ledger_pb.PostTransfersRequest, now_us: int
    ) -> OutboxEntry:
        self._db.execute(
            "INSERT INTO ledger_outbox (entry_id, kind, request, state, created_at,"
            " next_attempt_at) VALUES (?, ?, ?, 'pending', ?, ?)",
            (entry_id, kind, request.SerializeToString(), now_us, now_us + self._policy.grace_us),
        )
        return OutboxEntry(entry_id, kind, request, now_us)

    def entry(self, entry_id: str) -> OutboxEntry | None:
        row = self._db.execute(
            f"SELECT {ENTRY_COLUMNS} FROM ledger_outbox WHERE entry_id = ? AND state = 'pending'",
            (entry_id,),
        ).fetchone()
        return _entry(row) if row else None

    def claim_due(self, due_by_us: int, now_us: int, limit: int) -> list[OutboxEntry]:
        """Pending entries whose next attempt is due by `due_by_us`, oldest first,
        each leased until its next attempt after this one, counted from `now_us`
        (recovery claims everything, but its backoff still starts now). On
        PostgreSQL the rows another replica is claiming are skipped, not waited for."""
        entries = [
            _entry(row)
            for row in self._db.execute(
                f"SELECT {ENTRY_COLUMNS} FROM ledger_outbox"
                " WHERE state = 'pending' AND next_attempt_at <= ?"
                f" ORDER BY next_attempt_at, entry_id LIMIT ?{skip_locked(self._db)}",
                (due_by_us, limit),
            ).fetchall()
        ]
        self._db.executemany(
            "UPDATE ledger_outbox SET attempts = ?, next_attempt_at = ? WHERE entry_id = ?",
            [
                (e.attempts + 1, now_us + self._policy.backoff_us(e.attempts + 1), e.entry_id)
                for e in entries
            ],
        )
        return [
            OutboxEntry(e.entry_id, e.kind, e.request, e.created_us, e.attempts + 1)
            for e in entries
        ]

    def close(
        self, entry_id: str, answer: ChainAnswer | None, error: str | None, now_us: int
    ) -> bool:
        """pending -> settled (the ledger answered) or failed (it refused the request
        itself); False when another task closed it first."""
        cursor = self._db.execute(
            "UPDATE ledger_outbox SET state = ?, settled_at = ?, response = ?, error = ?"
            " WHERE entry_id = ? AND state = 'pending'",
            (
                "settled" if answer is not None else "failed",
                now_us,
                answer.response.SerializeToString() if answer is not None else None,
                error,
                entry_id,
            ),
        )
        return cursor.rowcount == 1

    def backlog(self) -> Backlog:
        pending, oldest = self._db.execute(
            "SELECT COUNT(*), MIN(created_at) FROM ledger_outbox WHERE state = 'pending'"
        ).fetchone()
        return Backlog(pending, oldest)


@dataclass(frozen=True, slots=True)
class Settlement:
    """What the ledger made of an entry: its answer, or, when it refused the
    request as malformed (INVALID_ARGUMENT, a bug of ours), why."""

    entry: OutboxEntry
    answer: ChainAnswer | None
    error: str | None = None


U = TypeVar("U", bound=HasOutbox)
# Applies a settlement to the service's rows, inside the transaction that closes the entry.
Handler = Callable[[Any, Settlement], Any]


class Store(Protocol[U]):
    async def write(self, work: Callable[[U], Any]) -> Any: ...


class Readable(Protocol[U]):
    def read(self, work: Callable[[U], Any]) -> Awaitable[Any]: ...


def watch_backlog(metrics: Metrics, store: Readable, clock: Clock) -> None:
    """Serve the outbox's backlog: entries pending (a new one is pending for the
    moment its own request posts it) and how old the oldest is, by `clock`."""

    async def read() -> Backlog:
        return await store.read(lambda unit: unit.outbox.backlog())

    def families(backlog: Backlog):
        oldest = backlog.oldest_created_us
        age_us = 0 if oldest is None else max(0, clock.now_us() - oldest)
        return [
            gauge(
                "loyalty_outbox_pending",
                "Outbox entries recorded but not yet settled with the ledger.",
                backlog.pending,
            ),
            gauge(
                "loyalty_outbox_oldest_pending_age_seconds",
                "How long the oldest pending outbox entry has waited (0 when none is pending).",
                age_us / MICROS_PER_SECOND,
            ),
        ]

    metrics.sample("outbox_backlog", read, families)


class LedgerOutbox(Generic[U]):
    """Posts recorded entries and applies their answers with the handler of their kind."""

    def __init__(
        self,
        store: Store[U],
        ledger: LedgerPoster | ledger_grpc.LedgerServiceStub,
        clock: Clock,
        handlers: Mapping[str, Handler],
        timeout: float = 2.0,
        policy: RelayPolicy = POLICY,
        metrics: Metrics | None = None,
    ) -> None:
        self._store = store
        # A stub posts unary calls; a StreamPoster shares one stream per channel.
        self._ledger = poster_of(ledger)
        self._clock = clock
        self._handlers = dict(handlers)
        self._timeout = timeout
        self._policy = policy
        self._metrics: OutboxMetrics | None = metrics.outbox if metrics is not None else None

    def _retried(self, entry: OutboxEntry, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.retried(entry.kind, outcome)

    async def settle(self, entry: OutboxEntry, attempts: int = 3) -> Any:
        """Post the entry and apply the answer. Returns what the kind's handler
        returned, or None when another task applied it first. An unreachable
        ledger is UNAVAILABLE and leaves the entry to the relay."""
        if entry.kind not in self._handlers:
            raise ValueError(f"no handler for outbox entries of kind {entry.kind!r}")
        try:
            response = await call_with_retry(
                self._ledger.post, entry.request, deadline=self._timeout, attempts=attempts
            )
        except grpc.aio.AioRpcError as error:
            # Only a malformed request is a final answer. Anything else (a ledger
            # shutting down cancels calls in flight) leaves the outcome unknown,
            # and posting the same ids again later is always safe.
            if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
                raise Unavailable(
                    "LEDGER_UNAVAILABLE",
                    f"the ledger did not answer ({error.code().name}); it is retried shortly",
                    {"entry_id": entry.entry_id},
                ) from error
            log.error(
                "outbox_entry_failed",
                entry_id=entry.entry_id,
                kind=entry.kind,
                error=error.details(),
                age_seconds=self._age_seconds(entry),
            )
            refused = f"INVALID_ARGUMENT: {error.details()}"
            return await self._apply(Settlement(entry, None, refused))
        return await self._apply(Settlement(entry, ChainAnswer(response)))

    async def _apply(self, settlement: Settlement) -> Any:
        handler = self._handlers[settlement.entry.kind]
        now = self._clock.now_us()

        def work(unit: U) -> Any:
            if not unit.outbox.close(
                settlement.entry.entry_id, settlement.answer, settlement.error, now
            ):
                return None
            return handler(unit, settlement)

        return await self._store.write(work)

    def _age_seconds(self, entry: OutboxEntry) -> float:
        return round((self._clock.now_us() - entry.created_us) / MICROS_PER_SECOND, 3)

    async def relay_once(self, horizon_us: int | None = None) -> int:
        """Settle the entries due by `horizon_us` (default now); how many settled."""
        horizon = self._clock.now_us() if horizon_us is None else horizon_us
        settled = 0
        while True:
            now = self._clock.now_us()
            entries = await self._store.write(
                lambda unit, now=now: unit.outbox.claim_due(horizon, now, self._policy.batch)
            )
            for entry in entries:
                try:
                    await self.settle(entry, attempts=1)
                except Unavailable:
                    self._retried(entry, "deferred")
                    log.warning(
                        "outbox_entry_deferred",
                        entry_id=entry.entry_id,
                        kind=entry.kind,
                        attempts=entry.attempts,
                        age_seconds=self._age_seconds(entry),
                        retry_in_seconds=self._policy.backoff_us(entry.attempts)
                        / MICROS_PER_SECOND,
                    )
                    # The ledger is away: the rest waits for the next round.
                    return settled
                except Exception:
                    # A handler's bug must not hold back the other entries; this
                    # one stays pending and is tried again after its backoff.
                    self._retried(entry, "error")
                    log.exception("outbox_entry_not_applied", entry_id=entry.entry_id)
                    continue
                self._retried(entry, "settled")
                settled += 1
                log.info(
                    "outbox_entry_relayed",
                    entry_id=entry.entry_id,
                    kind=entry.kind,
                    attempts=entry.attempts,
                    age_seconds=self._age_seconds(entry),
                )
            if len(entries) < self._policy.batch:
                return settled

    async def recover(self) -> int:
        """At start: everything pending, whatever its schedule, since no request
        of this process is in flight yet."""
        return await self.relay_once(EVERYTHING_US)

    async def run_relay(self, interval_seconds: float) -> None:
        """Background loop: relay what is due, then wait by the injected clock."""
        interval = int(interval_seconds * MICROS_PER_SECOND)
        while True:
            try:
                await self.relay_once()
            except Exception:
                log.exception("outbox_relay_failed")
            await self._clock.sleep_until(self._clock.now_us() + interval)
