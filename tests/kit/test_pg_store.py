"""PgStore's retried writes: a write that collides every time it runs ends as
UNAVAILABLE with a reason (the caller sends the same request again), never as
a raw database error, and nothing of it is committed."""

from __future__ import annotations

import pytest

from services.kit.errors import Unavailable
from services.kit.postgres import MAX_ATTEMPTS, PgStore, RetryTransaction
from tests.support.postgres import fresh_database

MIGRATIONS = ("CREATE TABLE notes (note TEXT PRIMARY KEY);",)


class NotesUnit:
    def __init__(self, connection) -> None:
        self._db = connection

    def add(self, note: str) -> None:
        self._db.execute("INSERT INTO notes (note) VALUES (?)", (note,))

    def notes(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT note FROM notes").fetchall()]


async def test_a_write_that_always_collides_is_unavailable_and_leaves_nothing(
    tmp_path, postgres
) -> None:
    store = PgStore(fresh_database(tmp_path, "postgres", "notes"), "notes", MIGRATIONS, NotesUnit)
    await store.open()
    runs = 0

    def collides(unit: NotesUnit) -> None:
        nonlocal runs
        runs += 1
        unit.add(f"try-{runs}")
        raise RetryTransaction

    try:
        with pytest.raises(Unavailable) as refused:
            await store.write(collides)
        assert refused.value.reason == "STORE_CONTENDED"
        assert runs == MAX_ATTEMPTS
        assert await store.read(lambda unit: unit.notes()) == []
        await store.write(lambda unit: unit.add("next"))
        assert await store.read(lambda unit: unit.notes()) == ["next"]
    finally:
        await store.close()
