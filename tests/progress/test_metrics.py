"""Progress' metrics, scraped from its real endpoint: calls by method and code,
members per tier, each feed's lag while the consumer is behind, and an award
the ledger never answered waiting in the outbox."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from loyalty.progress.v1 import progress_service_pb2 as pb

from services.progress.server import SERVICE_NAME
from tests.support.errors import expect_error
from tests.support.metrics import ANY_PORT, scrape
from tests.support.progress import (
    CLUB,
    REVIEWER,
    TIMEOUT,
    apply,
    at,
    caught_up,
    earn,
    running_progress,
)

REQUESTS = "loyalty_rpc_requests_total"
LAG = "loyalty_feed_lag_seconds"
TIERS = "loyalty_progress_tier_members"


@pytest.fixture
async def world(tmp_path):
    async with running_progress(
        tmp_path, metrics_listen=ANY_PORT, metrics_cache_seconds=0
    ) as running:
        yield running


def rpc(method: str, code: str) -> dict[str, str]:
    return {"service": SERVICE_NAME, "method": method, "code": code}


async def test_calls_tiers_and_a_consumer_behind_its_feed_show(world, monkeypatch):
    clock, ledger, host, progress = world.clock, world.ledger, world.host, world.progress
    port = host.metrics_port
    await apply(progress, CLUB)
    await expect_error(
        progress.GetDefinition(pb.GetDefinitionRequest(id="nowhere"), timeout=TIMEOUT),
        grpc.StatusCode.NOT_FOUND,
    )
    sequence = await earn(ledger, "activity:a1:base", "m-1", 1_200, "a1")
    await caught_up(host, "ledger", sequence)
    first = await scrape(port)
    assert first.value(REQUESTS, **rpc("ApplyDefinition", "OK")) == 1
    assert first.value(REQUESTS, **rpc("GetDefinition", "NOT_FOUND")) == 1
    assert first.value(TIERS, program="club", tier="silver") == 1
    assert first.value(TIERS, program="club", tier="gold") == 0
    assert first.value(LAG, feed="ledger") == 0
    assert first.value("loyalty_feed_connected", feed="ledger") == 1
    applied = first.value("loyalty_feed_events_applied_total", feed="ledger")

    # The store is slow to take the next event: the consumer falls behind its feed.
    feeds = host.cases.feeds
    original = feeds.apply
    entered, gate = asyncio.Event(), asyncio.Event()

    async def slow_apply(name, batch):
        entered.set()
        await gate.wait()
        return await original(name, batch)

    monkeypatch.setattr(feeds, "apply", slow_apply)
    sequence = await earn(ledger, "activity:a2:base", "m-2", 100, "a2")
    await asyncio.wait_for(entered.wait(), TIMEOUT)
    clock.advance(75)
    behind = await scrape(port)
    assert behind.value(LAG, feed="ledger") == 75
    assert behind.value(LAG, feed="campaigns") == 0
    gate.set()
    await caught_up(host, "ledger", sequence)
    after = await scrape(port)
    assert after.value(LAG, feed="ledger") == 0
    assert after.value("loyalty_feed_events_applied_total", feed="ledger") > applied


async def test_an_award_the_ledger_never_answered_waits_in_the_outbox(world):
    clock, upstream, host = world.clock, world.upstream, world.host
    await apply(world.progress, REVIEWER)
    await world.ledger_host.stop(None)
    for n in range(3):
        last = await upstream.activity(f"r{n}", "m-1", "product_review", at(2026, 3, 2, 9))
    await caught_up(host, "campaigns", last)
    clock.advance(120)
    waiting = await scrape(host.metrics_port)
    # The silver level's bonus is recorded and cannot be posted.
    assert waiting.value("loyalty_outbox_pending") == 1
    assert waiting.value("loyalty_outbox_oldest_pending_age_seconds") == 120
