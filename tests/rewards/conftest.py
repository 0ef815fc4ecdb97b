"""Fixtures of the rewards tests: a real rewards server beside a real ledger, on
each engine (a SQLite file, or the rewards in a fresh PostgreSQL schema)."""

from __future__ import annotations

import pytest
import pytest_asyncio

from tests.support.postgres import both_engines, database_for  # noqa: F401 (a fixture)
from tests.support.rewards import rewards_world


@pytest.fixture
def rewards_db(request, engine: str, tmp_path) -> str:
    """The rewards db setting for this test: a SQLite file or a fresh PostgreSQL schema."""
    return database_for(request, engine, tmp_path, "rewards")


@pytest_asyncio.fixture
async def world(tmp_path, rewards_db):
    async with rewards_world(tmp_path, db_path=rewards_db) as running:
        yield running
