"""Redeeming through a real rewards server and a real ledger."""

from __future__ import annotations

import grpc
from loyalty.rewards.v1 import rewards_service_pb2 as pb

from tests.support.errors import rejected
from tests.support.rewards import TIMEOUT, create_reward, import_codes, redeem, spec


async def test_a_code_reward_takes_points_and_stock_and_shows_one_code(world) -> None:
    await create_reward(world.stub, "coffee", spec(), stock=5)
    await import_codes(world.stub, "coffee", ["code", "AAA-1", "AAA-2"])
    await world.fund("m-1", 250)

    redemption = await redeem(world.stub, "m-1", "coffee", "r-1")

    assert redemption.state == pb.REDEMPTION_STATE_ISSUED
    assert redemption.code == "AAA-1"
    assert await world.points("m-1") == 150
    assert await world.available("reward:coffee:stock") == 4
    again = await redeem(world.stub, "m-1", "coffee", "r-1")
    assert again == redemption
    assert await world.points("m-1") == 150


async def test_not_enough_points_holds_nothing(world) -> None:
    await create_reward(world.stub, "coffee", spec(), stock=5)
    await import_codes(world.stub, "coffee", ["AAA-1"])
    await world.fund("m-1", 50)
    refusal = await rejected(
        redeem(world.stub, "m-1", "coffee", "r-1"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "INSUFFICIENT_POINTS",
    )
    assert refusal.error.details()
    assert await world.available("m-1") == 50
    assert await world.available("reward:coffee:stock") == 5
    report = await world.stub.GetRewardReport(
        pb.GetRewardReportRequest(reward_id="coffee"), timeout=TIMEOUT
    )
    assert report.report.codes_left == 1
