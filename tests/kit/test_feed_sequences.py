"""The kit's feed sequences: with concurrent writers (two stores on one
PostgreSQL: two replicas) a reader following `sequence > cursor` never finds a
gap, numbers a rolled-back write took come back, and on PostgreSQL a store's
feed wakes on another store's commits."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from services.kit.feed_sequences import (
    FEED_SEQUENCES_MIGRATION,
    feed_counter_migration,
    take_sequences,
)
from services.kit.feeds import CommitSignal
from services.kit.postgres import PgStore
from services.kit.sqlite import SqliteStore
from tests.support.postgres import ENGINES, fresh_database

MIGRATIONS = (
    FEED_SEQUENCES_MIGRATION
    + "CREATE TABLE events (sequence BIGINT PRIMARY KEY, writer TEXT NOT NULL,"
    " note TEXT NOT NULL UNIQUE);\n" + feed_counter_migration("events", "events", "sequence"),
)
WRITERS = 6
WRITES = 20
DEADLINE_SECONDS = 120


class GivenUp(Exception):
    """A write that fails after taking its numbers: they must come back."""


class EventsUnit:
    def __init__(self, connection) -> None:
        self._db = connection
        self._queued: list[tuple[str, str]] = []

    def append(self, writer: str, note: str) -> None:
        self._queued.append((writer, note))

    def before_commit(self) -> None:
        if not self._queued:
            return
        first = take_sequences(self._db, "events", len(self._queued))
        self._db.executemany(
            "INSERT INTO events (sequence, writer, note) VALUES (?, ?, ?)",
            [(first + n, *event) for n, event in enumerate(self._queued)],
        )
        if any(note.endswith("!") for _, note in self._queued):
            raise GivenUp

    def after(self, cursor: int, limit: int = 50) -> list[tuple]:
        return self._db.execute(
            "SELECT sequence, writer, note FROM events WHERE sequence > ?"
            " ORDER BY sequence LIMIT ?",
            (cursor, limit),
        ).fetchall()


def stores_for(engine: str, tmp_path, signals: list[CommitSignal]) -> list:
    db = fresh_database(tmp_path, engine, "feed")
    if engine == "sqlite":
        return [SqliteStore(db, MIGRATIONS, EventsUnit, on_commit=signals[0].notify)]
    return [
        PgStore(db, "feed", MIGRATIONS, EventsUnit, on_commit=signal.notify, feeds=("events",))
        for signal in signals
    ]


@pytest.mark.parametrize("engine", ENGINES)
async def test_concurrent_writers_leave_no_gap_a_reader_could_skip(engine, tmp_path, request):
    if engine == "postgres":
        request.getfixturevalue("postgres")
    stores = stores_for(engine, tmp_path, [CommitSignal(), CommitSignal()])
    for store in stores:
        await store.open()
    committed: set[tuple[str, str]] = set()
    writing = True

    async def writer(name: str, store, seed: int) -> None:
        rng = random.Random(seed)
        for number in range(WRITES):
            events = [(name, f"{name}-{number}-{leg}") for leg in range(rng.randint(1, 3))]
            if rng.random() < 0.2:
                events[-1] = (name, events[-1][1] + "!")

            def work(unit: EventsUnit, events=events) -> None:
                for event in events:
                    unit.append(*event)

            try:
                await store.write(work)
                committed.update(events)
            except GivenUp:
                pass

    async def reader() -> list[tuple]:
        seen: list[tuple] = []
        for turn in itertools.count():
            store = stores[turn % len(stores)]
            cursor = seen[-1][0] if seen else 0
            # Every write has committed before a read that starts once writing ended.
            finished = not writing
            page = await store.read(lambda unit, cursor=cursor: unit.after(cursor))
            # Each page goes on from the cursor with no hole, while writers commit.
            assert [row[0] for row in page] == list(range(cursor + 1, cursor + 1 + len(page)))
            seen.extend(page)
            if finished and not page:
                return seen
            await asyncio.sleep(0)

    try:
        following = asyncio.create_task(reader())
        await asyncio.wait_for(
            asyncio.gather(
                *(
                    writer(f"w{n}", stores[n % len(stores)], seed=n)
                    for n in range(WRITERS * len(stores))
                )
            ),
            DEADLINE_SECONDS,
        )
        writing = False
        seen = await asyncio.wait_for(following, DEADLINE_SECONDS)
    finally:
        for store in stores:
            await store.close()
    assert [row[0] for row in seen] == list(range(1, len(committed) + 1))
    assert {(writer, note) for _, writer, note in seen} == committed
    assert not any(note.endswith("!") for _, _, note in seen)
    assert len(committed) > WRITERS * WRITES  # most writes committed, several events each


async def test_a_replica_feed_wakes_on_another_replica_commit(postgres, tmp_path):
    signals = [CommitSignal(), CommitSignal()]
    writing, watching = stores_for("postgres", tmp_path, signals)
    await writing.open()
    await watching.open()
    try:
        await asyncio.wait_for(watching.listening.wait(), DEADLINE_SECONDS)
        for number in range(3):
            version = signals[1].version
            await writing.write(lambda unit, number=number: unit.append("a", f"n{number}"))
            # Only the other store's commit can wake this signal: nothing writes through it.
            await asyncio.wait_for(signals[1].wait_past(version), DEADLINE_SECONDS)
            rows = await watching.read(lambda unit: unit.after(0))
            # Woken at COMMIT, never before: the row is there to read.
            assert rows[-1][2] == f"n{number}"
    finally:
        await writing.close()
        await watching.close()
