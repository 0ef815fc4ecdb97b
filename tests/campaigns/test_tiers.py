"""The computed tier in targeting: campaigns follows progress' WatchTierChanges
(TierFeed applies what the FeedFollower reads) and a member's tiers are each
program's computed tier, raised to the profile's manual tier where that ranks
higher in the program's order."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.campaigns.domain.model import Conditions, Member, Standing
from services.kit.feeds import FeedItem
from tests.support.campaign_cases import join, launch, points_of, track
from tests.support.campaign_specs import activity, fixed, member

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
