"""Campaigns' metrics, scraped from the real endpoint: calls by method and code,
each budget's funded and remaining points, and an award the ledger never
answered waiting in the outbox."""

from __future__ import annotations

import grpc
import pytest
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as pb_grpc

from services.campaigns.server import SERVICE_NAME
from services.kit.clock import ManualClock
from tests.support.campaigns import fixed, launch, program, purchase, start_campaigns, track
from tests.support.errors import expect_error
from tests.support.ledger import start_ledger
from tests.support.metrics import ANY_PORT, scrape

REQUESTS = "loyalty_rpc_requests_total"
FUNDED = "loyalty_campaigns_budget_funded_points"
REMAINING = "loyalty_campaigns_budget_remaining_points"


@pytest.fixture
async def world(ledger_db, campaigns_db):
    clock = ManualClock()
    ledger_host, ledger_channel, _ = await start_ledger(ledger_db, clock)
    host, channel = await start_campaigns(
        f"127.0.0.1:{ledger_host.port}",
        clock,
        campaigns_db,
        metrics_listen=ANY_PORT,
        metrics_cache_seconds=0,
    )
    yield clock, ledger_host, host, pb_grpc.CampaignsServiceStub(channel)
    await channel.close()
    await host.stop(None)
    await ledger_channel.close()
    await ledger_host.stop(None)


def rpc(method: str, code: str) -> dict[str, str]:
    return {"service": SERVICE_NAME, "method": method, "code": code}


async def test_activities_move_the_counts_the_budgets_and_the_outbox(world):
    clock, ledger_host, host, stub = world
    port = host.metrics_port
    await program(stub)
    await launch(stub, "bonus", fixed(10, budget=1_000))
    await expect_error(
        stub.GetCampaign(pb.GetCampaignRequest(campaign_id="nowhere")), grpc.StatusCode.NOT_FOUND
    )
    start = await scrape(port)
    assert start.value(FUNDED, campaign="bonus") == 1_000
    assert start.value(REMAINING, campaign="bonus") == 1_000
    assert start.value(REQUESTS, **rpc("GetCampaign", "NOT_FOUND")) == 1

    await track(stub, purchase("a1", 2_000, clock.now_us()))
    paid = await scrape(port)
    assert paid.value(REQUESTS, **rpc("TrackActivity", "OK")) == 1
    assert paid.value(REMAINING, campaign="bonus") == 990

    # The ledger goes away after the award is recorded: it waits in the outbox.
    await ledger_host.stop(None)
    await expect_error(
        track(stub, purchase("a2", 2_000, clock.now_us())), grpc.StatusCode.UNAVAILABLE
    )
    clock.advance(60)
    waiting = await scrape(port)
    assert waiting.value(REQUESTS, **rpc("TrackActivity", "UNAVAILABLE")) == 1
    assert waiting.value("loyalty_outbox_pending") == 1
    assert waiting.value("loyalty_outbox_oldest_pending_age_seconds") == 60
