"""Rewards through the real gateway (native gRPC): the demo's redemption, played
by the demo's own code, and who may call what."""

from __future__ import annotations

import grpc
import pytest
import pytest_asyncio

from tests.support.rewards import rewards_gateway, rewards_world
from tools.demo import (
    COFFEE_PRICE,
    REWARDS,
    CallError,
    GrpcCaller,
    MemberStory,
    Program,
    num,
    redeem_story,
    set_up_rewards,
)


@pytest_asyncio.fixture
async def gateway(tmp_path):
    async with (
        rewards_world(tmp_path) as world,
        rewards_gateway(world) as front,
        grpc.aio.insecure_channel(front.target) as channel,
    ):
        yield world, GrpcCaller(channel), front.mint


async def test_a_member_redeems_sees_the_code_and_is_refunded(gateway) -> None:
    world, call, mint = gateway
    program = Program(
        "story", mint.issue("manager", "campaign-manager"), mint.issue("pos", "admin")
    )
    member = MemberStory("story-member", mint.issue("story-member", "player"))
    await world.fund(member.member_id, 120)
    said: list[str] = []

    reward_id = await set_up_rewards(call, program, said.append)
    told = await redeem_story(call, program, member, reward_id, said.append)

    assert told.catalog_entry["affordable"] is True
    assert told.redemption["state"] == "REDEMPTION_STATE_ISSUED"
    assert told.redemption["code"] == "STORY-COFFEE-1"
    assert [r["code"] for r in told.mine] == ["STORY-COFFEE-1"]
    assert num(told.wallet_after_redeeming, "balance") == 120 - COFFEE_PRICE
    assert told.refunded["state"] == "REDEMPTION_STATE_REFUNDED"
    assert "code" not in told.refunded
    assert num(told.wallet_after_refund, "balance") == 120
    assert (num(told.report, "reversed"), num(told.report, "codesLeft")) == (1, 2)
    assert any("code STORY-COFFEE-1" in line for line in said)


@pytest.mark.parametrize(
    ("method", "request_message", "reason"),
    [
        (
            "Redeem",
            {"memberId": "someone-else", "rewardId": "x", "requestId": "r"},
            "MEMBER_MISMATCH",
        ),
        ("ListMyRedemptions", {"memberId": "someone-else"}, "MEMBER_MISMATCH"),
        ("CreateReward", {"rewardId": "x", "spec": {"title": "x"}}, "ROLE_REQUIRED"),
        ("RefundRedemption", {"redemptionId": "rd-1"}, "ROLE_REQUIRED"),
        ("GetProgramReport", {}, "ROLE_REQUIRED"),
    ],
)
async def test_a_player_acts_only_as_themselves_and_never_as_a_manager(
    gateway, method: str, request_message: dict, reason: str
) -> None:
    _world, call, mint = gateway
    with pytest.raises(CallError) as refused:
        await call(REWARDS, method, request_message, mint.issue("m-1", "player"))
    assert (refused.value.code, refused.value.reason) == ("PERMISSION_DENIED", reason)
