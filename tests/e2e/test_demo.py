"""`make demo` against a running suite: each run has ids of its own, and archives the
campaigns and reward it made (or, with --keep, says it leaves them)."""

from __future__ import annotations

import asyncio
import os
import re
import sys

import grpc
import pytest
from loyalty.campaigns.v1 import campaigns_service_pb2 as campaigns_pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as campaigns_grpc
from loyalty.rewards.v1 import rewards_service_pb2 as rewards_pb
from loyalty.rewards.v1 import rewards_service_pb2_grpc as rewards_grpc

from tests.support.gateway import REPO
from tools.demo import TokenMint
from tools.suite import Suite

pytestmark = pytest.mark.asyncio(loop_scope="module")
DEMO_SECONDS = 120
CAMPAIGN_KEYS = ("base", "double", "share", "birthday")


async def demo(suite: Suite, mint: TokenMint, *args: str) -> tuple[str, str]:
    """One `python -m tools.demo` run against the suite: (its tag, its output)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.demo",
        "--gateway",
        suite.target("gateway"),
        *args,
        cwd=REPO,
        env={
            **os.environ,
            "GATEWAY_JWT_SECRET": mint.secret.decode(),
            "GATEWAY_JWT_ISSUER": mint.issuer,
            "GATEWAY_JWT_AUDIENCE": mint.audience,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), DEMO_SECONDS)
    assert process.returncode == 0, err.decode()
    text = out.decode()
    return re.search(r"== Setting up program (\S+) ", text).group(1), text


async def statuses(suite: Suite, tag: str) -> tuple[set[int], bool]:
    """The statuses of the run's campaigns, and whether its reward is archived."""
    async with grpc.aio.insecure_channel(suite.target("campaigns")) as channel:
        stub = campaigns_grpc.CampaignsServiceStub(channel)
        found = {
            (
                await stub.GetCampaign(
                    campaigns_pb.GetCampaignRequest(campaign_id=f"{tag}-{key}"), timeout=10
                )
            ).campaign.status
            for key in CAMPAIGN_KEYS
        }
    async with grpc.aio.insecure_channel(suite.target("rewards")) as channel:
        reward = (
            await rewards_grpc.RewardsServiceStub(channel).GetReward(
                rewards_pb.GetRewardRequest(reward_id=f"{tag}-coffee"), timeout=10
            )
        ).reward
    return found, reward.archived


async def test_each_run_uses_its_own_ids_and_archives_what_it_made(suite, mint):
    first, told = await demo(suite, mint)
    second, _ = await demo(suite, mint)
    assert first != second
    assert "every id below is this run's own" in told
    assert f"archived campaign {first}-base" in told and f"reward {first}-coffee" in told
    assert f"left: wheel {first}-wheel, catch game {first}-catch" in told
    campaigns, reward = await statuses(suite, first)
    assert campaigns == {campaigns_pb.CAMPAIGN_STATUS_ARCHIVED}
    assert reward


async def test_keep_leaves_them_and_says_so(suite, mint):
    tag, told = await demo(suite, mint, "--keep")
    assert f"left: campaign {tag}-base" in told and "archived" not in told
    campaigns, reward = await statuses(suite, tag)
    assert campaigns_pb.CAMPAIGN_STATUS_ARCHIVED not in campaigns
    assert not reward
