"""Fixtures for the games tests: a real games server beside the shared real ledger
(both on port 0), and the use cases with no gRPC, on both engines: temporary
SQLite files, or the games and the ledger each in a fresh PostgreSQL schema."""

from __future__ import annotations

import pytest
import pytest_asyncio
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.kit.clock import ManualClock
from tests.support import deadlines
from tests.support.games import (
    GamesRig,
    RunningGames,
    games_settings,
    numbered_seeds,
    open_rig,
    start_games,
)
from tests.support.postgres import both_engines, database_for  # noqa: F401 (a fixture)


@pytest.fixture
def games_db(request, engine: str, tmp_path) -> str:
    """The games' db setting for this test: a SQLite file or a fresh PostgreSQL schema."""
    return database_for(request, engine, tmp_path, "games")


@pytest_asyncio.fixture
async def games(games_db, ledger) -> RunningGames:
    settings = games_settings(games_db, ledger.target)
    running = await start_games(settings, ledger.clock, numbered_seeds())
    yield running
    await running.stop()


@pytest_asyncio.fixture
async def ledger_stub(ledger) -> ledger_grpc.LedgerServiceStub:
    """The shared ledger through a channel whose calls have deadlines."""
    async with deadlines.channel(ledger.target) as channel:
        yield ledger_grpc.LedgerServiceStub(channel)


@pytest_asyncio.fixture
async def rig(tmp_path, games_db) -> GamesRig:
    rig = await open_rig(tmp_path, ManualClock(), numbered_seeds(), games_db)
    yield rig
    await rig.close()
