"""SQL for the games service, and nothing else.

Everything runs as a unit of work: `store.write(work)` hands `work` a GamesUnit
inside one savepoint of the kit's group commit; `store.read(work)` hands it the
same unit on a read-only connection, in one snapshot. The unit returns domain
records. The same unit, SQL and all, runs on PostgreSQL (pg_store.py).

The audit log is appended at the end of each write (`before_commit`): a result
then takes the WatchPlays feed's next numbers from the kit's feed counter
(services/kit/feed_sequences.py), held only from there to COMMIT, so the feed
is gapless and in commit order with any number of writers.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Protocol, Unpack

from services.games.domain.canonical import canonical_json
from services.games.domain.catch import (
    CatchVerdict,
    catch_config_from_stored,
    stored_catch_config,
)
from services.games.domain.draw import seed_commitment
from services.games.domain.records import (
    CatchGame,
    CatchSession,
    Counters,
    DrawProof,
    LeaderboardRow,
    Play,
    PlayDetail,
    PlayEntry,
    PlayKind,
    PlayResult,
    PlayStatus,
    SeedPair,
    SessionStatus,
    SpinRecord,
    SpinStatus,
    Stocking,
    StockingStatus,
    WheelVersion,
)
from services.games.domain.wheel import (
    Prize,
    WheelConfig,
    config_from_stored,
    config_hash,
    stored_document,
)
from services.kit.feed_sequences import (
    FEED_SEQUENCES_MIGRATION,
    feed_counter_migration,
    take_sequences,
)
from services.kit.outbox import OUTBOX_KINDS_MIGRATION, OUTBOX_MIGRATION, OutboxUnit, SqliteOutbox
from services.kit.sqlite import SqliteStore, StoreOptions

SCHEMA_V1 = """
CREATE TABLE wheels (
  wheel_id TEXT PRIMARY KEY,
  current_version INTEGER NOT NULL,
  create_us INTEGER NOT NULL
);
CREATE TABLE wheel_versions (
  wheel_id TEXT NOT NULL REFERENCES wheels (wheel_id),
  version INTEGER NOT NULL,
  document TEXT NOT NULL,
  config_sha256 TEXT NOT NULL,
  create_us INTEGER NOT NULL,
  PRIMARY KEY (wheel_id, version)
);
CREATE TABLE seed_pairs (
  pair_id INTEGER PRIMARY KEY,
  member_id TEXT NOT NULL,
  server_seed BLOB NOT NULL,
  commitment TEXT NOT NULL,
  client_seed TEXT NOT NULL,
  next_nonce INTEGER NOT NULL DEFAULT 0,
  create_us INTEGER NOT NULL,
  revealed_us INTEGER
);
CREATE UNIQUE INDEX seed_pairs_active ON seed_pairs (member_id) WHERE revealed_us IS NULL;
CREATE TABLE spins (
  spin_id TEXT PRIMARY KEY,
  wheel_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  member_id TEXT NOT NULL,
  request_id TEXT NOT NULL,
  pair_id INTEGER NOT NULL REFERENCES seed_pairs (pair_id),
  client_seed TEXT NOT NULL,
  nonce INTEGER NOT NULL,
  draw_value INTEGER NOT NULL,
  drawn_index INTEGER NOT NULL,
  landed_index INTEGER NOT NULL,
  fallback_reason TEXT,
  prize TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'settled', 'rejected')),
  reason TEXT,
  entry_id TEXT,
  transfer_ids TEXT NOT NULL DEFAULT '[]',
  points_balance_after INTEGER,
  day TEXT NOT NULL,
  spins_today INTEGER NOT NULL,
  create_us INTEGER NOT NULL,
  settled_us INTEGER
);
CREATE INDEX spins_day ON spins (wheel_id, member_id, day);
CREATE INDEX spins_pending ON spins (member_id) WHERE status = 'pending';
CREATE INDEX spins_stats ON spins (wheel_id, version, drawn_index) WHERE status = 'settled';
CREATE TABLE catch_games (
  game_id TEXT PRIMARY KEY,
  config TEXT NOT NULL,
  create_us INTEGER NOT NULL
);
CREATE TABLE catch_sessions (
  session_id TEXT PRIMARY KEY,
  game_id TEXT NOT NULL REFERENCES catch_games (game_id),
  member_id TEXT NOT NULL,
  request_id TEXT NOT NULL,
  seed BLOB NOT NULL,
  start_us INTEGER NOT NULL,
  expire_us INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('open', 'pending', 'settled', 'failed')),
  fingerprint TEXT,
  score INTEGER,
  awarded INTEGER,
  verdicts TEXT,
  transfer_id TEXT,
  day TEXT,
  week TEXT,
  daily_points_left INTEGER,
  submit_us INTEGER
);
CREATE INDEX catch_day ON catch_sessions (game_id, member_id, day);
CREATE INDEX catch_week ON catch_sessions (game_id, week, member_id, score);
CREATE TABLE plays (
  sequence INTEGER PRIMARY KEY AUTOINCREMENT,
  play_id TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('spin', 'catch')),
  game_id TEXT NOT NULL,
  member_id TEXT NOT NULL,
  status TEXT NOT NULL,
  reason TEXT,
  detail TEXT NOT NULL,
  create_us INTEGER NOT NULL
);
CREATE INDEX plays_member ON plays (member_id, create_us, sequence);
CREATE INDEX plays_game ON plays (game_id, create_us, sequence);
"""

# Issue 8: outbox entries get their kinds from the rows that recorded them (no id
# is parsed), and an entry the old code closed without applying it (it died
# between the two commits) is opened again: posting the same ids again is safe,
# and this time closing and applying commit together. Lookups for the handlers,
# stock recorded before it is posted, and audit paging by sequence.
SHAPE_MIGRATION = """
UPDATE ledger_outbox SET kind = 'catch_award'
  WHERE kind = '' AND entry_id IN (SELECT transfer_id FROM catch_sessions);
UPDATE ledger_outbox SET kind = 'spin' WHERE kind = '' AND entry_id IN (SELECT spin_id FROM spins);
UPDATE ledger_outbox SET kind = 'spin_fallback'
  WHERE kind = '' AND entry_id IN (SELECT entry_id FROM spins);
UPDATE ledger_outbox
  SET state = 'pending', settled_at = NULL, response = NULL, error = NULL, next_attempt_at = 0
  WHERE state != 'pending'
    AND (entry_id IN (SELECT entry_id FROM spins WHERE status = 'pending')
      OR entry_id IN (SELECT transfer_id FROM catch_sessions WHERE status = 'pending'));
CREATE INDEX spins_by_entry ON spins (entry_id);
CREATE INDEX catch_sessions_by_transfer ON catch_sessions (transfer_id);
CREATE TABLE wheel_stockings (
  transfer_id TEXT PRIMARY KEY,
  wheel_id TEXT NOT NULL REFERENCES wheels (wheel_id),
  unit TEXT NOT NULL,
  quantity INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'settled', 'refused')),
  reason TEXT,
  create_us INTEGER NOT NULL,
  settled_us INTEGER
);
DROP INDEX plays_member;
DROP INDEX plays_game;
CREATE INDEX plays_by_member ON plays (member_id, sequence);
CREATE INDEX plays_by_game ON plays (game_id, sequence);
"""

# Issue 9: what the plausibility rules found against a session's basket trace.
FINDINGS_MIGRATION = """
ALTER TABLE catch_sessions ADD COLUMN findings TEXT NOT NULL DEFAULT '[]';
"""

# Issue 11: every result (each entry but the pending ones) gets the next number of
# one gapless sequence, in the transaction that appends it: the WatchPlays feed.
# Results already written are numbered in the order they were appended.
FEED_MIGRATION = """
ALTER TABLE plays ADD COLUMN result_sequence INTEGER;
UPDATE plays SET result_sequence = numbered.n
  FROM (SELECT sequence, row_number() OVER (ORDER BY sequence) AS n
        FROM plays WHERE status != 'pending') AS numbered
  WHERE plays.sequence = numbered.sequence;
CREATE UNIQUE INDEX plays_by_result ON plays (result_sequence) WHERE result_sequence IS NOT NULL;
"""

# Issue 14: the feed's numbers come from the kit's counter, which goes on from
# the last number given.
PLAYS_FEED = "plays"
FEED_COUNTER_MIGRATION = FEED_SEQUENCES_MIGRATION + feed_counter_migration(
    PLAYS_FEED, "plays", "result_sequence"
)

# Issue 13: the daily limit's and the win cap's counts, read at every draw, from
# the index alone (the member's spins of the day are not visited).
DAY_COUNTS_MIGRATION = """
DROP INDEX spins_day;
CREATE INDEX spins_day_counts ON spins
  (wheel_id, member_id, day, status, landed_index, fallback_reason);
"""

MIGRATIONS = (
    SCHEMA_V1,
    OUTBOX_MIGRATION,
    OUTBOX_KINDS_MIGRATION,
    SHAPE_MIGRATION,
    FINDINGS_MIGRATION,
    FEED_MIGRATION,
    FEED_COUNTER_MIGRATION,
    DAY_COUNTS_MIGRATION,
)


class GamesUnit(Protocol):
    """What the games' use cases need from storage, inside one transaction."""

    outbox: OutboxUnit

    # wheels
    def wheel_version(self, wheel_id: str, version: int = 0) -> WheelVersion | None: ...
    def insert_wheel(self, wheel_id: str, now_us: int) -> None: ...
    def add_wheel_version(
        self, wheel_id: str, config: WheelConfig, sold_out: Sequence[int], now_us: int
    ) -> WheelVersion: ...
    def list_wheels(self, after_id: str | None, limit: int) -> list[WheelVersion]: ...
    def stocking(self, transfer_id: str) -> Stocking | None: ...
    def insert_stocking(self, stocking: Stocking) -> None: ...
    def save_stocking(self, stocking: Stocking, now_us: int) -> None: ...
    # seeds
    def active_seed_pair(self, member_id: str) -> SeedPair | None: ...
    def seed_pair(self, pair_id: int) -> SeedPair: ...
    def insert_seed_pair(
        self, member_id: str, server_seed: bytes, client_seed: str, now_us: int
    ) -> SeedPair: ...
    def set_client_seed(self, pair_id: int, client_seed: str) -> None: ...
    def reveal_seed_pair(self, pair_id: int, now_us: int) -> None: ...
    def advance_nonce(self, pair_id: int) -> None: ...
    # spins
    def spin(self, spin_id: str) -> SpinRecord | None: ...
    def spin_settled_by(self, entry_id: str) -> SpinRecord | None: ...
    def pending_spin_of(self, member_id: str) -> SpinRecord | None: ...
    def spins_today(self, wheel_id: str, member_id: str, day: str) -> int: ...
    def wins_today(self, wheel_id: str, member_id: str, day: str, segment: int) -> int: ...
    def insert_spin(self, spin: SpinRecord) -> None: ...
    def save_spin(self, spin: SpinRecord, now_us: int) -> None: ...
    def draw_counts(self, wheel_id: str, version: int) -> dict[int, int]: ...
    # catch
    def catch_game(self, game_id: str) -> CatchGame | None: ...
    def insert_catch_game(self, game: CatchGame) -> None: ...
    def catch_session(self, session_id: str) -> CatchSession | None: ...
    def catch_session_settled_by(self, transfer_id: str) -> CatchSession | None: ...
    def insert_catch_session(self, session: CatchSession) -> None: ...
    def save_catch_session(self, session: CatchSession) -> None: ...
    def points_today(self, game_id: str, member_id: str, day: str) -> int: ...
    def leaderboard(
        self, game_id: str, week: str, after_rank: int, limit: int
    ) -> list[LeaderboardRow]: ...
    def leaderboard_entry(
        self, game_id: str, week: str, member_id: str
    ) -> LeaderboardRow | None: ...
    # the audit log
    def append_play(self, entry: PlayEntry) -> None: ...
    def results_after(self, after_sequence: int, limit: int) -> list[PlayResult]: ...
    def list_plays(
        self,
        member_id: str,
        game_id: str,
        start_us: int | None,
        end_us: int | None,
        after_sequence: int,
        limit: int,
    ) -> list[Play]: ...


# ---------------------------------------------------------------- row mapping

WHEEL_VERSION_COLUMNS = (
    "v.wheel_id, v.version, v.document, v.config_sha256, v.create_us, w.create_us"
)
SEED_PAIR_COLUMNS = (
    "pair_id, member_id, server_seed, commitment, client_seed, next_nonce, revealed_us"
)
SPIN_COLUMNS = (
    "spin_id, wheel_id, version, member_id, request_id, pair_id, client_seed, nonce,"
    " draw_value, drawn_index, landed_index, fallback_reason, prize, status, reason, entry_id,"
    " transfer_ids, points_balance_after, day, spins_today, create_us"
)
SESSION_COLUMNS = (
    "session_id, game_id, member_id, request_id, seed, start_us, expire_us, status,"
    " fingerprint, score, awarded, verdicts, transfer_id, day, week, daily_points_left, submit_us,"
    " findings"
)
STOCKING_COLUMNS = "transfer_id, wheel_id, unit, quantity, request_id, status, reason, create_us"
PLAY_COLUMNS = "sequence, play_id, kind, game_id, member_id, status, reason, detail, create_us"


@functools.lru_cache(maxsize=1024)
def _parsed_version(document: str) -> tuple[WheelConfig, tuple[int, ...]]:
    """An odds version's configuration and sold-out marks. A version never changes
    once written, so each document is parsed once per process (every spin reads one)."""
    parsed = json.loads(document)
    return config_from_stored(parsed), tuple(parsed["sold_out"])


def _wheel_version(row) -> WheelVersion:
    wheel_id, version, document, digest, create_us, wheel_create_us = row
    config, sold_out = _parsed_version(document)
    return WheelVersion(wheel_id, version, config, sold_out, digest, create_us, wheel_create_us)


def _prize_fields(prize: Prize) -> dict:
    return {"points": prize.points, "unit": prize.unit, "quantity": prize.quantity}


def _counters_fields(counters: Counters) -> dict:
    return {
        "nonce": counters.nonce,
        "spins_today": counters.spins_today,
        "points_today": counters.points_today,
    }


# Field by field rather than asdict() (which deep-copies): these run for every play.
def _prize_json(prize: Prize) -> str:
    return json.dumps(_prize_fields(prize))


SPIN_FIELDS = tuple(name.strip() for name in SPIN_COLUMNS.split(","))


def _spin(row) -> SpinRecord:
    values = list(row)
    values[12] = Prize(**json.loads(values[12]))
    values[13] = SpinStatus(values[13])
    values[16] = tuple(json.loads(values[16]))
    return SpinRecord(*values)


def _verdicts(raw: str | None) -> tuple[CatchVerdict, ...]:
    return tuple(CatchVerdict(**item) for item in json.loads(raw or "[]"))


def _session(row) -> CatchSession:
    values = list(row)
    values[7] = SessionStatus(values[7])
    values[11] = _verdicts(values[11])
    values[17] = tuple(json.loads(values[17]))
    return CatchSession(*values)


def _stocking(row) -> Stocking:
    values = list(row)
    values[5] = StockingStatus(values[5])
    return Stocking(*values)


# The audit detail is JSON in the names the first version wrote, so older rows read too.
def _detail_json(detail: PlayDetail) -> str:
    document: dict = {}
    if detail.proof is not None:
        proof = detail.proof
        document["proof"] = {
            "server_seed_sha256": proof.server_seed_sha256,
            "client_seed": proof.client_seed,
            "nonce": proof.nonce,
            "odds_version": proof.odds_version,
        }
        if proof.draw_value is not None:
            document["proof"]["draw_value"] = proof.draw_value
        if proof.drawn_index is not None:
            document["proof"]["drawn_index"] = proof.drawn_index
    if detail.landed_index is not None:
        document["landed_segment_index"] = detail.landed_index
    if detail.prize is not None:
        document["prize"] = _prize_fields(detail.prize)
    if detail.verdicts:
        document["verdicts"] = [asdict(verdict) for verdict in detail.verdicts]
    if detail.score is not None:
        document["score"] = detail.score
    document["transfer_ids"] = list(detail.transfer_ids)
    for name in ("counters_before", "counters_after"):
        counters = getattr(detail, name)
        if counters is not None:
            document[name] = _counters_fields(counters)
    return json.dumps(document, sort_keys=True)


def _detail(raw: str) -> PlayDetail:
    document = json.loads(raw)
    proof = document.get("proof")
    landed = document.get("landed_segment_index")
    return PlayDetail(
        proof=DrawProof(**proof) if proof else None,
        landed_index=None if landed is None or landed < 0 else landed,
        prize=Prize(**document["prize"]) if "prize" in document else None,
        verdicts=tuple(CatchVerdict(**item) for item in document.get("verdicts", [])),
        transfer_ids=tuple(document.get("transfer_ids", [])),
        score=document.get("score"),
        counters_before=Counters(**document["counters_before"])
        if "counters_before" in document
        else None,
        counters_after=Counters(**document["counters_after"])
        if "counters_after" in document
        else None,
    )


def _play(row) -> Play:
    sequence, play_id, kind, game_id, member_id, status, reason, detail, create_us = row
    entry = PlayEntry(
        play_id,
        PlayKind(kind),
        game_id,
        member_id,
        PlayStatus(status),
        reason,
        create_us,
        _detail(detail),
    )
    return Play(sequence, entry)


# Each member's best submitted score of the week; ties rank by who reached it first.
LEADERBOARD_SQL = """
WITH best AS (
  SELECT member_id, score, submit_us,
         row_number() OVER (PARTITION BY member_id ORDER BY score DESC, submit_us) AS pick
  FROM catch_sessions
  WHERE game_id = ? AND week = ? AND status IN ('pending', 'settled')
), ranked AS (
  SELECT row_number() OVER (ORDER BY score DESC, submit_us, member_id) AS rank,
         member_id, score, submit_us
  FROM best WHERE pick = 1
)
SELECT rank, member_id, score, submit_us FROM ranked"""


class SqliteGamesUnit:
    """GamesUnit over one sqlite3 connection, inside the caller's transaction."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self.outbox = SqliteOutbox(connection)
        # Plays appended by this write, inserted by before_commit.
        self._plays: list[PlayEntry] = []

    def _one(self, sql: str, parameters: Sequence = ()):
        return self._db.execute(sql, parameters).fetchone()

    def _all(self, sql: str, parameters: Sequence = ()) -> list:
        return self._db.execute(sql, parameters).fetchall()

    def _scalar(self, sql: str, parameters: Sequence) -> int:
        return self._one(sql, parameters)[0]

    # -- wheels

    def wheel_version(self, wheel_id: str, version: int = 0) -> WheelVersion | None:
        """The given odds version, or the current one for 0."""
        row = self._one(
            f"SELECT {WHEEL_VERSION_COLUMNS} FROM wheel_versions v JOIN wheels w USING (wheel_id)"
            " WHERE v.wheel_id = ?"
            " AND v.version = CASE WHEN ? = 0 THEN w.current_version ELSE ? END",
            (wheel_id, version, version),
        )
        return _wheel_version(row) if row else None

    def insert_wheel(self, wheel_id: str, now_us: int) -> None:
        self._db.execute(
            "INSERT INTO wheels (wheel_id, current_version, create_us) VALUES (?, 0, ?)",
            (wheel_id, now_us),
        )

    def add_wheel_version(
        self, wheel_id: str, config: WheelConfig, sold_out: Sequence[int], now_us: int
    ) -> WheelVersion:
        (version, wheel_create_us) = self._one(
            "UPDATE wheels SET current_version = current_version + 1 WHERE wheel_id = ?"
            " RETURNING current_version, create_us",
            (wheel_id,),
        )
        digest = config_hash(config, sold_out)
        self._db.execute(
            "INSERT INTO wheel_versions (wheel_id, version, document, config_sha256, create_us)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                wheel_id,
                version,
                canonical_json(stored_document(config, sold_out)),
                digest,
                now_us,
            ),
        )
        return WheelVersion(
            wheel_id, version, config, tuple(sorted(sold_out)), digest, now_us, wheel_create_us
        )

    def list_wheels(self, after_id: str | None, limit: int) -> list[WheelVersion]:
        rows = self._all(
            f"SELECT {WHEEL_VERSION_COLUMNS} FROM wheels w JOIN wheel_versions v"
            " ON v.wheel_id = w.wheel_id AND v.version = w.current_version"
            " WHERE w.wheel_id > ? ORDER BY w.wheel_id LIMIT ?",
            (after_id or "", limit),
        )
        return [_wheel_version(row) for row in rows]

    def stocking(self, transfer_id: str) -> Stocking | None:
        row = self._one(
            f"SELECT {STOCKING_COLUMNS} FROM wheel_stockings WHERE transfer_id = ?", (transfer_id,)
        )
        return _stocking(row) if row else None

    def insert_stocking(self, stocking: Stocking) -> None:
        self._db.execute(
            f"INSERT INTO wheel_stockings ({STOCKING_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                stocking.transfer_id,
                stocking.wheel_id,
                stocking.unit,
                stocking.quantity,
                stocking.request_id,
                stocking.status.value,
                stocking.reason,
                stocking.create_us,
            ),
        )

    def save_stocking(self, stocking: Stocking, now_us: int) -> None:
        self._db.execute(
            "UPDATE wheel_stockings SET status = ?, reason = ?, settled_us = ?"
            " WHERE transfer_id = ?",
            (stocking.status.value, stocking.reason, now_us, stocking.transfer_id),
        )

    # -- seeds

    def active_seed_pair(self, member_id: str) -> SeedPair | None:
        row = self._one(
            f"SELECT {SEED_PAIR_COLUMNS} FROM seed_pairs"
            " WHERE member_id = ? AND revealed_us IS NULL",
            (member_id,),
        )
        return SeedPair(*row) if row else None

    def seed_pair(self, pair_id: int) -> SeedPair:
        return SeedPair(
            *self._one(f"SELECT {SEED_PAIR_COLUMNS} FROM seed_pairs WHERE pair_id = ?", (pair_id,))
        )

    def insert_seed_pair(
        self, member_id: str, server_seed: bytes, client_seed: str, now_us: int
    ) -> SeedPair:
        commitment = seed_commitment(server_seed)
        (pair_id,) = self._one(
            "INSERT INTO seed_pairs (member_id, server_seed, commitment, client_seed, create_us)"
            " VALUES (?, ?, ?, ?, ?) RETURNING pair_id",
            (member_id, server_seed, commitment, client_seed, now_us),
        )
        return SeedPair(pair_id, member_id, server_seed, commitment, client_seed, 0)

    def set_client_seed(self, pair_id: int, client_seed: str) -> None:
        self._db.execute(
            "UPDATE seed_pairs SET client_seed = ? WHERE pair_id = ?", (client_seed, pair_id)
        )

    def reveal_seed_pair(self, pair_id: int, now_us: int) -> None:
        self._db.execute(
            "UPDATE seed_pairs SET revealed_us = ? WHERE pair_id = ?", (now_us, pair_id)
        )

    def advance_nonce(self, pair_id: int) -> None:
        self._db.execute(
            "UPDATE seed_pairs SET next_nonce = next_nonce + 1 WHERE pair_id = ?", (pair_id,)
        )

    # -- spins

    def spin(self, spin_id: str) -> SpinRecord | None:
        row = self._one(f"SELECT {SPIN_COLUMNS} FROM spins WHERE spin_id = ?", (spin_id,))
        return _spin(row) if row else None

    def spin_settled_by(self, entry_id: str) -> SpinRecord | None:
        row = self._one(f"SELECT {SPIN_COLUMNS} FROM spins WHERE entry_id = ?", (entry_id,))
        return _spin(row) if row else None

    def pending_spin_of(self, member_id: str) -> SpinRecord | None:
        row = self._one(
            f"SELECT {SPIN_COLUMNS} FROM spins WHERE member_id = ? AND status = 'pending' LIMIT 1",
            (member_id,),
        )
        return _spin(row) if row else None

    def spins_today(self, wheel_id: str, member_id: str, day: str) -> int:
        """Spins that count toward the daily limit: every one not rejected."""
        return self._scalar(
            "SELECT count(*) FROM spins WHERE wheel_id = ? AND member_id = ? AND day = ?"
            " AND status != 'rejected'",
            (wheel_id, member_id, day),
        )

    def wins_today(self, wheel_id: str, member_id: str, day: str, segment: int) -> int:
        return self._scalar(
            "SELECT count(*) FROM spins WHERE wheel_id = ? AND member_id = ? AND day = ?"
            " AND landed_index = ? AND fallback_reason IS NULL AND status != 'rejected'",
            (wheel_id, member_id, day, segment),
        )

    def insert_spin(self, spin: SpinRecord) -> None:
        # Field by field rather than asdict(): this runs for every spin.
        values = [getattr(spin, name) for name in SPIN_FIELDS]
        values[12] = _prize_json(spin.prize)
        values[13] = spin.status.value
        values[16] = json.dumps(list(spin.transfer_ids))
        self._db.execute(
            f"INSERT INTO spins ({SPIN_COLUMNS}) VALUES ({', '.join('?' * len(values))})", values
        )

    def save_spin(self, spin: SpinRecord, now_us: int) -> None:
        self._db.execute(
            "UPDATE spins SET landed_index = ?, fallback_reason = ?, prize = ?, status = ?,"
            " reason = ?, entry_id = ?, transfer_ids = ?, points_balance_after = ?,"
            " settled_us = ? WHERE spin_id = ?",
            (
                spin.landed_index,
                spin.fallback_reason,
                _prize_json(spin.prize),
                spin.status.value,
                spin.reason,
                spin.entry_id,
                json.dumps(list(spin.transfer_ids)),
                spin.points_balance_after,
                now_us,
                spin.spin_id,
            ),
        )

    def draw_counts(self, wheel_id: str, version: int) -> dict[int, int]:
        return dict(
            self._all(
                "SELECT drawn_index, count(*) FROM spins WHERE wheel_id = ? AND version = ?"
                " AND status = 'settled' GROUP BY drawn_index",
                (wheel_id, version),
            )
        )

    # -- catch

    def catch_game(self, game_id: str) -> CatchGame | None:
        row = self._one("SELECT config, create_us FROM catch_games WHERE game_id = ?", (game_id,))
        return (
            CatchGame(game_id, catch_config_from_stored(json.loads(row[0])), row[1])
            if row
            else None
        )

    def insert_catch_game(self, game: CatchGame) -> None:
        self._db.execute(
            "INSERT INTO catch_games (game_id, config, create_us) VALUES (?, ?, ?)",
            (game.game_id, stored_catch_config(game.config), game.create_us),
        )

    def catch_session(self, session_id: str) -> CatchSession | None:
        row = self._one(
            f"SELECT {SESSION_COLUMNS} FROM catch_sessions WHERE session_id = ?", (session_id,)
        )
        return _session(row) if row else None

    def catch_session_settled_by(self, transfer_id: str) -> CatchSession | None:
        row = self._one(
            f"SELECT {SESSION_COLUMNS} FROM catch_sessions WHERE transfer_id = ?", (transfer_id,)
        )
        return _session(row) if row else None

    def insert_catch_session(self, session: CatchSession) -> None:
        self._db.execute(
            "INSERT INTO catch_sessions (session_id, game_id, member_id, request_id, seed,"
            " start_us, expire_us, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                session.session_id,
                session.game_id,
                session.member_id,
                session.request_id,
                session.seed,
                session.start_us,
                session.expire_us,
                session.status.value,
            ),
        )

    def save_catch_session(self, session: CatchSession) -> None:
        self._db.execute(
            "UPDATE catch_sessions SET status = ?, fingerprint = ?, score = ?, awarded = ?,"
            " verdicts = ?, transfer_id = ?, day = ?, week = ?, daily_points_left = ?,"
            " submit_us = ?, findings = ? WHERE session_id = ?",
            (
                session.status.value,
                session.fingerprint,
                session.score,
                session.awarded,
                json.dumps([asdict(verdict) for verdict in session.verdicts]),
                session.transfer_id,
                session.day,
                session.week,
                session.daily_points_left,
                session.submit_us,
                json.dumps(list(session.findings)),
                session.session_id,
            ),
        )

    def points_today(self, game_id: str, member_id: str, day: str) -> int:
        return self._scalar(
            "SELECT coalesce(sum(awarded), 0) FROM catch_sessions"
            " WHERE game_id = ? AND member_id = ? AND day = ? AND status IN ('pending', 'settled')",
            (game_id, member_id, day),
        )

    def leaderboard(
        self, game_id: str, week: str, after_rank: int, limit: int
    ) -> list[LeaderboardRow]:
        rows = self._all(
            LEADERBOARD_SQL + " WHERE rank > ? ORDER BY rank LIMIT ?",
            (game_id, week, after_rank, limit),
        )
        return [LeaderboardRow(*row) for row in rows]

    def leaderboard_entry(self, game_id: str, week: str, member_id: str) -> LeaderboardRow | None:
        row = self._one(LEADERBOARD_SQL + " WHERE member_id = ?", (game_id, week, member_id))
        return LeaderboardRow(*row) if row else None

    # -- the audit log

    def append_play(self, entry: PlayEntry) -> None:
        """Appends the entry when this write commits (see before_commit)."""
        self._plays.append(entry)

    def before_commit(self) -> None:
        """The write's plays, in order; each result with the feed's next number,
        taken last so the counter is held only until COMMIT."""
        if not self._plays:
            return
        results = sum(entry.status != PlayStatus.PENDING for entry in self._plays)
        first = take_sequences(self._db, PLAYS_FEED, results) if results else 0
        numbers = iter(range(first, first + results))
        self._db.executemany(
            "INSERT INTO plays (play_id, kind, game_id, member_id, status, reason, detail,"
            " create_us, result_sequence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    entry.play_id,
                    entry.kind.value,
                    entry.game_id,
                    entry.member_id,
                    entry.status.value,
                    entry.reason,
                    _detail_json(entry.detail),
                    entry.create_us,
                    None if entry.status == PlayStatus.PENDING else next(numbers),
                )
                for entry in self._plays
            ],
        )
        self._plays.clear()

    def results_after(self, after_sequence: int, limit: int) -> list[PlayResult]:
        rows = self._all(
            f"SELECT result_sequence, {PLAY_COLUMNS} FROM plays"
            " WHERE result_sequence > ? ORDER BY result_sequence LIMIT ?",
            (after_sequence, limit),
        )
        return [PlayResult(row[0], _play(row[1:])) for row in rows]

    def list_plays(
        self,
        member_id: str,
        game_id: str,
        start_us: int | None,
        end_us: int | None,
        after_sequence: int,
        limit: int,
    ) -> list[Play]:
        conditions = ["sequence > ?"]
        parameters: list = [after_sequence]
        for column, value in (("member_id", member_id), ("game_id", game_id)):
            if value:
                conditions.append(f"{column} = ?")
                parameters.append(value)
        if start_us is not None:
            conditions.append("create_us >= ?")
            parameters.append(start_us)
        if end_us is not None:
            conditions.append("create_us < ?")
            parameters.append(end_us)
        rows = self._all(
            f"SELECT {PLAY_COLUMNS} FROM plays WHERE {' AND '.join(conditions)}"
            " ORDER BY sequence LIMIT ?",
            (*parameters, limit),
        )
        return [_play(row) for row in rows]


class GamesStore(SqliteStore[GamesUnit]):
    """The games' SQLite file."""

    def __init__(self, path: Path | str, **options: Unpack[StoreOptions]) -> None:
        super().__init__(path, MIGRATIONS, SqliteGamesUnit, **options)
