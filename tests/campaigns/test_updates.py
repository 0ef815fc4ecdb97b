"""Partial updates (AIP-134): without a mask only the fields sent change; a mask
names what changes (and clears what it names but does not send); "*" replaces."""

from __future__ import annotations

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb

from services.kit.status import field_violations
from tests.support.campaigns import fixed, launch, member, stamp, window
from tests.support.errors import expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
FULL_PROFILE = member(
    time_zone="Europe/Paris",
    tier="gold",
    birthday=pb.Birthday(month=3, day=7, year=1990),
    segments=["vip"],
    opt_ins=["marketing-email"],
)


async def upsert(stub, profile: pb.Member, *paths: str) -> pb.Member:
    request = pb.UpsertMemberRequest(member=profile, update_mask=FieldMask(paths=paths))
    return (await stub.UpsertMember(request)).member


async def test_a_member_update_of_one_field_keeps_the_others(campaigns):
    stub = campaigns.stub
    await upsert(stub, FULL_PROFILE)
    # What a CRM that syncs only tiers sends: the time zone and birthday stay.
    synced = await upsert(stub, member(tier="platinum"))
    assert synced.tier == "platinum"
    assert synced.time_zone == "Europe/Paris" and synced.birthday.day == 7
    assert list(synced.segments) == ["vip"] and list(synced.opt_ins) == ["marketing-email"]
    stored = (await stub.GetMember(pb.GetMemberRequest(member_id="m-1"))).member
    assert stored == synced


async def test_a_member_mask_changes_and_clears_what_it_names(campaigns):
    stub = campaigns.stub
    await upsert(stub, FULL_PROFILE)
    cleared = await upsert(stub, member(tier="ignored"), "birthday", "segments")
    assert not cleared.HasField("birthday") and list(cleared.segments) == []
    assert cleared.tier == "gold" and cleared.time_zone == "Europe/Paris"
    # "*" is the one way to replace the whole profile.
    replaced = await upsert(stub, member(tier="silver"), "*")
    assert (replaced.tier, replaced.time_zone, list(replaced.opt_ins)) == ("silver", "", [])
    assert replaced.create_time == cleared.create_time


async def test_member_masks_name_fields_that_may_change(campaigns):
    stub = campaigns.stub
    for paths in (["nickname"], ["member_id"], ["create_time"], ["*", "tier"]):
        request = pb.UpsertMemberRequest(member=member(), update_mask=FieldMask(paths=paths))
        violations = field_violations(await expect_error(stub.UpsertMember(request), INVALID))
        assert "update_mask" in violations, paths
    # Bad input changes nothing: the member was never created.
    await expect_error(
        stub.GetMember(pb.GetMemberRequest(member_id="m-1")),
        grpc.StatusCode.NOT_FOUND,
        "MEMBER_NOT_FOUND",
    )


def detailed_spec() -> pb.CampaignSpec:
    spec = fixed(10, budget=1_000, schedule=window("2026-01-01T00:00:00", 24 * 30))
    spec.description = "10 points on every purchase this month"
    spec.conditions.tiers.append("gold")
    spec.limits.member_limits.add(period=pb.LIMIT_PERIOD_DAY, max_points=50)
    return spec


async def update(stub, spec: pb.CampaignSpec, *paths: str) -> pb.Campaign:
    request = pb.UpdateCampaignRequest(
        campaign_id="c", spec=spec, update_mask=FieldMask(paths=paths)
    )
    return (await stub.UpdateCampaign(request)).campaign


async def test_a_campaign_update_of_one_field_keeps_the_rest(campaigns):
    stub = campaigns.stub
    launched = await launch(stub, "c", detailed_spec())
    updated = await update(stub, pb.CampaignSpec(reward=pb.Reward(points=20)))
    assert updated.version == 2 and updated.spec.reward.points == 20
    expected = pb.CampaignSpec()
    expected.CopyFrom(launched.spec)
    expected.reward.points = 20
    assert updated.spec == expected


async def test_a_campaign_mask_changes_and_clears_what_it_names(campaigns):
    stub = campaigns.stub
    launched = await launch(stub, "c", detailed_spec())
    end = stamp(campaigns.clock.now_us() + 86_400 * 1_000_000)
    ended = await update(
        stub, pb.CampaignSpec(schedule=pb.Schedule(end_time=end)), "schedule.end_time"
    )
    assert (
        ended.spec.schedule.end_time == end
        and ended.spec.schedule.duration.seconds == 24 * 30 * 3600
    )
    unlimited = await update(stub, pb.CampaignSpec(), "limits.member_limits", "conditions.tiers")
    assert (
        list(unlimited.spec.limits.member_limits) == []
        and list(unlimited.spec.conditions.tiers) == []
    )
    assert unlimited.spec.description == detailed_spec().description
    replaced = await update(stub, fixed(30, budget=2_000), "*")
    assert replaced.version == 4 and replaced.spec.reward.points == 30
    assert replaced.spec.description == "" and not replaced.spec.schedule.HasField("start")
    assert launched.spec.schedule.HasField("start")


async def test_an_update_that_makes_the_spec_invalid_changes_nothing(campaigns):
    stub = campaigns.stub
    launched = await launch(stub, "c", detailed_spec())
    error = await expect_error(
        update(stub, pb.CampaignSpec(reward=pb.Reward(points=0)), "reward.points"), INVALID
    )
    assert "spec.reward.points" in field_violations(error)
    error = await expect_error(update(stub, pb.CampaignSpec(), "reward.nope"), INVALID)
    assert "update_mask" in field_violations(error)
    current = (await stub.GetCampaign(pb.GetCampaignRequest(campaign_id="c"))).campaign
    assert current.version == 1 and current.spec == launched.spec
