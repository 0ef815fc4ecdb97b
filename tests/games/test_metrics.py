"""The games' metrics, scraped from their real endpoint: calls by method and code,
the prize stock each pool has left, and a spin the ledger never answered waiting
in the outbox."""

from __future__ import annotations

import grpc
import pytest
from loyalty.games.v1 import games_service_pb2 as pb

from services.games.server import SERVICE_NAME
from services.kit.clock import ManualClock
from tests.support.errors import expect_error
from tests.support.games import (
    ALWAYS_PAYS,
    create_stocked_wheel,
    games_settings,
    numbered_seeds,
    spin,
    start_games,
)
from tests.support.ledger import start_ledger
from tests.support.metrics import ANY_PORT, scrape

REQUESTS = "loyalty_rpc_requests_total"
STOCK = "loyalty_games_prize_pool_available"


def rpc(method: str, code: str) -> dict[str, str]:
    return {"service": SERVICE_NAME, "method": method, "code": code}


@pytest.fixture
async def world(tmp_path):
    clock = ManualClock()
    ledger_host, ledger_channel, _ = await start_ledger(tmp_path / "ledger.db", clock)
    settings = games_settings(
        tmp_path / "games.db",
        f"127.0.0.1:{ledger_host.port}",
        ledger_timeout_seconds=0.5,
        metrics_listen=ANY_PORT,
        metrics_cache_seconds=0,
    )
    games = await start_games(settings, clock, numbered_seeds())
    yield clock, ledger_host, games
    await games.stop()
    await ledger_channel.close()
    await ledger_host.stop(None)


async def test_spins_move_the_counts_the_stock_and_the_outbox(world):
    clock, ledger_host, games = world
    port = games.host.metrics_port
    await create_stocked_wheel(games.stub, "w", ALWAYS_PAYS)
    start = await scrape(port)
    assert start.value(STOCK, wheel="w", unit="points") == 10**6
    assert start.value("loyalty_outbox_pending") == 0

    await spin(games.stub, "w", "m-1", "r0")
    await expect_error(
        games.stub.GetWheel(pb.GetWheelRequest(wheel_id="nowhere")), grpc.StatusCode.NOT_FOUND
    )
    paid = await scrape(port)
    assert (
        paid.value(REQUESTS, **rpc("Spin", "OK")) == start.value(REQUESTS, **rpc("Spin", "OK")) + 1
    )
    assert paid.value(REQUESTS, **rpc("GetWheel", "NOT_FOUND")) == 1
    assert paid.value(STOCK, wheel="w", unit="points") == 10**6 - 20
    assert paid.value("loyalty_store_commit_writes_sum") > start.value(
        "loyalty_store_commit_writes_sum"
    )

    # The ledger goes away after the draw is recorded: the spin waits in the outbox.
    await ledger_host.stop(None)
    await expect_error(spin(games.stub, "w", "m-1", "r1"), grpc.StatusCode.UNAVAILABLE)
    clock.advance(90)
    waiting = await scrape(port)
    assert waiting.value(REQUESTS, **rpc("Spin", "UNAVAILABLE")) == 1
    assert waiting.value("loyalty_outbox_pending") == 1
    assert waiting.value("loyalty_outbox_oldest_pending_age_seconds") == 90
    # The stock is the ledger's figure: with the ledger away it is left out, not guessed.
    assert not waiting.has(STOCK)
