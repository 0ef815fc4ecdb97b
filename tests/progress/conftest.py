"""Fixtures for progress: a real ledger, fake campaigns and games feeds, and a
real progress server on port 0 following them, all on one ManualClock; and the
store each runs on, on each engine (a SQLite file, a fresh PostgreSQL schema)."""

from __future__ import annotations

import pytest
import pytest_asyncio

from tests.support.postgres import both_engines, database_for  # noqa: F401 (a fixture)
from tests.support.progress import running_progress


@pytest.fixture
def progress_db(request, engine: str, tmp_path) -> str:
    """The progress db setting for this test: a SQLite file or a fresh PostgreSQL schema."""
    return database_for(request, engine, tmp_path, "progress")


@pytest_asyncio.fixture
async def running(tmp_path, progress_db):
    async with running_progress(tmp_path, progress_db) as world:
        yield world
