"""Fixtures for the games tests: a real games server beside the shared real ledger
(both on port 0 over temporary SQLite files), and the use cases with no gRPC."""

from __future__ import annotations

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


@pytest_asyncio.fixture
async def games(tmp_path, ledger) -> RunningGames:
    settings = games_settings(tmp_path / "games.db", ledger.target)
    running = await start_games(settings, ledger.clock, numbered_seeds())
    yield running
    await running.stop()


@pytest_asyncio.fixture
async def ledger_stub(ledger) -> ledger_grpc.LedgerServiceStub:
    """The shared ledger through a channel whose calls have deadlines."""
    async with deadlines.channel(ledger.target) as channel:
        yield ledger_grpc.LedgerServiceStub(channel)


@pytest_asyncio.fixture
async def rig(tmp_path) -> GamesRig:
    rig = await open_rig(tmp_path, ManualClock(), numbered_seeds())
    yield rig
    await rig.close()
