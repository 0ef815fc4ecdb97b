"""Gapless feed sequences in commit order, for any service's `Watch...` feed, on
both engines, with any number of writers.

A feed's rows are numbered from a one-row counter per feed (`feed_sequences`),
taken at the very end of the writing transaction (a unit's `before_commit()`,
which both stores call after the work, just before COMMIT):

    UPDATE feed_sequences SET last = last + n WHERE feed = ? RETURNING last

The counter row stays locked from there to COMMIT, so a transaction holding
number k+1 took it after the one holding k had committed (or rolled back and
given k back): numbers are taken in commit order, with no hole, and a reader
following `sequence > cursor` whose snapshot shows k+1 also shows k. A SERIAL
does neither (numbers are handed out at insert, not at commit: 7 can commit
before 6, and a rolled-back insert leaves a hole forever); `max(sequence) + 1`
behind a unique index is gapless too, but every writer then waits on the
index from its insert, not only from its last statement.

At SERIALIZABLE a write whose counter update comes after another write's
commit since its snapshot fails and is retried; PgStore(feeds=...) makes the
retry take the counters' table lock before its snapshot, so no write loses
the counter twice (postgres.py, `_retry_queues`).

On PostgreSQL taking numbers also sends the feed's NOTIFY in the same
transaction: PostgreSQL delivers it at COMMIT, so other replicas' feeds wake
(PgStore's `wake_feeds`) only once the rows are visible.
"""

from __future__ import annotations

from typing import Any

# Engine-neutral DDL: a service adds it to its migrations on both engines, then
# one `feed_counter_migration` per feed.
FEED_SEQUENCES_MIGRATION = """
CREATE TABLE feed_sequences (
  feed TEXT PRIMARY KEY,
  last BIGINT NOT NULL CHECK (last >= 0)
);
"""

# The channel of a feed's NOTIFY, per schema (tests share one database across
# schemas) and within PostgreSQL's 63-byte identifiers.
CHANNEL_SQL = "'feed_' || left(md5(current_schema() || '/' || ?), 24)"


def feed_counter_migration(feed: str, table: str, column: str) -> str:
    """The counter of `feed`, starting after the largest number `table.column`
    already holds (a feed that numbered its rows before the counter existed)."""
    return (
        f"INSERT INTO feed_sequences (feed, last)"
        f" SELECT '{feed}', coalesce(max({column}), 0) FROM {table};\n"
    )


def take_sequences(connection: Any, feed: str, count: int) -> int:
    """The first of `count` consecutive numbers of `feed`, taken last in the
    transaction (see above); on PostgreSQL the feed's listeners are notified at COMMIT."""
    (last,) = connection.execute(
        "UPDATE feed_sequences SET last = last + ? WHERE feed = ? RETURNING last", (count, feed)
    ).fetchone()
    if getattr(connection, "engine", "sqlite") == "postgres":
        notify_feed(connection, feed)
    return last - count + 1


def notify_feed(connection: Any, feed: str) -> None:
    """Wake `feed`'s readers on every replica once this transaction commits."""
    connection.execute(f"SELECT pg_notify({CHANNEL_SQL}, '')", (feed,))


def run_unit(work: Any, unit: Any) -> Any:
    """`work(unit)`, then the unit's `before_commit()` when it has one: both stores
    run every write through here, in the write's transaction (or savepoint)."""
    result = work(unit)
    before_commit = getattr(unit, "before_commit", None)
    if before_commit is not None:
        before_commit()
    return result
