"""Fixtures of the rewards tests: a real rewards server beside a real ledger, on
each engine (a SQLite file, or the rewards in a fresh PostgreSQL schema)."""

from __future__ import annotations

import pytest
import pytest_asyncio

from tests.support.postgres import ENGINES, fresh_database
from tests.support.rewards import rewards_world


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    return request.param


@pytest.fixture
def rewards_db(request, engine: str, tmp_path) -> str:
    """The rewards db setting for this test: a SQLite file or a fresh PostgreSQL schema."""
    if engine == "postgres":
        request.getfixturevalue("postgres")  # so the session stops the server at its end
    return fresh_database(tmp_path, engine, "rewards")


@pytest_asyncio.fixture
async def world(tmp_path, rewards_db):
    async with rewards_world(tmp_path, db_path=rewards_db) as running:
        yield running
