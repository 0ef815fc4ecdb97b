"""What players may see and ask: a campaign's public face (never its budget or
its targeting), why an activity earned nothing, and "what would I earn"."""

from __future__ import annotations

import grpc
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb

from tests.support.campaigns import (
    activity,
    fixed,
    launch,
    member,
    program,
    purchase,
    track,
    window,
)
from tests.support.errors import expect_error

NEW_YORK = "America/New_York"
# What a player must never be sent: the budget and who the campaign is for.
HIDDEN = {
    *("budget_points", "budget_used", "budget_remaining", "budget_account_id"),
    *("tiers", "segments", "required_opt_in", "max_members", "stacking", "conditions", "limits"),
}


def field_names(descriptor) -> set[str]:
    """Every field name reachable from a message type."""
    names, seen, todo = set(), set(), [descriptor]
    while todo:
        current = todo.pop()
        if current.full_name in seen:
            continue
        seen.add(current.full_name)
        for field in current.fields:
            names.add(field.name)
            if field.message_type is not None:
                todo.append(field.message_type)
    return names


def test_the_public_face_has_no_budget_and_no_targeting_in_its_contract():
    for message in (pb.GetPublicCampaignResponse, pb.ListPublicCampaignsResponse):
        assert not field_names(message.DESCRIPTOR) & HIDDEN


async def public(stub, campaign_id: str, member_id: str = "m-1") -> pb.PublicCampaign:
    request = pb.GetPublicCampaignRequest(campaign_id=campaign_id, member_id=member_id)
    return (await stub.GetPublicCampaign(request)).campaign


async def listed(stub, member_id: str) -> list[str]:
    ids, token = [], ""
    while True:
        request = pb.ListPublicCampaignsRequest(member_id=member_id, page_size=1, page_token=token)
        page = await stub.ListPublicCampaigns(request)
        ids += [campaign.campaign_id for campaign in page.campaigns]
        token = page.next_page_token
        if not token:
            return ids


async def test_a_player_sees_what_it_pays_and_when_it_is_live_for_them(campaigns):
    stub = campaigns.stub
    await program(stub, "m-1")
    await stub.UpsertMember(pb.UpsertMemberRequest(member=member("m-1", time_zone=NEW_YORK)))
    evening = fixed(
        25,
        budget=5_000,
        schedule=window(
            "2026-01-01T18:00:00", 2, rrule="FREQ=DAILY", zone_mode=pb.ZONE_MODE_MEMBER
        ),
        conditions=pb.Conditions(activity_types=["app_login"]),
        limits=pb.Limits(member_limits=[pb.MemberLimit(period=pb.LIMIT_PERIOD_DAY, max_points=50)]),
    )
    evening.description = "25 points for logging in, 18:00 to 20:00 your time"
    await launch(stub, "evening", evening)
    face = await public(stub, "evening")
    assert (face.display_name, face.description) == (evening.display_name, evening.description)
    assert face.state == pb.PUBLIC_STATE_UPCOMING
    assert (face.reward.points, list(face.activity_types)) == (25, ["app_login"])
    assert [(limit.period, limit.max_points) for limit in face.member_limits] == [
        (pb.LIMIT_PERIOD_DAY, 50)
    ]
    # Its windows in the member's own zone: 18:00 in New York, not in Paris.
    assert face.windows[0].local_start == "2026-01-01T18:00:00-05:00"
    assert face.windows[0].time_zone == NEW_YORK
    campaigns.clock.advance(23 * 3600 + 30 * 60)  # 18:30 in New York
    assert (await public(stub, "evening")).state == pb.PUBLIC_STATE_LIVE
    assert await listed(stub, "m-1") == ["base", "evening"]


async def test_targeted_and_draft_campaigns_are_not_found_for_others(campaigns):
    stub = campaigns.stub
    await program(stub, "gold", "silver")
    await stub.UpsertMember(pb.UpsertMemberRequest(member=member("gold", tier="gold")))
    await launch(stub, "gold-day", fixed(10, conditions=pb.Conditions(tiers=["gold"])))
    await stub.CreateCampaign(pb.CreateCampaignRequest(campaign_id="draft", spec=fixed(5)))
    assert (await public(stub, "gold-day", "gold")).state == pb.PUBLIC_STATE_LIVE
    for campaign_id, member_id in (("gold-day", "silver"), ("draft", "gold")):
        await expect_error(
            public(stub, campaign_id, member_id), grpc.StatusCode.NOT_FOUND, "CAMPAIGN_NOT_FOUND"
        )
    assert await listed(stub, "gold") == ["base", "gold-day"]
    assert await listed(stub, "silver") == ["base"]


async def test_a_spent_budget_shows_as_ended_not_as_a_budget(campaigns):
    stub = campaigns.stub
    await program(stub)
    await launch(stub, "tiny", fixed(10, budget=10))
    spent = await track(stub, activity("a-1", "app_login", campaigns.clock.now_us()))
    assert spent.breakdown.total_points == 10
    assert (await public(stub, "tiny")).state == pb.PUBLIC_STATE_ENDED
    assert await listed(stub, "m-1") == ["base"]
    # A refusal a player sees names no budget figure.
    late = await track(stub, activity("a-2", "app_login", campaigns.clock.now_us()))
    (refused,) = late.breakdown.refused
    assert refused.reason == pb.REFUSAL_REASON_BUDGET_EXHAUSTED
    assert "left" not in refused.explanation and "0" not in refused.explanation.split()


async def reason(stub, message: pb.Activity) -> pb.NoPoints:
    breakdown = (await track(stub, message)).breakdown
    assert breakdown.total_points == 0
    return breakdown.no_points


async def test_an_activity_that_earned_nothing_says_why(campaigns):
    stub, clock = campaigns.stub, campaigns.clock
    await program(stub, "m-1", "silver")
    now = clock.now_us()
    no_rule = await reason(stub, activity("r-1", "product_review", now))
    assert no_rule.reason == pb.REFUSAL_REASON_NO_CAMPAIGN
    reviews = pb.Conditions(activity_types=["product_review"], tiers=["gold"])
    capped = pb.Limits(member_limits=[pb.MemberLimit(period=pb.LIMIT_PERIOD_DAY, max_points=20)])
    await launch(stub, "reviews", fixed(20, conditions=reviews, limits=capped))
    await stub.UpsertMember(pb.UpsertMemberRequest(member=member("m-1", tier="gold")))
    # Not for this member: said without saying which condition (no "gold").
    not_for_them = await reason(stub, activity("r-2", "product_review", now, member_id="silver"))
    assert not_for_them.reason == pb.REFUSAL_REASON_NOT_ELIGIBLE
    assert "gold" not in not_for_them.explanation
    assert (await track(stub, activity("r-3", "product_review", now))).breakdown.total_points == 20
    at_cap = await reason(stub, activity("r-4", "product_review", now + 1))
    assert at_cap.reason == pb.REFUSAL_REASON_MEMBER_LIMIT_REACHED
    saturdays = fixed(5, schedule=window("2025-12-27T00:00:00", 24, rrule="FREQ=WEEKLY;BYDAY=SA"))
    saturdays.conditions.activity_types.append("social_share")
    await launch(stub, "saturdays", saturdays)  # 1 January 2026 is a Thursday
    outside = await reason(stub, activity("s-1", "social_share", now))
    assert outside.reason == pb.REFUSAL_REASON_OUTSIDE_WINDOW
    login = await reason(stub, activity("l-1", "app_login", now))
    assert login.reason == pb.REFUSAL_REASON_NO_CAMPAIGN
    bought = (await track(stub, purchase("p-1", 500, now))).breakdown
    assert bought.total_points == 5 and not bought.HasField("no_points")


async def test_a_player_can_ask_what_they_would_earn(campaigns):
    stub = campaigns.stub
    await program(stub)
    await launch(
        stub, "shares", fixed(15, conditions=pb.Conditions(activity_types=["social_share"]))
    )
    request = pb.DryRunActivityRequest(
        activity=activity("s-1", "social_share", campaigns.clock.now_us())
    )
    would = (await stub.DryRunActivity(request)).breakdown
    assert would.total_points == 15 and would.balance == 0
    # Nothing was recorded: tracking it now is its first delivery.
    tracked = await track(stub, request.activity)
    assert not tracked.replayed and tracked.breakdown.total_points == 15
