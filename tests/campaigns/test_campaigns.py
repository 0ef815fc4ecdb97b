"""Campaign management over a real server: lifecycle, versions, budgets, schedules, stats."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb

from services.kit.status import field_violations
from tests.support.campaigns import (
    fixed,
    launch,
    member,
    multiplier,
    program,
    purchase,
    stamp,
    window,
)
from tests.support.errors import expect_error
from tests.support.ledger import balance

HOUR_US = 3600 * 1_000_000


async def state_of(stub, campaign_id: str) -> int:
    response = await stub.GetCampaign(pb.GetCampaignRequest(campaign_id=campaign_id))
    return response.campaign.state


async def test_lifecycle_from_draft_to_archive(campaigns):
    stub = campaigns.stub
    created = await stub.CreateCampaign(pb.CreateCampaignRequest(campaign_id="c", spec=fixed(10)))
    assert created.campaign.state == pb.CAMPAIGN_STATE_DRAFT
    # A draft has no budget account yet; scheduling opens and funds it.
    scheduled = (await stub.ScheduleCampaign(pb.ScheduleCampaignRequest(campaign_id="c"))).campaign
    assert scheduled.state == pb.CAMPAIGN_STATE_LIVE
    assert await balance(campaigns.ledger, "campaign:c:budget") == 10_000
    again = await stub.ScheduleCampaign(pb.ScheduleCampaignRequest(campaign_id="c"))
    assert again.campaign.version == 1  # a retried action changes nothing
    assert await balance(campaigns.ledger, "campaign:c:budget") == 10_000
    paused = await stub.PauseCampaign(pb.PauseCampaignRequest(campaign_id="c"))
    assert paused.campaign.state == pb.CAMPAIGN_STATE_PAUSED
    await expect_error(
        stub.ArchiveCampaign(pb.ArchiveCampaignRequest(campaign_id="c")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "CAMPAIGN_STATUS_CONFLICT",
    )
    resumed = await stub.ResumeCampaign(pb.ResumeCampaignRequest(campaign_id="c"))
    assert resumed.campaign.state == pb.CAMPAIGN_STATE_LIVE
    cancelled = await stub.CancelCampaign(pb.CancelCampaignRequest(campaign_id="c"))
    assert cancelled.campaign.state == pb.CAMPAIGN_STATE_ENDED
    archived = await stub.ArchiveCampaign(pb.ArchiveCampaignRequest(campaign_id="c"))
    assert archived.campaign.status == pb.CAMPAIGN_STATUS_ARCHIVED
    listed = await stub.ListCampaigns(pb.ListCampaignsRequest())
    assert listed.campaigns == []


async def test_create_is_idempotent_and_a_different_spec_is_already_exists(campaigns):
    stub = campaigns.stub
    await stub.CreateCampaign(pb.CreateCampaignRequest(campaign_id="c", spec=fixed(10)))
    again = await stub.CreateCampaign(pb.CreateCampaignRequest(campaign_id="c", spec=fixed(10)))
    assert again.campaign.version == 1
    await expect_error(
        stub.CreateCampaign(pb.CreateCampaignRequest(campaign_id="c", spec=fixed(11))),
        grpc.StatusCode.ALREADY_EXISTS,
        "CAMPAIGN_EXISTS",
    )


async def test_updates_make_versions_awards_record_them_and_budgets_only_grow(campaigns):
    stub = campaigns.stub
    await program(stub)
    await launch(stub, "c", fixed(10, budget=100))
    updated = await stub.UpdateCampaign(
        pb.UpdateCampaignRequest(campaign_id="c", spec=fixed(20, budget=300), expected_version=1)
    )
    assert updated.campaign.version == 2
    assert updated.campaign.budget_remaining == 300
    assert await balance(campaigns.ledger, "campaign:c:budget") == 300
    tracked = await stub.TrackActivity(
        pb.TrackActivityRequest(activity=purchase("a-1", 100, campaigns.clock.now_us()))
    )
    applied = {a.campaign_id: a for a in tracked.breakdown.applied}
    assert (applied["c"].points, applied["c"].campaign_version) == (20, 2)
    await expect_error(
        stub.UpdateCampaign(
            pb.UpdateCampaignRequest(campaign_id="c", spec=fixed(20, budget=50), expected_version=2)
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "BUDGET_DECREASE",
    )
    await expect_error(
        stub.UpdateCampaign(
            pb.UpdateCampaignRequest(
                campaign_id="c", spec=fixed(30, budget=300), expected_version=1
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "VERSION_MISMATCH",
    )


async def test_budget_exhausted_is_derived_and_reported(campaigns):
    stub = campaigns.stub
    await program(stub)
    await launch(stub, "c", fixed(40, budget=100))
    now = campaigns.clock.now_us()
    points = []
    for n in range(3):
        tracked = await stub.TrackActivity(
            pb.TrackActivityRequest(activity=purchase(f"a-{n}", 100, now))
        )
        points.append([a.points for a in tracked.breakdown.applied if a.campaign_id == "c"])
    assert points == [[40], [40], []]
    assert tracked.breakdown.refused[0].reason == pb.REFUSAL_REASON_BUDGET_EXHAUSTED
    assert await state_of(stub, "c") == pb.CAMPAIGN_STATE_BUDGET_EXHAUSTED
    stats = (await stub.GetCampaignStats(pb.GetCampaignStatsRequest(campaign_id="c"))).stats
    assert (stats.points_awarded, stats.activities, stats.unique_members) == (80, 2, 1)
    assert (stats.budget_funded, stats.budget_used, stats.budget_left) == (100, 80, 20)
    assert stats.ledger_budget_balance == 20 and stats.reconciled
    assert [(r.reason, r.count) for r in stats.refusals] == [
        (pb.REFUSAL_REASON_BUDGET_EXHAUSTED, 1)
    ]
    assert [(d.date, d.points_awarded) for d in stats.days] == [("2026-01-01", 80)]


async def test_get_schedule_lists_local_and_utc_times_across_dst(campaigns):
    stub = campaigns.stub
    spec = fixed(
        10,
        schedule=window("2026-03-01T02:30:00", 1, "America/New_York", rrule="FREQ=DAILY"),
    )
    await stub.CreateCampaign(pb.CreateCampaignRequest(campaign_id="night", spec=spec))
    after = stamp(1_772_841_600 * 1_000_000)  # 2026-03-07T00:00:00Z
    response = await stub.GetSchedule(
        pb.GetScheduleRequest(campaign_id="night", count=3, after_time=after)
    )
    assert [(o.local_start, o.local_end) for o in response.occurrences] == [
        ("2026-03-07T02:30:00-05:00", "2026-03-07T03:30:00-05:00"),
        ("2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"),
        ("2026-03-09T02:30:00-04:00", "2026-03-09T03:30:00-04:00"),
    ]
    assert response.occurrences[1].start_time.seconds == 1_772_953_200  # 07:00Z
    paris = await stub.GetSchedule(
        pb.GetScheduleRequest(
            campaign_id="night", count=1, after_time=after, time_zone="Europe/Paris"
        )
    )
    # The same instants shown in Paris (a campaign-zone window does not move with the zone shown).
    assert paris.occurrences[0].local_start == "2026-03-07T08:30:00+01:00"
    assert paris.occurrences[0].start_time == response.occurrences[0].start_time


async def test_list_filters_by_state_and_time_and_pages(campaigns):
    stub = campaigns.stub
    now = campaigns.clock.now_us()
    for n in range(5):
        await stub.CreateCampaign(pb.CreateCampaignRequest(campaign_id=f"c-{n}", spec=fixed(10)))
    await stub.ScheduleCampaign(pb.ScheduleCampaignRequest(campaign_id="c-3"))
    later = fixed(10, schedule=window("2026-06-01T00:00:00", 24))
    await launch(stub, "summer", later)
    live = await stub.ListCampaigns(pb.ListCampaignsRequest(states=[pb.CAMPAIGN_STATE_LIVE]))
    assert [c.campaign_id for c in live.campaigns] == ["c-3"]
    upcoming = await stub.ListCampaigns(
        pb.ListCampaignsRequest(states=[pb.CAMPAIGN_STATE_SCHEDULED], start_time=stamp(now))
    )
    assert [c.campaign_id for c in upcoming.campaigns] == ["summer"]
    january = await stub.ListCampaigns(
        pb.ListCampaignsRequest(start_time=stamp(now), end_time=stamp(now + 24 * HOUR_US))
    )
    assert "summer" not in [c.campaign_id for c in january.campaigns]
    seen, token = [], ""
    while True:
        page = await stub.ListCampaigns(pb.ListCampaignsRequest(page_size=2, page_token=token))
        assert len(page.campaigns) <= 2
        seen += [c.campaign_id for c in page.campaigns]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["c-0", "c-1", "c-2", "c-3", "c-4", "summer"]


BAD_SPECS = {
    "unknown zone": (
        fixed(10, schedule=window("2026-01-01T00:00:00", 1, "Mars/Base")),
        "spec.schedule.time_zone",
    ),
    "invalid rrule": (
        fixed(10, schedule=window("2026-01-01T00:00:00", 1, rrule="FREQ=FORTNIGHTLY")),
        "spec.schedule.rrule",
    ),
    "zero-length window": (
        fixed(10, schedule=window("2026-01-01T00:00:00", 0)),
        "spec.schedule.duration",
    ),
    "negative multiplier": (multiplier(-200), "spec.reward.multiplier_percent"),
    "overflowing budget": (fixed(10, budget=2**62), "spec.budget_points"),
    "no kind": (pb.CampaignSpec(display_name="x", budget_points=10), "spec.kind"),
}


@pytest.mark.parametrize("case", BAD_SPECS)
async def test_bad_specs_are_invalid_argument_and_change_nothing(campaigns, case):
    spec, field = BAD_SPECS[case]
    error = await expect_error(
        campaigns.stub.CreateCampaign(pb.CreateCampaignRequest(campaign_id="c", spec=spec)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert field in field_violations(error)
    await expect_error(
        campaigns.stub.GetCampaign(pb.GetCampaignRequest(campaign_id="c")),
        grpc.StatusCode.NOT_FOUND,
        "CAMPAIGN_NOT_FOUND",
    )


async def test_bad_input_on_every_other_rpc(campaigns):
    stub = campaigns.stub
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    bad_calls = {
        "member.time_zone": stub.UpsertMember(
            pb.UpsertMemberRequest(member=member(time_zone="Nowhere/Land"))
        ),
        "member.birthday.day": stub.UpsertMember(
            pb.UpsertMemberRequest(member=member(birthday=pb.Birthday(month=2, day=30)))
        ),
        "member_id": stub.GetMember(pb.GetMemberRequest(member_id="")),
        "activity.purchase.amount_minor": stub.TrackActivity(
            pb.TrackActivityRequest(activity=purchase("a-1", -5, campaigns.clock.now_us()))
        ),
        "activity.occur_time": stub.DryRunActivity(
            pb.DryRunActivityRequest(
                activity=pb.Activity(activity_id="a", member_id="m-1", type="app_login")
            )
        ),
        "campaign_id": stub.ScheduleCampaign(pb.ScheduleCampaignRequest(campaign_id="bad id!")),
        "page_size": stub.ListCampaigns(pb.ListCampaignsRequest(page_size=-1)),
        "page_token": stub.ListCampaigns(pb.ListCampaignsRequest(page_token="%%%")),
        "count": stub.GetSchedule(pb.GetScheduleRequest(campaign_id="c", count=-1)),
        "time_zone": stub.GetSchedule(pb.GetScheduleRequest(campaign_id="c", time_zone="X/Y")),
        "update_mask": stub.UpdateCampaign(
            pb.UpdateCampaignRequest(
                campaign_id="c", spec=fixed(5), update_mask=FieldMask(paths=["reward.nope"])
            )
        ),
        "expected_version": stub.UpdateCampaign(
            pb.UpdateCampaignRequest(campaign_id="c", spec=fixed(5), expected_version=-1)
        ),
        "states[0]": stub.ListCampaigns(pb.ListCampaignsRequest(states=[42])),
    }
    for field, call in bad_calls.items():
        violations = field_violations(await expect_error(call, invalid))
        assert field in violations, (field, violations)
    watch = stub.WatchCampaigns(pb.WatchCampaignsRequest(after_sequence=-1))
    assert "after_sequence" in field_violations(await expect_error(watch.read(), invalid))
    for call in (
        stub.GetCampaign(pb.GetCampaignRequest(campaign_id="")),
        stub.PauseCampaign(pb.PauseCampaignRequest(campaign_id="x" * 41)),
        stub.GetCampaignStats(pb.GetCampaignStatsRequest(campaign_id="a b")),
    ):
        assert "campaign_id" in field_violations(await expect_error(call, invalid))
    await expect_error(
        stub.GetMember(pb.GetMemberRequest(member_id="m-1")),
        grpc.StatusCode.NOT_FOUND,
        "MEMBER_NOT_FOUND",
    )
    await expect_error(
        stub.GetCampaignStats(pb.GetCampaignStatsRequest(campaign_id="nope")),
        grpc.StatusCode.NOT_FOUND,
        "CAMPAIGN_NOT_FOUND",
    )
