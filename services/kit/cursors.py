"""Where a feed follower keeps its cursor: a `cursors` table in the consumer's
own database, written by the transaction that applies the events (see
feeds.FeedFollower), so the cursor and what it covers commit together."""

from __future__ import annotations

import sqlite3

CURSORS_MIGRATION = "CREATE TABLE cursors (feed TEXT PRIMARY KEY, sequence INTEGER NOT NULL);"


def read_cursor(connection: sqlite3.Connection, feed: str) -> int:
    row = connection.execute("SELECT sequence FROM cursors WHERE feed = ?", (feed,)).fetchone()
    return row[0] if row else 0


def write_cursor(connection: sqlite3.Connection, feed: str, sequence: int) -> None:
    connection.execute(
        "INSERT INTO cursors (feed, sequence) VALUES (?, ?)"
        " ON CONFLICT (feed) DO UPDATE SET sequence = excluded.sequence",
        (feed, sequence),
    )
