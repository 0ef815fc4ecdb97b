"""SQL for the games service. Sync functions run inside the kit's group-commit
writer (one transaction per group, a savepoint per call); async ones read on a
reader connection. Everything returns domain objects or plain values."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path

from services.games import domain
from services.kit.outbox import OUTBOX_MIGRATION
from services.kit.sqlite import Database

MIGRATIONS = (
    """
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
""",
    OUTBOX_MIGRATION,
)


# ---------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class WheelVersion:
    wheel_id: str
    version: int
    config: domain.WheelConfig
    sold_out: tuple[int, ...]
    config_sha256: str
    create_us: int
    wheel_create_us: int


@dataclass(frozen=True, slots=True)
class SeedPair:
    pair_id: int
    member_id: str
    server_seed: bytes
    commitment: str
    client_seed: str
    next_nonce: int
    revealed_us: int | None = None


@dataclass(frozen=True, slots=True)
class SpinRecord:
    spin_id: str
    wheel_id: str
    version: int
    member_id: str
    request_id: str
    pair_id: int
    client_seed: str
    nonce: int
    draw_value: int
    drawn_index: int
    landed_index: int
    fallback_reason: str | None
    prize: domain.Prize
    status: str
    reason: str | None
    entry_id: str | None
    transfer_ids: tuple[str, ...]
    points_balance_after: int | None
    day: str
    spins_today: int
    create_us: int


@dataclass(frozen=True, slots=True)
class CatchSessionRecord:
    session_id: str
    game_id: str
    member_id: str
    request_id: str
    seed: bytes
    start_us: int
    expire_us: int
    status: str
    fingerprint: str | None
    score: int | None
    awarded: int | None
    verdicts: tuple[domain.CatchVerdict, ...]
    transfer_id: str | None
    daily_points_left: int | None
    submit_us: int | None


@dataclass(frozen=True, slots=True)
class PlayRecord:
    sequence: int
    play_id: str
    kind: str
    game_id: str
    member_id: str
    status: str
    reason: str | None
    detail: dict
    create_us: int


@dataclass(frozen=True, slots=True)
class LeaderboardRow:
    rank: int
    member_id: str
    best_score: int
    achieve_us: int


@dataclass(slots=True)
class PlayEntry:
    """An audit entry to append, in the same transaction as what it records."""

    play_id: str
    kind: str
    game_id: str
    member_id: str
    status: str
    reason: str | None
    create_us: int
    detail: dict = field(default_factory=dict)


# ---------------------------------------------------------------- row mapping

WHEEL_VERSION_COLUMNS = (
    "v.wheel_id, v.version, v.document, v.config_sha256, v.create_us, w.create_us"
)


def _wheel_version(row) -> WheelVersion:
    wheel_id, version, document, digest, create_us, wheel_create_us = row
    parsed = json.loads(document)
    return WheelVersion(
        wheel_id,
        version,
        domain.config_from_document(parsed),
        tuple(parsed["sold_out"]),
        digest,
        create_us,
        wheel_create_us,
    )


SPIN_COLUMNS = (
    "spin_id, wheel_id, version, member_id, request_id, pair_id, client_seed, nonce,"
    " draw_value, drawn_index, landed_index, fallback_reason, prize, status, reason, entry_id,"
    " transfer_ids, points_balance_after, day, spins_today, create_us"
)


def _spin(row) -> SpinRecord:
    values = list(row)
    values[12] = domain.Prize(**json.loads(values[12]))
    values[16] = tuple(json.loads(values[16]))
    return SpinRecord(*values)


SESSION_COLUMNS = (
    "session_id, game_id, member_id, request_id, seed, start_us, expire_us, status,"
    " fingerprint, score, awarded, verdicts, transfer_id, daily_points_left, submit_us"
)


def _session(row) -> CatchSessionRecord:
    values = list(row)
    values[11] = tuple(domain.CatchVerdict(**item) for item in json.loads(values[11] or "[]"))
    return CatchSessionRecord(*values)


def _play(row) -> PlayRecord:
    values = list(row)
    values[7] = json.loads(values[7])
    return PlayRecord(*values)


PLAY_COLUMNS = "sequence, play_id, kind, game_id, member_id, status, reason, detail, create_us"


def catch_config_from_json(raw: str) -> domain.CatchConfig:
    parsed = json.loads(raw)
    parsed["object_types"] = tuple(domain.ObjectType(**item) for item in parsed["object_types"])
    return domain.CatchConfig(**parsed)


# ---------------------------------------------------------------- writes (inside the writer)


def insert_wheel(
    connection: sqlite3.Connection, wheel_id: str, config: domain.WheelConfig, now_us: int
) -> None:
    connection.execute(
        "INSERT INTO wheels (wheel_id, current_version, create_us) VALUES (?, 0, ?)",
        (wheel_id, now_us),
    )
    insert_wheel_version(connection, wheel_id, config, (), now_us)


def insert_wheel_version(
    connection: sqlite3.Connection,
    wheel_id: str,
    config: domain.WheelConfig,
    sold_out: tuple[int, ...] | list[int],
    now_us: int,
) -> int:
    (version,) = connection.execute(
        "UPDATE wheels SET current_version = current_version + 1 WHERE wheel_id = ?"
        " RETURNING current_version",
        (wheel_id,),
    ).fetchone()
    document = domain.wheel_document(config, sold_out)
    connection.execute(
        "INSERT INTO wheel_versions (wheel_id, version, document, config_sha256, create_us)"
        " VALUES (?, ?, ?, ?, ?)",
        (
            wheel_id,
            version,
            domain.canonical_json(document),
            domain.config_hash(config, sold_out),
            now_us,
        ),
    )
    return version


WHEEL_VERSION_SQL = (
    f"SELECT {WHEEL_VERSION_COLUMNS} FROM wheel_versions v JOIN wheels w USING (wheel_id)"
    " WHERE v.wheel_id = ? AND v.version = IIF(? = 0, w.current_version, ?)"
)


def wheel_version(
    connection: sqlite3.Connection, wheel_id: str, version: int = 0
) -> WheelVersion | None:
    """The given odds version, or the current one for 0."""
    row = connection.execute(WHEEL_VERSION_SQL, (wheel_id, version, version)).fetchone()
    return _wheel_version(row) if row else None


def active_seed_pair(connection: sqlite3.Connection, member_id: str) -> SeedPair | None:
    row = connection.execute(
        "SELECT pair_id, member_id, server_seed, commitment, client_seed, next_nonce, revealed_us"
        " FROM seed_pairs WHERE member_id = ? AND revealed_us IS NULL",
        (member_id,),
    ).fetchone()
    return SeedPair(*row) if row else None


def seed_pair_by_id(connection: sqlite3.Connection, pair_id: int) -> SeedPair:
    row = connection.execute(
        "SELECT pair_id, member_id, server_seed, commitment, client_seed, next_nonce, revealed_us"
        " FROM seed_pairs WHERE pair_id = ?",
        (pair_id,),
    ).fetchone()
    return SeedPair(*row)


def insert_seed_pair(
    connection: sqlite3.Connection,
    member_id: str,
    server_seed: bytes,
    client_seed: str,
    now_us: int,
) -> SeedPair:
    commitment = domain.seed_commitment(server_seed)
    cursor = connection.execute(
        "INSERT INTO seed_pairs (member_id, server_seed, commitment, client_seed, create_us)"
        " VALUES (?, ?, ?, ?, ?)",
        (member_id, server_seed, commitment, client_seed, now_us),
    )
    return SeedPair(cursor.lastrowid, member_id, server_seed, commitment, client_seed, 0)


def set_client_seed(connection: sqlite3.Connection, pair_id: int, client_seed: str) -> None:
    connection.execute(
        "UPDATE seed_pairs SET client_seed = ? WHERE pair_id = ?", (client_seed, pair_id)
    )


def reveal_seed_pair(connection: sqlite3.Connection, pair_id: int, now_us: int) -> None:
    connection.execute("UPDATE seed_pairs SET revealed_us = ? WHERE pair_id = ?", (now_us, pair_id))


def advance_nonce(connection: sqlite3.Connection, pair_id: int) -> None:
    connection.execute(
        "UPDATE seed_pairs SET next_nonce = next_nonce + 1 WHERE pair_id = ?", (pair_id,)
    )


SPIN_BY_ID_SQL = f"SELECT {SPIN_COLUMNS} FROM spins WHERE spin_id = ?"
PENDING_SPIN_SQL = (
    f"SELECT {SPIN_COLUMNS} FROM spins WHERE member_id = ? AND status = 'pending' LIMIT 1"
)


def spin_by_id(connection: sqlite3.Connection, spin_id: str) -> SpinRecord | None:
    row = connection.execute(SPIN_BY_ID_SQL, (spin_id,)).fetchone()
    return _spin(row) if row else None


def pending_spin_of(connection: sqlite3.Connection, member_id: str) -> SpinRecord | None:
    row = connection.execute(PENDING_SPIN_SQL, (member_id,)).fetchone()
    return _spin(row) if row else None


def _scalar(connection: sqlite3.Connection, sql: str, parameters: tuple) -> int:
    (value,) = connection.execute(sql, parameters).fetchone()
    return value


def spins_today(connection: sqlite3.Connection, wheel_id: str, member_id: str, day: str) -> int:
    """Spins that count toward the daily limit: every one not rejected."""
    return _scalar(
        connection,
        "SELECT count(*) FROM spins WHERE wheel_id = ? AND member_id = ? AND day = ?"
        " AND status != 'rejected'",
        (wheel_id, member_id, day),
    )


def wins_today(
    connection: sqlite3.Connection, wheel_id: str, member_id: str, day: str, segment: int
) -> int:
    return _scalar(
        connection,
        "SELECT count(*) FROM spins WHERE wheel_id = ? AND member_id = ? AND day = ?"
        " AND landed_index = ? AND fallback_reason IS NULL AND status != 'rejected'",
        (wheel_id, member_id, day, segment),
    )


def insert_spin(connection: sqlite3.Connection, spin: SpinRecord) -> None:
    values = asdict(spin)
    values["prize"] = json.dumps(asdict(spin.prize))
    values["transfer_ids"] = json.dumps(list(spin.transfer_ids))
    columns = ", ".join(values)
    placeholders = ", ".join(f":{name}" for name in values)
    connection.execute(f"INSERT INTO spins ({columns}) VALUES ({placeholders})", values)


def update_spin(connection: sqlite3.Connection, spin_id: str, now_us: int, **changes) -> None:
    if "transfer_ids" in changes:
        changes["transfer_ids"] = json.dumps(list(changes["transfer_ids"]))
    if "prize" in changes:
        changes["prize"] = json.dumps(asdict(changes["prize"]))
    assignments = ", ".join(f"{name} = :{name}" for name in changes)
    connection.execute(
        f"UPDATE spins SET {assignments}, settled_us = :now WHERE spin_id = :spin_id",
        {**changes, "now": now_us, "spin_id": spin_id},
    )


def append_play(connection: sqlite3.Connection, entry: PlayEntry) -> None:
    connection.execute(
        "INSERT INTO plays (play_id, kind, game_id, member_id, status, reason, detail, create_us)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            entry.play_id,
            entry.kind,
            entry.game_id,
            entry.member_id,
            entry.status,
            entry.reason,
            json.dumps(entry.detail, sort_keys=True),
            entry.create_us,
        ),
    )


def catch_game(
    connection: sqlite3.Connection, game_id: str
) -> tuple[domain.CatchConfig, int] | None:
    row = connection.execute(
        "SELECT config, create_us FROM catch_games WHERE game_id = ?", (game_id,)
    ).fetchone()
    return (catch_config_from_json(row[0]), row[1]) if row else None


def insert_catch_game(
    connection: sqlite3.Connection, game_id: str, config: domain.CatchConfig, now_us: int
) -> None:
    connection.execute(
        "INSERT INTO catch_games (game_id, config, create_us) VALUES (?, ?, ?)",
        (game_id, domain.canonical_json(asdict(config)), now_us),
    )


def catch_session(connection: sqlite3.Connection, session_id: str) -> CatchSessionRecord | None:
    row = connection.execute(
        f"SELECT {SESSION_COLUMNS} FROM catch_sessions WHERE session_id = ?", (session_id,)
    ).fetchone()
    return _session(row) if row else None


def insert_catch_session(connection: sqlite3.Connection, session: CatchSessionRecord) -> None:
    connection.execute(
        "INSERT INTO catch_sessions (session_id, game_id, member_id, request_id, seed, start_us,"
        " expire_us, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'open')",
        (
            session.session_id,
            session.game_id,
            session.member_id,
            session.request_id,
            session.seed,
            session.start_us,
            session.expire_us,
        ),
    )


def points_today(connection: sqlite3.Connection, game_id: str, member_id: str, day: str) -> int:
    return _scalar(
        connection,
        "SELECT coalesce(sum(awarded), 0) FROM catch_sessions"
        " WHERE game_id = ? AND member_id = ? AND day = ? AND status IN ('pending', 'settled')",
        (game_id, member_id, day),
    )


def submit_catch_session(
    connection: sqlite3.Connection,
    session_id: str,
    *,
    status: str,
    fingerprint: str,
    score: int,
    awarded: int,
    verdicts: tuple[domain.CatchVerdict, ...],
    transfer_id: str | None,
    day: str,
    week: str,
    daily_points_left: int,
    now_us: int,
) -> None:
    connection.execute(
        "UPDATE catch_sessions SET status = ?, fingerprint = ?, score = ?, awarded = ?,"
        " verdicts = ?, transfer_id = ?, day = ?, week = ?, daily_points_left = ?, submit_us = ?"
        " WHERE session_id = ?",
        (
            status,
            fingerprint,
            score,
            awarded,
            json.dumps([asdict(verdict) for verdict in verdicts]),
            transfer_id,
            day,
            week,
            daily_points_left,
            now_us,
            session_id,
        ),
    )


def finish_catch_session(connection: sqlite3.Connection, session_id: str, status: str) -> bool:
    """pending -> settled or failed; False when another task finished it first."""
    cursor = connection.execute(
        "UPDATE catch_sessions SET status = ? WHERE session_id = ? AND status = 'pending'",
        (status, session_id),
    )
    return cursor.rowcount == 1


# ---------------------------------------------------------------- reads


class GamesStore(Database):
    """The games' SQLite file and its SQL."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, MIGRATIONS)

    async def spin_context(
        self, spin_id: str, member_id: str, wheel_id: str
    ) -> tuple[SpinRecord | None, SpinRecord | None, WheelVersion | None]:
        """The spin with this id, the member's pending spin and the wheel, as
        committed: read beside the writer, so no group commit is waited for."""
        existing = await self.rows(SPIN_BY_ID_SQL, (spin_id,))
        pending = await self.rows(PENDING_SPIN_SQL, (member_id,))
        wheel = await self.rows(WHEEL_VERSION_SQL, (wheel_id, 0, 0))
        return (
            _spin(existing[0]) if existing else None,
            _spin(pending[0]) if pending else None,
            _wheel_version(wheel[0]) if wheel else None,
        )

    async def list_wheels(self, after_id: str, limit: int) -> list[WheelVersion]:
        rows = await self.rows(
            f"SELECT {WHEEL_VERSION_COLUMNS} FROM wheels w JOIN wheel_versions v"
            " ON v.wheel_id = w.wheel_id AND v.version = w.current_version"
            " WHERE w.wheel_id > ? ORDER BY w.wheel_id LIMIT ?",
            (after_id, limit),
        )
        return [_wheel_version(row) for row in rows]

    async def draw_counts(self, wheel_id: str, version: int) -> dict[int, int]:
        rows = await self.rows(
            "SELECT drawn_index, count(*) FROM spins WHERE wheel_id = ? AND version = ?"
            " AND status = 'settled' GROUP BY drawn_index",
            (wheel_id, version),
        )
        return dict(rows)

    async def list_plays(
        self,
        member_id: str,
        game_id: str,
        start_us: int,
        end_us: int,
        after_sequence: int,
        limit: int,
    ) -> list[PlayRecord]:
        index = "plays_member" if member_id else "plays_game"
        rows = await self.rows(
            f"SELECT {PLAY_COLUMNS} FROM plays INDEXED BY {index}"
            " WHERE (? = '' OR member_id = ?) AND (? = '' OR game_id = ?)"
            " AND create_us >= ? AND create_us < ? AND sequence > ?"
            " ORDER BY create_us, sequence LIMIT ?",
            (member_id, member_id, game_id, game_id, start_us, end_us, after_sequence, limit),
        )
        return [_play(row) for row in rows]

    async def leaderboard(
        self, game_id: str, week: str, offset: int, limit: int
    ) -> list[LeaderboardRow]:
        rows = await self.rows(
            LEADERBOARD_SQL + " WHERE rank > ? ORDER BY rank LIMIT ?",
            (game_id, week, offset, limit),
        )
        return [LeaderboardRow(*row) for row in rows]

    async def leaderboard_entry(
        self, game_id: str, week: str, member_id: str
    ) -> LeaderboardRow | None:
        rows = await self.rows(LEADERBOARD_SQL + " WHERE member_id = ?", (game_id, week, member_id))
        return LeaderboardRow(*rows[0]) if rows else None


# Each member's best settled score of the week; ties rank by who reached it first.
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
