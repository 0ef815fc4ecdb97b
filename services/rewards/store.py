"""SQL for the rewards service, and nothing else.

Every use case runs as a unit of work: `store.write(work)` hands `work` a
RewardsUnit inside one savepoint of the kit's group commit; `store.read(work)`
hands it the same unit on a read-only connection. Work is a pure function of
the unit (safe to run twice). On PostgreSQL (pg_store.py) the same unit runs
SERIALIZABLE; the SQL is written once for both engines.
"""

from __future__ import annotations

import json
import sqlite3
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Protocol, Unpack

from services.kit.outbox import OUTBOX_KINDS_MIGRATION, OUTBOX_MIGRATION, OutboxUnit, SqliteOutbox
from services.kit.postgres import skip_locked
from services.kit.sqlite import SqliteStore, StoreOptions
from services.rewards.domain.catalog import (
    EarlyAccess,
    Limits,
    Money,
    Reward,
    RewardKind,
    RewardSpec,
)
from services.rewards.domain.eligibility import PeriodStarts, Usage
from services.rewards.domain.offers import Offer, OfferSpec, OfferState, Preferences, Visit
from services.rewards.domain.redemptions import (
    COUNTED,
    TOOK_POINTS,
    Redemption,
    RedemptionEvent,
    RedemptionState,
)

SCHEMA_V1 = """
CREATE TABLE rewards (
  reward_id TEXT PRIMARY KEY,
  version INTEGER NOT NULL,
  archived INTEGER NOT NULL DEFAULT 0,
  hidden INTEGER NOT NULL,
  category TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE reward_versions (
  reward_id TEXT NOT NULL REFERENCES rewards (reward_id),
  version INTEGER NOT NULL,
  spec TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (reward_id, version)
);
CREATE TRIGGER rewards_are_never_deleted BEFORE DELETE ON rewards
BEGIN
  SELECT RAISE(ABORT, 'rewards are archived, never deleted');
END;
CREATE TABLE codes (
  seq INTEGER PRIMARY KEY,
  reward_id TEXT NOT NULL,
  code TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('free', 'assigned', 'void')),
  redemption_id TEXT UNIQUE,
  import_id TEXT NOT NULL,
  line INTEGER NOT NULL,
  UNIQUE (reward_id, code),
  CHECK ((state = 'free') = (redemption_id IS NULL))
);
CREATE INDEX codes_free ON codes (reward_id, seq) WHERE state = 'free';
CREATE INDEX codes_by_import ON codes (reward_id, import_id);
CREATE TABLE code_chunks (
  reward_id TEXT NOT NULL,
  import_id TEXT NOT NULL,
  first_line INTEGER NOT NULL,
  result TEXT NOT NULL,
  PRIMARY KEY (reward_id, import_id, first_line)
);
CREATE TABLE redemptions (
  seq INTEGER PRIMARY KEY,
  redemption_id TEXT NOT NULL UNIQUE,
  member_id TEXT NOT NULL,
  request_id TEXT NOT NULL,
  reward_id TEXT NOT NULL,
  reward_version INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  quantity INTEGER NOT NULL,
  price_total INTEGER NOT NULL,
  price_unit TEXT NOT NULL,
  value_minor INTEGER NOT NULL,
  currency TEXT NOT NULL,
  state INTEGER NOT NULL,
  entry_id TEXT NOT NULL,
  code TEXT NOT NULL,
  failure_reason TEXT NOT NULL,
  offer_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  posted_at INTEGER,
  reversed_at INTEGER,
  UNIQUE (member_id, request_id)
);
CREATE INDEX redemptions_by_member ON redemptions (member_id, reward_id, created_at);
CREATE INDEX redemptions_by_reward ON redemptions (reward_id, seq);
CREATE INDEX redemptions_by_entry ON redemptions (entry_id) WHERE entry_id != '';
CREATE TABLE redemption_events (
  seq INTEGER PRIMARY KEY,
  redemption_id TEXT NOT NULL REFERENCES redemptions (redemption_id),
  state INTEGER NOT NULL,
  at INTEGER NOT NULL,
  reason TEXT NOT NULL
);
CREATE INDEX redemption_events_by_redemption ON redemption_events (redemption_id, seq);
CREATE TRIGGER redemption_history_is_append_only BEFORE UPDATE ON redemption_events
BEGIN
  SELECT RAISE(ABORT, 'history is append-only');
END;
CREATE TABLE stock_changes (
  entry_id TEXT PRIMARY KEY,
  reward_id TEXT NOT NULL,
  quantity INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'refused')),
  created_at INTEGER NOT NULL
);
CREATE TABLE preferences (
  member_id TEXT PRIMARY KEY,
  preferences TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE TABLE offers (
  offer_id TEXT PRIMARY KEY,
  spec TEXT NOT NULL,
  archived INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL
);
CREATE TABLE visits (
  seq INTEGER PRIMARY KEY,
  member_id TEXT NOT NULL,
  visit_id TEXT NOT NULL,
  offer_id TEXT NOT NULL,
  draw TEXT NOT NULL,
  state INTEGER NOT NULL,
  redemption_id TEXT NOT NULL,
  points_awarded INTEGER NOT NULL,
  entry_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (member_id, visit_id)
);
CREATE INDEX visits_by_entry ON visits (entry_id) WHERE entry_id != '';
"""

# A settlement finds its redemption by the key its entry id names: no index on entry ids
# to keep up in both of a redemption's transactions. The same text on both engines.
DROP_ENTRY_INDEX = "DROP INDEX redemptions_by_entry;"
MIGRATIONS = (SCHEMA_V1, OUTBOX_MIGRATION, OUTBOX_KINDS_MIGRATION, DROP_ENTRY_INDEX)
CHUNK = 500


@dataclass(frozen=True, slots=True)
class CodeCounts:
    total: int = 0
    free: int = 0
    assigned: int = 0
    void: int = 0


@dataclass(frozen=True, slots=True)
class AddedCodes:
    """What inserting one chunk's codes did: how many went in, and each line kept out."""

    added: int
    # (line, reason, first line of the same code in this import or 0)
    duplicates: list[tuple[int, str, int]]


@dataclass(frozen=True, slots=True)
class StockChange:
    entry_id: str
    reward_id: str
    quantity: int
    state: str


@dataclass(frozen=True, slots=True)
class RewardFigures:
    redemptions: int = 0
    units: int = 0
    points_burned: int = 0
    reversed: int = 0
    failed: int = 0
    value_minor: int = 0


@dataclass(frozen=True, slots=True)
class PeriodFigures:
    redemptions: int
    # currency -> net minor units redeemed in the period
    value_by_currency: dict[str, int]


class RewardsUnit(Protocol):
    """What the rewards use cases need from storage, inside one transaction."""

    outbox: OutboxUnit

    # -- catalog
    def reward(self, reward_id: str) -> Reward | None: ...
    def reward_version(self, reward_id: str, version: int) -> Reward | None: ...
    def insert_reward(self, reward: Reward) -> None: ...
    def save_reward(self, reward: Reward) -> None: ...
    def rewards(
        self, after_id: str, limit: int, *, archived: bool, listed_only: bool, category: str = ""
    ) -> list[Reward]: ...
    def stock_change(self, entry_id: str) -> StockChange | None: ...
    def insert_stock_change(self, change: StockChange, now_us: int) -> None: ...
    def close_stock_change(self, entry_id: str, state: str) -> None: ...

    # -- codes
    def code_counts(self, reward_id: str) -> CodeCounts: ...
    def free_codes(self) -> dict[str, int]: ...
    def imported(self, reward_id: str, import_id: str) -> int: ...
    def import_chunk(self, reward_id: str, import_id: str, first_line: int) -> str | None: ...
    def save_import_chunk(
        self, reward_id: str, import_id: str, first_line: int, result: str
    ) -> None: ...
    def add_codes(
        self, reward_id: str, import_id: str, codes: Sequence[tuple[int, str]]
    ) -> AddedCodes: ...
    def assign_code(self, reward_id: str, redemption_id: str) -> str | None: ...
    def add_assigned_code(self, reward_id: str, code: str, redemption_id: str) -> bool: ...
    def release_code(self, redemption_id: str) -> None: ...
    def void_code(self, redemption_id: str) -> None: ...

    # -- redemptions
    def redemption(self, redemption_id: str) -> Redemption | None: ...
    def insert_redemption(self, redemption: Redemption) -> Redemption: ...
    def save_redemption(self, redemption: Redemption) -> None: ...
    def usage(
        self, member_id: str, reward_ids: Sequence[str], starts: PeriodStarts
    ) -> dict[str, Usage]: ...
    def member_redemptions(
        self, member_id: str, before_seq: int, limit: int
    ) -> list[Redemption]: ...
    def redemptions(
        self, reward_id: str, state: RedemptionState | None, before_seq: int, limit: int
    ) -> list[Redemption]: ...
    def reward_figures(self, reward_id: str) -> RewardFigures: ...
    def period_figures(self, start_us: int, end_us: int) -> PeriodFigures: ...

    # -- preferences and offers
    def preferences(self, member_id: str) -> Preferences: ...
    def set_preferences(self, member_id: str, preferences: Preferences, now_us: int) -> None: ...
    def offer(self, offer_id: str) -> Offer | None: ...
    def save_offer(self, offer: Offer, now_us: int) -> None: ...
    def offers(self, after_id: str, limit: int) -> list[Offer]: ...
    def visit(self, member_id: str, visit_id: str) -> Visit | None: ...
    def visit_by_entry(self, entry_id: str) -> Visit | None: ...
    def recent_offer_ids(self, member_id: str, limit: int) -> list[str]: ...
    def insert_visit(self, visit: Visit) -> None: ...
    def save_visit(self, visit: Visit, entry_id: str = "") -> None: ...


# ---------------------------------------------------------------- codecs


def spec_json(spec: RewardSpec) -> str:
    return json.dumps(asdict(spec), sort_keys=True)


# Specs are immutable and read on every redemption: each stored text is parsed once.
@lru_cache(maxsize=1024)
def spec_from_json(text: str) -> RewardSpec:
    data = json.loads(text)
    return RewardSpec(
        **{
            **data,
            "kind": RewardKind(data["kind"]),
            "value": Money(**data["value"]),
            "tiers": tuple(data["tiers"]),
            "segments": tuple(data["segments"]),
            "early_access": tuple(EarlyAccess(**entry) for entry in data["early_access"]),
            "limits": Limits(**data["limits"]),
        }
    )


def offer_spec_from_json(text: str) -> OfferSpec:
    data = json.loads(text)
    return OfferSpec(**{**data, "tags": tuple(data["tags"])})


def preferences_json(preferences: Preferences) -> str:
    return json.dumps(asdict(preferences), sort_keys=True)


def preferences_from_json(text: str) -> Preferences:
    data = json.loads(text)
    return Preferences(
        choices=tuple((key, tuple(values)) for key, values in data["choices"]),
        favourite_categories=tuple(data["favourite_categories"]),
    )


def _marks(values: Sequence) -> str:
    return ",".join("?" * len(values))


REDEMPTION_COLUMNS = (
    "seq, redemption_id, member_id, request_id, reward_id, reward_version, kind, quantity,"
    " price_total, price_unit, value_minor, currency, state, entry_id, code, failure_reason,"
    " offer_id, created_at, updated_at, posted_at, reversed_at"
)
VISIT_COLUMNS = (
    "member_id, visit_id, offer_id, draw, state, created_at, redemption_id, points_awarded"
)


class WrittenRedemptions:
    """The redemptions the writer stored last, as stored, history included.

    A redemption's second transaction (its settlement) reads the row and its
    history that the first one wrote moments before, two statements and about
    35 us: the writer's units take them from here instead. Sound only where this
    process's writer is the file's only writer (SQLite; PostgreSQL replicas share
    the tables, so their units have none) and only while every write of a
    redemption goes through a unit (insert_redemption, save_redemption), which
    keeps it current; any rolled-back work empties it (the store's on_rollback)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._stored: OrderedDict[str, Redemption] = OrderedDict()

    def get(self, redemption_id: str) -> Redemption | None:
        return self._stored.get(redemption_id)

    def put(self, redemption: Redemption) -> None:
        self._stored[redemption.redemption_id] = redemption
        self._stored.move_to_end(redemption.redemption_id)
        if len(self._stored) > self._capacity:
            self._stored.popitem(last=False)

    def forget(self, redemption_id: str) -> None:
        self._stored.pop(redemption_id, None)

    def clear(self) -> None:
        self._stored.clear()


class SqliteRewardsUnit:
    def __init__(
        self, connection: sqlite3.Connection, written: WrittenRedemptions | None = None
    ) -> None:
        self._db = connection
        self.outbox = SqliteOutbox(connection)
        # Events stored per redemption read or written in this transaction, so
        # saving one appends its new events without counting them again.
        self._events: dict[str, int] = {}
        self._written = written

    def _one(self, sql: str, parameters: Sequence = ()):
        return self._db.execute(sql, parameters).fetchone()

    def _all(self, sql: str, parameters: Sequence = ()) -> list:
        return self._db.execute(sql, parameters).fetchall()

    # -- catalog

    def _reward(self, row) -> Reward:
        reward_id, version, archived, created, updated, spec = row
        return Reward(reward_id, version, spec_from_json(spec), bool(archived), created, updated)

    def reward(self, reward_id: str) -> Reward | None:
        row = self._one(
            "SELECT r.reward_id, r.version, r.archived, r.created_at, r.updated_at, v.spec"
            " FROM rewards r JOIN reward_versions v"
            " ON v.reward_id = r.reward_id AND v.version = r.version WHERE r.reward_id = ?",
            (reward_id,),
        )
        return self._reward(row) if row else None

    def reward_version(self, reward_id: str, version: int) -> Reward | None:
        row = self._one(
            "SELECT r.reward_id, v.version, r.archived, r.created_at, v.created_at, v.spec"
            " FROM rewards r JOIN reward_versions v ON v.reward_id = r.reward_id"
            " WHERE r.reward_id = ? AND v.version = ?",
            (reward_id, version),
        )
        return self._reward(row) if row else None

    def insert_reward(self, reward: Reward) -> None:
        self._db.execute(
            "INSERT INTO rewards (reward_id, version, archived, hidden, category, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                reward.reward_id,
                reward.version,
                int(reward.archived),
                int(reward.spec.hidden),
                reward.spec.category,
                reward.created_us,
                reward.updated_us,
            ),
        )
        self._insert_version(reward)

    def _insert_version(self, reward: Reward) -> None:
        self._db.execute(
            "INSERT INTO reward_versions (reward_id, version, spec, created_at) VALUES (?,?,?,?)",
            (reward.reward_id, reward.version, spec_json(reward.spec), reward.updated_us),
        )

    def save_reward(self, reward: Reward) -> None:
        stored = self._one("SELECT version FROM rewards WHERE reward_id = ?", (reward.reward_id,))
        self._db.execute(
            "UPDATE rewards SET version = ?, archived = ?, hidden = ?, category = ?,"
            " updated_at = ? WHERE reward_id = ?",
            (
                reward.version,
                int(reward.archived),
                int(reward.spec.hidden),
                reward.spec.category,
                reward.updated_us,
                reward.reward_id,
            ),
        )
        if stored is None or stored[0] != reward.version:
            self._insert_version(reward)

    def rewards(
        self, after_id: str, limit: int, *, archived: bool, listed_only: bool, category: str = ""
    ) -> list[Reward]:
        conditions = ["r.reward_id > ?"]
        parameters: list = [after_id]
        if not archived:
            conditions.append("r.archived = 0")
        if listed_only:
            conditions.append("r.hidden = 0")
        if category:
            conditions.append("r.category = ?")
            parameters.append(category)
        rows = self._all(
            "SELECT r.reward_id, r.version, r.archived, r.created_at, r.updated_at, v.spec"
            " FROM rewards r JOIN reward_versions v"
            " ON v.reward_id = r.reward_id AND v.version = r.version"
            f" WHERE {' AND '.join(conditions)} ORDER BY r.reward_id LIMIT ?",
            (*parameters, limit),
        )
        return [self._reward(row) for row in rows]

    def stock_change(self, entry_id: str) -> StockChange | None:
        row = self._one(
            "SELECT entry_id, reward_id, quantity, state FROM stock_changes WHERE entry_id = ?",
            (entry_id,),
        )
        return StockChange(*row) if row else None

    def insert_stock_change(self, change: StockChange, now_us: int) -> None:
        self._db.execute(
            "INSERT INTO stock_changes (entry_id, reward_id, quantity, state, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (change.entry_id, change.reward_id, change.quantity, change.state, now_us),
        )

    def close_stock_change(self, entry_id: str, state: str) -> None:
        self._db.execute("UPDATE stock_changes SET state = ? WHERE entry_id = ?", (state, entry_id))

    # -- codes

    def code_counts(self, reward_id: str) -> CodeCounts:
        counts = dict(
            self._all(
                "SELECT state, COUNT(*) FROM codes WHERE reward_id = ? GROUP BY state",
                (reward_id,),
            )
        )
        return CodeCounts(
            total=sum(counts.values()),
            free=counts.get("free", 0),
            assigned=counts.get("assigned", 0),
            void=counts.get("void", 0),
        )

    def free_codes(self) -> dict[str, int]:
        """Free codes per reward, for every reward that has one (over the index of free codes)."""
        return dict(
            self._all(
                "SELECT reward_id, COUNT(*) FROM codes WHERE state = 'free' GROUP BY reward_id"
            )
        )

    def imported(self, reward_id: str, import_id: str) -> int:
        (count,) = self._one(
            "SELECT COUNT(*) FROM codes WHERE reward_id = ? AND import_id = ?",
            (reward_id, import_id),
        )
        return count

    def import_chunk(self, reward_id: str, import_id: str, first_line: int) -> str | None:
        row = self._one(
            "SELECT result FROM code_chunks WHERE reward_id = ? AND import_id = ?"
            " AND first_line = ?",
            (reward_id, import_id, first_line),
        )
        return row[0] if row else None

    def save_import_chunk(
        self, reward_id: str, import_id: str, first_line: int, result: str
    ) -> None:
        self._db.execute(
            "INSERT INTO code_chunks (reward_id, import_id, first_line, result) VALUES (?,?,?,?)",
            (reward_id, import_id, first_line, result),
        )

    def add_codes(
        self, reward_id: str, import_id: str, codes: Sequence[tuple[int, str]]
    ) -> AddedCodes:
        """Insert each code that is new to the pool; report the others by line."""
        existing: dict[str, tuple[str, int]] = {}
        values = list(dict.fromkeys(code for _, code in codes))
        for start in range(0, len(values), CHUNK):
            chunk = values[start : start + CHUNK]
            for code, stored_import, line in self._all(
                # Codes as rows, not an IN list: PostgreSQL then looks each one up
                # in the (reward_id, code) index, even on a pool too new for statistics.
                "SELECT code, import_id, line FROM codes WHERE reward_id = ? AND code IN"
                f" (VALUES {','.join(['(?)'] * len(chunk))})",
                (reward_id, *chunk),
            ):
                existing[code] = (stored_import, line)
        fresh: list[tuple[int, str]] = []
        duplicates: list[tuple[int, str, int]] = []
        for line, code in codes:
            seen = existing.get(code)
            if seen is None:
                existing[code] = (import_id, line)
                fresh.append((line, code))
            elif seen[0] == import_id:
                duplicates.append((line, "DUPLICATE_IN_FILE", seen[1]))
            else:
                duplicates.append((line, "DUPLICATE_IN_POOL", 0))
        self._db.executemany(
            "INSERT INTO codes (reward_id, code, state, import_id, line)"
            " VALUES (?, ?, 'free', ?, ?)",
            [(reward_id, code, import_id, line) for line, code in fresh],
        )
        return AddedCodes(len(fresh), duplicates)

    def assign_code(self, reward_id: str, redemption_id: str) -> str | None:
        row = self._one(
            "UPDATE codes SET state = 'assigned', redemption_id = ?"
            " WHERE state = 'free' AND seq = (SELECT seq FROM codes"
            " WHERE reward_id = ? AND state = 'free' ORDER BY seq LIMIT 1"
            # A code another replica is claiming is passed over, not waited for.
            f"{skip_locked(self._db)}) RETURNING code",
            (redemption_id, reward_id),
        )
        return row[0] if row else None

    def add_assigned_code(self, reward_id: str, code: str, redemption_id: str) -> bool:
        cursor = self._db.execute(
            "INSERT INTO codes (reward_id, code, state, redemption_id, import_id, line)"
            " VALUES (?, ?, 'assigned', ?, 'generated', 0) ON CONFLICT DO NOTHING",
            (reward_id, code, redemption_id),
        )
        return cursor.rowcount == 1

    def release_code(self, redemption_id: str) -> None:
        self._db.execute(
            # A generated code is never handed out again: it becomes void.
            "UPDATE codes SET"
            " state = CASE WHEN import_id = 'generated' THEN 'void' ELSE 'free' END,"
            " redemption_id = CASE WHEN import_id = 'generated' THEN redemption_id END"
            " WHERE redemption_id = ? AND state = 'assigned'",
            (redemption_id,),
        )

    def void_code(self, redemption_id: str) -> None:
        self._db.execute(
            "UPDATE codes SET state = 'void' WHERE redemption_id = ?", (redemption_id,)
        )

    # -- redemptions

    def _history(self, redemption_id: str) -> tuple[RedemptionEvent, ...]:
        return tuple(
            RedemptionEvent(RedemptionState(state), at, reason)
            for state, at, reason in self._all(
                "SELECT state, at, reason FROM redemption_events WHERE redemption_id = ?"
                " ORDER BY seq",
                (redemption_id,),
            )
        )

    def _redemption(self, row, history: bool = True) -> Redemption:
        (
            seq,
            redemption_id,
            member_id,
            request_id,
            reward_id,
            version,
            kind,
            quantity,
            price_total,
            price_unit,
            value_minor,
            currency,
            state,
            entry_id,
            code,
            failure_reason,
            offer_id,
            created,
            updated,
            posted,
            reversed_at,
        ) = row
        return Redemption(
            redemption_id=redemption_id,
            member_id=member_id,
            request_id=request_id,
            reward_id=reward_id,
            reward_version=version,
            kind=RewardKind(kind),
            quantity=quantity,
            price_total=price_total,
            price_unit=price_unit,
            value=Money(value_minor, currency),
            state=RedemptionState(state),
            created_us=created,
            updated_us=updated,
            entry_id=entry_id,
            code=code,
            failure_reason=failure_reason,
            offer_id=offer_id,
            posted_us=posted,
            reversed_us=reversed_at,
            history=self._loaded_history(redemption_id) if history else (),
            seq=seq,
        )

    def _loaded_history(self, redemption_id: str) -> tuple[RedemptionEvent, ...]:
        events = self._history(redemption_id)
        self._events[redemption_id] = len(events)
        return events

    def _find(self, where: str, parameters: Sequence) -> Redemption | None:
        row = self._one(f"SELECT {REDEMPTION_COLUMNS} FROM redemptions WHERE {where}", parameters)
        return self._redemption(row) if row else None

    def redemption(self, redemption_id: str) -> Redemption | None:
        written = self._written.get(redemption_id) if self._written is not None else None
        if written is not None:
            self._events[redemption_id] = len(written.history)
            return written
        return self._find("redemption_id = ?", (redemption_id,))

    def _row(self, r: Redemption) -> tuple:
        return (
            r.redemption_id,
            r.member_id,
            r.request_id,
            r.reward_id,
            r.reward_version,
            int(r.kind),
            r.quantity,
            r.price_total,
            r.price_unit,
            r.value.amount_minor,
            r.value.currency,
            int(r.state),
            r.entry_id,
            r.code,
            r.failure_reason,
            r.offer_id,
            r.created_us,
            r.updated_us,
            r.posted_us,
            r.reversed_us,
        )

    def _append_history(self, redemption: Redemption, events: Sequence[RedemptionEvent]) -> None:
        self._db.executemany(
            "INSERT INTO redemption_events (redemption_id, state, at, reason) VALUES (?,?,?,?)",
            [(redemption.redemption_id, int(e.state), e.at_us, e.reason) for e in events],
        )

    def insert_redemption(self, redemption: Redemption) -> Redemption:
        (seq,) = self._one(
            f"INSERT INTO redemptions ({REDEMPTION_COLUMNS.removeprefix('seq, ')})"
            f" VALUES ({_marks(range(20))}) RETURNING seq",
            self._row(redemption),
        )
        self._append_history(redemption, redemption.history)
        self._events[redemption.redemption_id] = len(redemption.history)
        stored = replace(redemption, seq=seq)
        if self._written is not None:
            self._written.put(stored)
        return stored

    def save_redemption(self, redemption: Redemption) -> None:
        stored = self._events.get(redemption.redemption_id)
        if stored is None:
            (stored,) = self._one(
                "SELECT COUNT(*) FROM redemption_events WHERE redemption_id = ?",
                (redemption.redemption_id,),
            )
        # Only what a redemption's steps change: the indexed columns stay as recorded.
        self._db.execute(
            "UPDATE redemptions SET state = ?, entry_id = ?, code = ?, failure_reason = ?,"
            " updated_at = ?, posted_at = ?, reversed_at = ? WHERE redemption_id = ?",
            (
                int(redemption.state),
                redemption.entry_id,
                redemption.code,
                redemption.failure_reason,
                redemption.updated_us,
                redemption.posted_us,
                redemption.reversed_us,
                redemption.redemption_id,
            ),
        )
        self._append_history(redemption, redemption.history[stored:])
        self._events[redemption.redemption_id] = max(stored, len(redemption.history))
        if self._written is not None:
            if len(redemption.history) == self._events[redemption.redemption_id]:
                self._written.put(redemption)
            else:  # saved without its whole history: only the table has it
                self._written.forget(redemption.redemption_id)

    def usage(
        self, member_id: str, reward_ids: Sequence[str], starts: PeriodStarts
    ) -> dict[str, Usage]:
        found: dict[str, Usage] = {}
        counted = [int(state) for state in COUNTED]
        for start in range(0, len(reward_ids), CHUNK):
            chunk = list(reward_ids[start : start + CHUNK])
            for reward_id, day, week, month, total in self._all(
                "SELECT reward_id,"
                " COALESCE(SUM(CASE WHEN created_at >= ? THEN quantity END), 0),"
                " COALESCE(SUM(CASE WHEN created_at >= ? THEN quantity END), 0),"
                " COALESCE(SUM(CASE WHEN created_at >= ? THEN quantity END), 0),"
                " SUM(quantity)"
                f" FROM redemptions WHERE member_id = ? AND reward_id IN ({_marks(chunk)})"
                f" AND state IN ({_marks(counted)}) GROUP BY reward_id",
                (starts.day_us, starts.week_us, starts.month_us, member_id, *chunk, *counted),
            ):
                found[reward_id] = Usage(day, week, month, total)
        return found

    def member_redemptions(self, member_id: str, before_seq: int, limit: int) -> list[Redemption]:
        rows = self._all(
            f"SELECT {REDEMPTION_COLUMNS} FROM redemptions WHERE member_id = ? AND seq < ?"
            " ORDER BY seq DESC LIMIT ?",
            (member_id, before_seq, limit),
        )
        return [self._redemption(row) for row in rows]

    def redemptions(
        self, reward_id: str, state: RedemptionState | None, before_seq: int, limit: int
    ) -> list[Redemption]:
        conditions, parameters = ["seq < ?"], [before_seq]
        if reward_id:
            conditions.append("reward_id = ?")
            parameters.append(reward_id)
        if state is not None:
            conditions.append("state = ?")
            parameters.append(int(state))
        rows = self._all(
            f"SELECT {REDEMPTION_COLUMNS} FROM redemptions WHERE {' AND '.join(conditions)}"
            " ORDER BY seq DESC LIMIT ?",
            (*parameters, limit),
        )
        return [self._redemption(row) for row in rows]

    def reward_figures(self, reward_id: str) -> RewardFigures:
        took = [int(state) for state in TOOK_POINTS]
        reversed_states = [int(RedemptionState.CANCELLED), int(RedemptionState.REFUNDED)]
        row = self._one(
            "SELECT"
            f" COUNT(CASE WHEN state IN ({_marks(took)}) THEN 1 END),"
            f" COALESCE(SUM(CASE WHEN state IN ({_marks(took)}) THEN quantity END), 0),"
            f" COALESCE(SUM(CASE WHEN state IN ({_marks(took)}) AND price_unit = 'points'"
            " THEN price_total END), 0),"
            f" COUNT(CASE WHEN state IN ({_marks(reversed_states)}) THEN 1 END),"
            " COUNT(CASE WHEN state = ? THEN 1 END),"
            f" COALESCE(SUM(CASE WHEN state IN ({_marks(took)}) THEN value_minor END), 0)"
            " FROM redemptions WHERE reward_id = ?",
            (
                *took,
                *took,
                *took,
                *reversed_states,
                int(RedemptionState.FAILED),
                *took,
                reward_id,
            ),
        )
        return RewardFigures(*row)

    def period_figures(self, start_us: int, end_us: int) -> PeriodFigures:
        (count,) = self._one(
            "SELECT COUNT(*) FROM redemptions WHERE posted_at >= ? AND posted_at < ?",
            (start_us, end_us),
        )
        values: dict[str, int] = {}
        for currency, posted, reversed_value in self._all(
            "SELECT currency,"
            " COALESCE(SUM(CASE WHEN posted_at >= ? AND posted_at < ? THEN value_minor END), 0),"
            " COALESCE(SUM(CASE WHEN reversed_at >= ? AND reversed_at < ? THEN value_minor END), 0)"
            " FROM redemptions WHERE currency != '' AND posted_at IS NOT NULL GROUP BY currency",
            (start_us, end_us, start_us, end_us),
        ):
            values[currency] = posted - reversed_value
        return PeriodFigures(count, values)

    # -- preferences and offers

    def preferences(self, member_id: str) -> Preferences:
        row = self._one("SELECT preferences FROM preferences WHERE member_id = ?", (member_id,))
        return preferences_from_json(row[0]) if row else Preferences()

    def set_preferences(self, member_id: str, preferences: Preferences, now_us: int) -> None:
        self._db.execute(
            "INSERT INTO preferences (member_id, preferences, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (member_id) DO UPDATE SET preferences = excluded.preferences,"
            " updated_at = excluded.updated_at",
            (member_id, preferences_json(preferences), now_us),
        )

    def offer(self, offer_id: str) -> Offer | None:
        row = self._one(
            "SELECT offer_id, spec, archived FROM offers WHERE offer_id = ?", (offer_id,)
        )
        return Offer(row[0], offer_spec_from_json(row[1]), bool(row[2])) if row else None

    def save_offer(self, offer: Offer, now_us: int) -> None:
        self._db.execute(
            "INSERT INTO offers (offer_id, spec, archived, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (offer_id) DO UPDATE SET spec = excluded.spec,"
            " archived = excluded.archived, updated_at = excluded.updated_at",
            (offer.offer_id, json.dumps(asdict(offer.spec)), int(offer.archived), now_us),
        )

    def offers(self, after_id: str, limit: int) -> list[Offer]:
        rows = self._all(
            "SELECT offer_id, spec, archived FROM offers WHERE offer_id > ?"
            " ORDER BY offer_id LIMIT ?",
            (after_id, limit),
        )
        return [Offer(row[0], offer_spec_from_json(row[1]), bool(row[2])) for row in rows]

    def _visit(self, row) -> Visit:
        member_id, visit_id, offer_id, draw, state, created, redemption_id, awarded = row
        return Visit(
            member_id, visit_id, offer_id, draw, OfferState(state), created, redemption_id,
            bool(awarded),
        )  # fmt: skip

    def visit(self, member_id: str, visit_id: str) -> Visit | None:
        row = self._one(
            f"SELECT {VISIT_COLUMNS} FROM visits WHERE member_id = ? AND visit_id = ?",
            (member_id, visit_id),
        )
        return self._visit(row) if row else None

    def visit_by_entry(self, entry_id: str) -> Visit | None:
        row = self._one(
            f"SELECT {VISIT_COLUMNS} FROM visits WHERE entry_id = ? AND entry_id != ''",
            (entry_id,),
        )
        return self._visit(row) if row else None

    def recent_offer_ids(self, member_id: str, limit: int) -> list[str]:
        return [
            row[0]
            for row in self._all(
                "SELECT offer_id FROM visits WHERE member_id = ? AND offer_id != ''"
                " ORDER BY seq DESC LIMIT ?",
                (member_id, limit),
            )
        ]

    def insert_visit(self, visit: Visit) -> None:
        self._db.execute(
            f"INSERT INTO visits ({VISIT_COLUMNS}, entry_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '')",
            (
                visit.member_id,
                visit.visit_id,
                visit.offer_id,
                visit.draw,
                int(visit.state),
                visit.created_us,
                visit.redemption_id,
                int(visit.points_awarded),
            ),
        )

    def save_visit(self, visit: Visit, entry_id: str = "") -> None:
        self._db.execute(
            "UPDATE visits SET state = ?, redemption_id = ?, points_awarded = ?,"
            " entry_id = CASE WHEN ? != '' THEN ? ELSE entry_id END"
            " WHERE member_id = ? AND visit_id = ?",
            (
                int(visit.state),
                visit.redemption_id,
                int(visit.points_awarded),
                entry_id,
                entry_id,
                visit.member_id,
                visit.visit_id,
            ),
        )


class RewardsStore(SqliteStore[RewardsUnit]):
    """The rewards service's SQLite file."""

    def __init__(self, path: Path | str, **options: Unpack[StoreOptions]) -> None:
        written = WrittenRedemptions()
        super().__init__(
            path,
            MIGRATIONS,
            SqliteRewardsUnit,
            write_unit=lambda connection: SqliteRewardsUnit(connection, written),
            on_rollback=written.clear,
            **options,
        )
