"""The rewards' metrics, scraped from their real endpoint: calls by method and
code, the codes each pool has left, and a stocking the ledger never answered
waiting in the outbox."""

from __future__ import annotations

import grpc
from loyalty.rewards.v1 import rewards_service_pb2 as pb

from services.rewards.server import SERVICE_NAME
from tests.support.errors import expect_error
from tests.support.metrics import ANY_PORT, scrape
from tests.support.rewards import TIMEOUT, create_reward, import_codes, redeem, rewards_world, spec

REQUESTS = "loyalty_rpc_requests_total"
CODES = "loyalty_rewards_codes_available"


def rpc(method: str, code: str) -> dict[str, str]:
    return {"service": SERVICE_NAME, "method": method, "code": code}


async def test_redemptions_move_the_counts_the_codes_and_the_outbox(tmp_path):
    async with rewards_world(tmp_path, metrics_listen=ANY_PORT, metrics_cache_seconds=0) as world:
        port = world.host.metrics_port
        await create_reward(world.stub, "coffee", spec(), stock=5)
        await create_reward(world.stub, "tea", spec("Tea"), stock=5)
        await import_codes(world.stub, "coffee", ["AAA-1", "AAA-2"])
        await world.fund("m-1", 250)
        start = await scrape(port)
        assert start.value(CODES, reward="coffee") == 2
        # A pool with no code left is 0, not missing: an alert on it fires.
        assert start.has(CODES, reward="tea") and start.value(CODES, reward="tea") == 0

        await redeem(world.stub, "m-1", "coffee", "r-1")
        await expect_error(
            redeem(world.stub, "m-1", "tea", "r-2"), grpc.StatusCode.FAILED_PRECONDITION
        )
        redeemed = await scrape(port)
        assert redeemed.value(REQUESTS, **rpc("Redeem", "OK")) == 1
        assert redeemed.value(REQUESTS, **rpc("Redeem", "FAILED_PRECONDITION")) == 1
        assert redeemed.value(CODES, reward="coffee") == 1

        # The ledger goes away after the stocking is recorded: it waits in the outbox.
        await world.ledger_host.stop(None)
        await expect_error(
            world.stub.StockReward(
                pb.StockRewardRequest(reward_id="coffee", quantity=5, request_id="more"),
                timeout=TIMEOUT,
            ),
            grpc.StatusCode.UNAVAILABLE,
        )
        world.clock.advance(45)
        waiting = await scrape(port)
        assert waiting.value(REQUESTS, **rpc("StockReward", "UNAVAILABLE")) == 1
        assert waiting.value("loyalty_outbox_pending") == 1
        assert waiting.value("loyalty_outbox_oldest_pending_age_seconds") == 45
        # Codes are the service's own figure: still served with the ledger away.
        assert waiting.value(CODES, reward="coffee") == 1
