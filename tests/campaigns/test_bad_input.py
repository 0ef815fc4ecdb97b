"""Bad and hostile values over a real server: each is INVALID_ARGUMENT naming its
field, with a message that never echoes a long value in full."""

from __future__ import annotations

import grpc
from google.protobuf import timestamp_pb2
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb

from services.kit.status import field_violations
from tests.support.campaigns import activity, fixed, member, program, purchase, track
from tests.support.errors import expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
YEAR_1_S = -62_135_596_800  # 0001-01-01T00:00:00Z, the first Timestamp protobuf allows
YEAR_10000_S = 253_402_300_800  # 10000-01-01T00:00:00Z, past the last one
# Far under grpc's 8 KiB default for a client's received metadata.
SMALL_ERROR_BYTES = 2_000


def trailers_size(error: grpc.aio.AioRpcError) -> int:
    return sum(len(key) + len(value) for key, value in error.trailing_metadata() or ())


async def violations_of(call) -> dict[str, str]:
    error = await expect_error(call, INVALID)
    assert trailers_size(error) < SMALL_ERROR_BYTES
    return field_violations(error)


def at_seconds(seconds: int) -> pb.Activity:
    message = activity("a-1", "app_login", 0)
    message.occur_time.CopyFrom(timestamp_pb2.Timestamp(seconds=seconds))
    return message


async def test_an_activity_at_the_unix_epoch_is_out_of_range_not_missing(campaigns):
    stub = campaigns.stub
    await program(stub)
    missing = pb.Activity(activity_id="a-1", member_id="m-1", type="app_login")
    assert (await violations_of(track(stub, missing)))["activity.occur_time"] == "is required"
    epoch = (await violations_of(track(stub, at_seconds(0))))["activity.occur_time"]
    assert epoch != "is required" and "1971-01-01" in epoch


async def test_year_1_and_year_10000_get_the_same_message(campaigns):
    stub = campaigns.stub
    await program(stub)
    too_early = await violations_of(track(stub, at_seconds(YEAR_1_S)))
    too_late = await violations_of(track(stub, at_seconds(YEAR_10000_S)))
    assert too_early["activity.occur_time"] == too_late["activity.occur_time"]
    assert too_early["activity.occur_time"] == "must be a time from 1971-01-01 to 9997-12-31 (UTC)"
    schedule = await violations_of(
        stub.GetSchedule(
            pb.GetScheduleRequest(
                campaign_id="c", after_time=timestamp_pb2.Timestamp(seconds=YEAR_10000_S)
            )
        )
    )
    assert schedule["after_time"] == too_late["activity.occur_time"]


async def test_a_70000_character_id_is_shown_shortened(campaigns):
    long_id = "m" * 70_000
    violations = await violations_of(
        campaigns.stub.GetMember(pb.GetMemberRequest(member_id=long_id))
    )
    assert "70,000 characters" in violations["member_id"]
    assert len(violations["member_id"]) < 300


async def test_a_300_character_zone_is_unknown_not_internal(campaigns):
    profile = member(time_zone="Europe/" + "x" * 300)
    violations = await violations_of(
        campaigns.stub.UpsertMember(pb.UpsertMemberRequest(member=profile))
    )
    assert "unknown IANA time zone" in violations["member.time_zone"]
    spec = fixed(10)
    spec.schedule.time_zone = "a" * 300
    violations = await violations_of(
        campaigns.stub.CreateCampaign(pb.CreateCampaignRequest(campaign_id="c", spec=spec))
    )
    assert "unknown IANA time zone" in violations["spec.schedule.time_zone"]


async def test_attribute_keys_stay_out_of_field_paths(campaigns):
    stub = campaigns.stub
    await program(stub)
    message = purchase("a-1", 100, campaigns.clock.now_us())
    message.attributes["k" * 5_000] = "v"
    violations = await violations_of(track(stub, message))
    assert list(violations) == ["activity.attributes"]
    assert "5,000 characters" in violations["activity.attributes"]


async def test_a_hundred_duplicate_limits_are_one_violation(campaigns):
    spec = fixed(10)
    spec.limits.member_limits.extend(
        pb.MemberLimit(period=pb.LIMIT_PERIOD_DAY, max_points=5) for _ in range(100)
    )
    violations = await violations_of(
        campaigns.stub.CreateCampaign(pb.CreateCampaignRequest(campaign_id="c", spec=spec))
    )
    assert violations == {"spec.limits.member_limits": "at most 4 entries, got 100"}


async def test_long_rrule_and_exclusions_are_refused_briefly(campaigns):
    spec = fixed(10)
    spec.schedule.start.year, spec.schedule.start.month, spec.schedule.start.day = 2026, 1, 1
    spec.schedule.duration.seconds = 3600
    spec.schedule.rrule = "FREQ=DAILY;BYHOUR=" + "9" * 5_000
    rrule = await violations_of(
        campaigns.stub.CreateCampaign(pb.CreateCampaignRequest(campaign_id="c", spec=spec))
    )
    assert len(rrule["spec.schedule.rrule"]) < 300
    spec.schedule.rrule = "FREQ=DAILY"
    spec.schedule.exclusions.add(year=2026, month=2, day=30)
    exclusion = await violations_of(
        campaigns.stub.CreateCampaign(pb.CreateCampaignRequest(campaign_id="c", spec=spec))
    )
    assert "not a valid date" in exclusion["spec.schedule.exclusions[0]"]
    spec.schedule.ClearField("exclusions")
    spec.schedule.duration.seconds = 10**15
    duration = await violations_of(
        campaigns.stub.CreateCampaign(pb.CreateCampaignRequest(campaign_id="c", spec=spec))
    )
    assert "366 days" in duration["spec.schedule.duration"]
