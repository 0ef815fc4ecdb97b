"""The computed tier in targeting: campaigns follows progress' WatchTierChanges
(TierFeed applies what the FeedFollower reads) and a member's tiers are each
program's computed tier, raised to the profile's manual tier where that ranks
higher in the program's order."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import grpc
import pytest
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as pb_grpc
from loyalty.progress.v1 import progress_service_pb2 as progress_pb
from loyalty.progress.v1 import progress_service_pb2_grpc as progress_grpc

from services.campaigns.domain.model import Conditions, Member, Standing
from services.kit.feeds import FeedItem
from tests.support import deadlines
from tests.support.campaign_cases import join, launch, points_of, track
from tests.support.campaign_specs import activity, fixed, member
from tests.support.campaigns import start_campaigns
from tests.support.upstream import Feed

LADDER = ("base", "silver", "gold", "platinum")
GOLD_DAY = fixed(50, conditions=Conditions(activity_types=("app_login",), tiers=("gold",)))


def standing(tier: str, program: str = "status", ladder: tuple[str, ...] = LADDER) -> Standing:
    return Standing("m-1", program, tier, ladder)


@pytest.mark.parametrize(
    ("manual", "standings", "tiers"),
    [
        # No progress (or nothing computed yet): the profile's tier alone.
        ("gold", (), ("gold",)),
        ("", (), ()),
        # The computed tier, whatever a lower manual tier says.
        ("silver", (standing("gold"),), ("gold",)),
        ("", (standing("gold"),), ("gold",)),
        # A manual tier above the computed one is a floor.
        ("platinum", (standing("gold"),), ("platinum",)),
        # A manual label no program knows stands beside the computed tiers.
        ("vip", (standing("gold"),), ("gold", "vip")),
        # One tier per program; the floor applies in the program that knows it.
        ("gold", (standing("silver"), standing("red", "club", ("red", "black"))), ("gold", "red")),
        # A change recorded before changes named their program's tiers: no order to compare.
        ("platinum", (standing("gold", ladder=()),), ("gold", "platinum")),
    ],
)
def test_the_higher_of_the_computed_tier_and_the_manual_floor_wins(manual, standings, tiers):
    assert Member("m-1", tier=manual, standings=standings).tiers == tiers


async def apply(service, *changes: tuple[int, Standing]) -> int:
    return await service.campaigns.tiers.apply([FeedItem(seq, value) for seq, value in changes])


async def test_a_tier_only_member_day_follows_the_computed_tier(service):
    await join(service, member(tier="silver"))
    await launch(service, "gold-day", GOLD_DAY)
    login = activity("app_login", "2026-03-07T09:00:00", "login-1")
    assert points_of(await track(service, login), "gold-day") == 0

    assert await apply(service, (1, standing("gold"))) == 1
    assert (await service.campaigns.members.get("m-1")).tiers == ("gold",)
    later = activity("app_login", "2026-03-07T10:00:00", "login-2")
    assert points_of(await track(service, later), "gold-day") == 50

    # Down again (the period and its grace ended): the manual silver is no help.
    await apply(service, (2, standing("silver")))
    last = activity("app_login", "2026-03-07T11:00:00", "login-3")
    assert points_of(await track(service, last), "gold-day") == 0


async def test_a_change_at_or_below_the_stored_cursor_is_never_applied_again(service):
    await join(service)
    assert await apply(service, (1, standing("gold")), (2, standing("platinum"))) == 2
    # An overlapping reconnect delivers 2 again, then 3.
    assert await apply(service, (2, standing("base")), (3, standing("silver"))) == 3
    assert await apply(service, (1, standing("gold"))) == 3
    assert (await service.campaigns.members.get("m-1")).tiers == ("silver",)
    assert await service.campaigns.tiers.cursor() == 3


async def test_a_profile_update_keeps_the_computed_tiers(service):
    """Computed tiers arrive before or after the profile; a whole-profile update
    (which names no standings) neither stores nor drops them."""
    await apply(service, (1, standing("gold")))
    await join(service, member(tier="platinum"))
    assert (await service.campaigns.members.get("m-1")).tiers == ("platinum",)
    await join(service, replace(member(), tier=""))
    assert (await service.campaigns.members.get("m-1")).tiers == ("gold",)


class FakeProgress(progress_grpc.ProgressServiceServicer):
    """WatchTierChanges from a list; every other method is UNIMPLEMENTED."""

    def __init__(self) -> None:
        self.changes = Feed()
        self.asked_after: list[int] = []

    async def WatchTierChanges(self, request, context):
        self.asked_after.append(request.after_sequence)
        async for change in self.changes.follow(request.after_sequence):
            yield progress_pb.WatchTierChangesResponse(change=change)


def change(member_id: str, tier: str) -> progress_pb.TierChange:
    return progress_pb.TierChange(
        program_id="status", member_id=member_id, to_tier_id=tier, program_tier_ids=LADDER
    )


async def tiers_of(host, member_id: str) -> list[str]:
    async with deadlines.channel(f"127.0.0.1:{host.port}") as channel:
        answer = await pb_grpc.CampaignsServiceStub(channel).GetMember(
            pb.GetMemberRequest(member_id=member_id)
        )
    return list(answer.member.tiers)


async def test_a_restarted_campaigns_resumes_the_tier_feed_after_its_stored_cursor(
    ledger, campaigns_db
):
    progress = FakeProgress()
    server = grpc.aio.server()
    progress_grpc.add_ProgressServiceServicer_to_server(progress, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    db_path = campaigns_db
    try:
        await progress.changes.append(change("m-1", "gold"))
        await progress.changes.append(change("m-2", "silver"))
        host, channel = await start_campaigns(
            ledger.target, ledger.clock, db_path, progress_target=f"127.0.0.1:{port}"
        )
        async with channel:
            stub = pb_grpc.CampaignsServiceStub(channel)
            await stub.UpsertMember(pb.UpsertMemberRequest(member=pb.Member(member_id="m-1")))
            (follower,) = host.followers
            await asyncio.wait_for(follower.wait_for(2), deadlines.DEADLINE_SECONDS)
            assert await tiers_of(host, "m-1") == ["gold"]
        await host.stop(None)

        # While campaigns is down the member drops to silver; the restart reads on
        # from the stored cursor, not from the start.
        await progress.changes.append(change("m-1", "silver"))
        host, channel = await start_campaigns(
            ledger.target, ledger.clock, db_path, progress_target=f"127.0.0.1:{port}"
        )
        async with channel:
            (follower,) = host.followers
            await asyncio.wait_for(follower.wait_for(3), deadlines.DEADLINE_SECONDS)
            assert await tiers_of(host, "m-1") == ["silver"]
        await host.stop(None)
        assert progress.asked_after == [0, 2]
    finally:
        await server.stop(None)
