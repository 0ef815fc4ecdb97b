"""Per-member limits turn over at local midnight in the member's own zone; early
access opens for its tier first; the catalog shows each member where they stand."""

from __future__ import annotations

import grpc
from loyalty.rewards.v1 import rewards_service_pb2 as pb

from tests.support.errors import expect_error
from tests.support.rewards import (
    HOUR_US,
    START_US,
    TIMEOUT,
    at,
    create_reward,
    redeem,
    spec,
)

# 2026-01-01 15:00 UTC is midnight in Tokyo (UTC+9, no DST).
TOKYO_MIDNIGHT_US = START_US + 15 * HOUR_US


async def catalog(world, member_id: str) -> dict[str, pb.CatalogEntry]:
    response = await world.stub.ListCatalog(
        pb.ListCatalogRequest(member_id=member_id), timeout=TIMEOUT
    )
    return {entry.reward_id: entry for entry in response.entries}


async def test_a_daily_limit_turns_over_at_midnight_in_the_members_zone(world) -> None:
    daily = spec("Daily treat", pb.REWARD_KIND_PHYSICAL, 10, limits=pb.Limits(per_day=1))
    await create_reward(world.stub, "treat", daily, stock=100)
    world.directory.set("tokyo", time_zone="Asia/Tokyo")
    world.directory.set("london", time_zone="Europe/London")
    for member in ("tokyo", "london"):
        await world.fund(member, 1000)
    world.clock.set(TOKYO_MIDNIGHT_US - 1)  # 23:59:59.999999 in Tokyo, 15:00 in London

    for member in ("tokyo", "london"):
        await redeem(world.stub, member, "treat", "first")
        refusal = await expect_error(
            redeem(world.stub, member, "treat", "second"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "LIMIT_REACHED",
        )
        assert refusal.details()
    assert (await catalog(world, "tokyo"))["treat"].limit_left == 0
    assert pb.CATALOG_LABEL_LIMIT_REACHED in (await catalog(world, "tokyo"))["treat"].labels

    world.clock.set(TOKYO_MIDNIGHT_US)  # a new day in Tokyo only

    assert (await redeem(world.stub, "tokyo", "treat", "third")).state == (
        pb.REDEMPTION_STATE_AWAITING_FULFILMENT
    )
    await expect_error(
        redeem(world.stub, "london", "treat", "third"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "LIMIT_REACHED",
    )
    assert (await catalog(world, "london"))["treat"].limit_left == 0


async def test_a_member_without_a_zone_counts_days_in_the_rewards_zone(world) -> None:
    daily = spec(
        "Daily treat",
        pb.REWARD_KIND_PHYSICAL,
        10,
        limits=pb.Limits(per_day=1, total=2),
        time_zone="Asia/Tokyo",
    )
    await create_reward(world.stub, "treat", daily, stock=100)
    await world.fund("m-1", 1000)  # not in the member directory at all
    world.clock.set(TOKYO_MIDNIGHT_US - 1)
    await redeem(world.stub, "m-1", "treat", "a")
    world.clock.set(TOKYO_MIDNIGHT_US)
    await redeem(world.stub, "m-1", "treat", "b")
    world.clock.advance(86_400)
    refusal = await expect_error(
        redeem(world.stub, "m-1", "treat", "c"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "LIMIT_REACHED",
    )
    assert "0 more" in refusal.details()


async def test_early_access_opens_for_its_tier_at_one_instant_and_for_everyone_later(
    world,
) -> None:
    early_us, opening_us = START_US + HOUR_US, START_US + 2 * HOUR_US
    launch = spec(
        "Launch edition",
        pb.REWARD_KIND_PHYSICAL,
        10,
        start_time=at(opening_us),
        early_access=[pb.EarlyAccess(tier="gold", start_time=at(early_us))],
    )
    await create_reward(world.stub, "launch", launch, stock=100)
    world.directory.set("gold-member", tier="gold")
    world.directory.set("silver-member", tier="silver")
    for member in ("gold-member", "silver-member"):
        await world.fund(member, 1000)

    world.clock.set(early_us - 1)
    await expect_error(
        redeem(world.stub, "gold-member", "launch", "g-0"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "NOT_YET_AVAILABLE",
    )
    world.clock.set(early_us)
    await redeem(world.stub, "gold-member", "launch", "g-1")
    await expect_error(
        redeem(world.stub, "silver-member", "launch", "s-1"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "EARLY_ACCESS_ONLY",
    )
    gold_view = (await catalog(world, "gold-member"))["launch"]
    silver_view = (await catalog(world, "silver-member"))["launch"]
    assert list(gold_view.labels) == [pb.CATALOG_LABEL_EARLY_ACCESS]
    assert list(silver_view.labels) == [pb.CATALOG_LABEL_COMING_SOON]
    assert silver_view.available_from.ToMicroseconds() == opening_us

    world.clock.set(opening_us - 1)
    await expect_error(
        redeem(world.stub, "silver-member", "launch", "s-2"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "EARLY_ACCESS_ONLY",
    )
    world.clock.set(opening_us)
    await redeem(world.stub, "silver-member", "launch", "s-3")


async def test_the_catalog_shows_prices_against_the_members_points(world) -> None:
    await create_reward(world.stub, "cheap", spec("Cheap", pb.REWARD_KIND_PHYSICAL, 50), stock=1)
    await create_reward(world.stub, "dear", spec("Dear", pb.REWARD_KIND_PHYSICAL, 500), stock=1)
    await create_reward(world.stub, "gone", spec("Gone", pb.REWARD_KIND_PHYSICAL, 10))
    gold_only = spec("Gold lounge", pb.REWARD_KIND_PHYSICAL, 10, tiers=["gold"])
    await create_reward(world.stub, "lounge", gold_only, stock=1)
    hidden = spec("Offer only", pb.REWARD_KIND_PHYSICAL, 0, hidden=True)
    await create_reward(world.stub, "secret", hidden, stock=1)
    await world.fund("m-1", 120)

    view = await catalog(world, "m-1")

    assert set(view) == {"cheap", "dear", "gone"}
    assert (view["cheap"].affordable, view["cheap"].points_to_go) == (True, 0)
    assert (view["dear"].affordable, view["dear"].points_to_go) == (False, 380)
    assert list(view["gone"].labels) == [pb.CATALOG_LABEL_SOLD_OUT]
    assert view["cheap"].limit_left == -1
