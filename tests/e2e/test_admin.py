"""loyalty-admin, the managers' tool as installed, against the real suite through the gateway."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
import pytest
from loyalty.campaigns.v1 import campaigns_service_pb2 as campaigns_pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as campaigns_grpc

from tests.support.e2e import admin
from tests.support.gateway import REPO
from tools.demo import TokenMint
from tools.suite import Suite

pytestmark = pytest.mark.asyncio(loop_scope="module")

CAMPAIGN = """
campaign_id: cli-share-bonus
spec:
  display_name: {name}
  kind: CAMPAIGN_KIND_FIXED_BONUS
  budget_points: 20000
  reward: {{points: 25}}
  conditions: {{activity_types: [social_share]}}
  schedule: {{time_zone: Europe/Paris}}
"""


async def test_a_manager_runs_a_campaign_from_the_command_line(
    suite: Suite, mint: TokenMint, tmp_path: Path
) -> None:
    manager = mint.issue("manager-1", "campaign-manager")
    spec = tmp_path / "share.yaml"
    spec.write_text(CAMPAIGN.format(name="25 extra points per share"))
    next_step = (
        "  next: loyalty-admin fund cli-share-bonus"
        "  (funds its 20000 points budget and schedules it)\n"
    )
    assert (await admin(suite, manager, "apply", str(spec)))[:2] == (
        0,
        "applied cli-share-bonus (version 1)\n" + next_step,
    )
    spec.write_text(CAMPAIGN.format(name="25 bonus points per share"))
    assert (await admin(suite, manager, "apply", str(spec)))[1] == (
        "updated cli-share-bonus (version 2): display_name\n" + next_step
    )
    # Applying the same file again changes nothing, not even the version.
    assert (await admin(suite, manager, "apply", str(spec)))[1] == (
        "cli-share-bonus: no change (version 2)\n" + next_step
    )
    assert (await admin(suite, manager, "fund", "cli-share-bonus"))[1] == "cli-share-bonus: live\n"

    code, listing, _ = await admin(suite, manager, "list")
    row = next(line for line in listing.splitlines() if line.startswith("cli-share-bonus"))
    assert code == 0 and "25 bonus points per share" in row and " live " in row
    assert row.rstrip().endswith("20000")
    code, schedule, _ = await admin(suite, manager, "schedule", "cli-share-bonus")
    assert code == 0 and schedule.startswith("LOCAL START")

    # A member to try an activity on (profiles are the campaigns service's own).
    async with grpc.aio.insecure_channel(suite.target("campaigns")) as channel:
        await campaigns_grpc.CampaignsServiceStub(channel).UpsertMember(
            campaigns_pb.UpsertMemberRequest(
                member=campaigns_pb.Member(member_id="cli-m-1", time_zone="Europe/Paris")
            )
        )
    activity = tmp_path / "share-activity.json"
    activity.write_text(
        json.dumps(
            {
                "activity": {
                    "activity_id": "cli-share-1",
                    "member_id": "cli-m-1",
                    "type": "social_share",
                    "occur_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            }
        )
    )
    code, breakdown, err = await admin(suite, manager, "dry-run", str(activity))
    assert code == 0, err
    applied = {entry["campaignId"]: entry["points"] for entry in json.loads(breakdown)["applied"]}
    # protobuf JSON writes int64 as a string.
    assert code == 0 and applied["cli-share-bonus"] == "25"

    assert (await admin(suite, manager, "pause", "cli-share-bonus"))[
        1
    ] == "cli-share-bonus: paused\n"
    assert (await admin(suite, manager, "resume", "cli-share-bonus"))[
        1
    ] == "cli-share-bonus: live\n"
    code, stats, _ = await admin(suite, manager, "stats", "cli-share-bonus")
    assert code == 0 and "FIELD" in stats.splitlines()[0]
    # What members see of a cancelled campaign: it has ended.
    assert (await admin(suite, manager, "cancel", "cli-share-bonus"))[1] == (
        "cli-share-bonus: ended\n"
    )


async def test_refused_calls_and_bad_files_exit_non_zero_with_a_message(
    suite: Suite, mint: TokenMint, tmp_path: Path
) -> None:
    player = mint.issue("m-1", "player")
    # Players may list live events, but only managers run them.
    code, _, err = await admin(suite, player, "pause", "cli-share-bonus")
    assert code == 1 and "PERMISSION_DENIED" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("campaign_id: [unclosed")
    code, _, err = await admin(
        suite, mint.issue("manager-1", "campaign-manager"), "apply", str(broken)
    )
    assert code == 2 and "broken.yaml" in err


PARIS_EVENT = """
campaign_id: {campaign_id}
spec:
  display_name: Paris evening
  kind: CAMPAIGN_KIND_FIXED_BONUS
  budget_points: {budget}
  reward: {{points: {points}}}
  conditions: {{activity_types: [product_review]}}
  schedule: {{start: "{start}", duration: 2h, time_zone: Europe/Paris, zone_mode: {mode}}}
"""


def paris_event(
    campaign_id: str, start: datetime, *, points=10, budget=1000, mode="ZONE_MODE_CAMPAIGN"
):
    local = start.astimezone(ZoneInfo("Europe/Paris")).strftime("%Y-%m-%dT%H:%M")
    return PARIS_EVENT.format(
        campaign_id=campaign_id, start=local, points=points, budget=budget, mode=mode
    )


async def test_plan_says_what_apply_would_change_and_changes_nothing(
    suite: Suite, mint: TokenMint, tmp_path: Path
) -> None:
    manager = mint.issue("manager-1", "campaign-manager")
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=30)
    spec = tmp_path / "event.yaml"
    spec.write_text(paris_event("cli-plan", start))
    code, planned, _ = await admin(suite, manager, "plan", str(spec))
    assert (code, planned) == (0, "create cli-plan: a draft, 1000 points budget to fund\n")
    assert (await admin(suite, manager, "plan", str(spec)))[1] == planned  # nothing was created
    await admin(suite, manager, "apply", str(spec))
    await admin(suite, manager, "fund", "cli-plan")
    spec.write_text(paris_event("cli-plan", start, points=20, budget=1500))
    code, planned, _ = await admin(suite, manager, "plan", str(spec))
    assert planned == (
        "update cli-plan (version 1 -> 2): reward.points, budget_points\n"
        "  budget +500 points, funded at once\n"
    )
    code, applied, _ = await admin(suite, manager, "apply", str(spec))
    assert applied.startswith("updated cli-plan (version 2): reward.points, budget_points\n")
    assert "next:" not in applied  # scheduled already
    code, planned, _ = await admin(suite, manager, "plan", str(spec))
    assert planned == "keep cli-plan (version 2): no change\n"


async def test_times_are_shown_in_the_zone_asked_for_and_list_shows_local_windows(
    suite: Suite, mint: TokenMint, tmp_path: Path
) -> None:
    manager = mint.issue("manager-1", "campaign-manager")
    start = datetime(2031, 12, 5, 17, 0, tzinfo=UTC)  # 18:00 in Paris, 12:00 in New York
    spec = tmp_path / "paris.yaml"
    spec.write_text(paris_event("cli-paris", start))
    await admin(suite, manager, "apply", str(spec))
    code, shown, _ = await admin(
        suite, manager, "schedule", "cli-paris", "--tz", "America/New_York"
    )
    (row,) = shown.splitlines()[1:]
    assert code == 0 and row.split() == [
        "2031-12-05T12:00:00-05:00",
        "2031-12-05T14:00:00-05:00",
        "America/New_York",
        "2031-12-05",
        "17:00",
        "UTC",
        "2031-12-05",
        "19:00",
        "UTC",
    ]
    (paris,) = (await admin(suite, manager, "schedule", "cli-paris"))[1].splitlines()[1:]
    assert paris.startswith("2031-12-05T18:00:00+01:00  2031-12-05T20:00:00+01:00  Europe/Paris")

    # A member-zone window that opens later today in Paris is already open further east.
    soon = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(hours=3)
    spec.write_text(paris_event("cli-members", soon, mode="ZONE_MODE_MEMBER"))
    await admin(suite, manager, "apply", str(spec))
    await admin(suite, manager, "fund", "cli-paris")
    await admin(suite, manager, "fund", "cli-members")
    spec.write_text(paris_event("cli-over", soon))
    await admin(suite, manager, "apply", str(spec))
    await admin(suite, manager, "fund", "cli-over")
    await admin(suite, manager, "cancel", "cli-over")

    code, listing, _ = await admin(suite, manager, "list")
    rows = {line.split()[0]: line for line in listing.splitlines()[1:]}
    assert code == 0 and listing.split()[:9] == [
        "ID",
        "NAME",
        "STATE",
        "LOCAL",
        "START",
        "LOCAL",
        "END",
        "ZONE",
        "BUDGET",
    ]
    assert "2031-12-05 18:00  2031-12-05 20:00  Europe/Paris" in rows["cli-paris"]
    assert rows["cli-paris"].rstrip().endswith("1000") and " scheduled " in rows["cli-paris"]
    assert " live in some zones " in rows["cli-members"]
    assert "members' (Europe/Paris)" in rows["cli-members"]
    # Ended (cancelled here): no window to come, no budget.
    assert rows["cli-over"].split()[-4:] == ["-", "-", "Europe/Paris", "-"]
    assert (await admin(suite, manager, "archive", "cli-over"))[1] == "cli-over: ended (archived)\n"


async def test_member_set_changes_only_the_fields_given(suite: Suite, mint: TokenMint) -> None:
    manager = mint.issue("manager-1", "campaign-manager")
    code, out, err = await admin(
        suite,
        manager,
        "member",
        "set",
        "cli-m-2",
        "--time-zone",
        "Europe/Paris",
        "--birthday",
        "1990-05-17",
        "--segments",
        "vip,app",
    )
    assert code == 0 and out.startswith("cli-m-2: created birthday, segments, time_zone\n"), err
    code, out, _ = await admin(suite, manager, "member", "set", "cli-m-2", "--tier", "gold")
    assert out.startswith("cli-m-2: updated tier\n")
    code, shown, _ = await admin(suite, manager, "member", "get", "cli-m-2")
    fields = dict(line.split(None, 1) for line in shown.splitlines()[1:])
    assert fields["tier"] == "gold" and fields["time_zone"] == "Europe/Paris"
    assert fields["birthday"] == "1990-05-17" and fields["segments"] == "vip, app"
    # An empty value clears that field alone.
    await admin(suite, manager, "member", "set", "cli-m-2", "--segments", "")
    fields = dict(
        line.split(None, 1)
        for line in (await admin(suite, manager, "member", "get", "cli-m-2"))[1].splitlines()[1:]
    )
    assert fields["segments"] == "-" and fields["tier"] == "gold"
    code, _, err = await admin(suite, manager, "member", "set", "cli-m-2")
    assert code == 2 and "at least one field" in err


async def test_it_runs_from_the_checkout_without_the_venv(suite: Suite, mint: TokenMint) -> None:
    """bin/loyalty-admin and `make admin ARGS=...`, with a PATH that has no venv on it."""
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if ".venv" not in p)
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp")}
    wrapper = await asyncio.create_subprocess_exec(
        str(REPO / "bin" / "loyalty-admin"),
        "--gateway",
        suite.target("gateway"),
        "list",
        env={**env, "LOYALTY_TOKEN": mint.issue("manager-1", "campaign-manager")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(wrapper.communicate(), 60)
    assert wrapper.returncode == 0, err.decode()
    assert out.decode().startswith("ID  ")
    # make admin signs in as a manager with the gateway's development secret.
    make = await asyncio.create_subprocess_exec(
        "make",
        "-s",
        "-C",
        str(REPO),
        "admin",
        "ARGS=list",
        env={
            **env,
            "LOYALTY_GATEWAY": suite.target("gateway"),
            "GATEWAY_JWT_SECRET": mint.secret.decode(),
            "GATEWAY_JWT_ISSUER": mint.issuer,
            "GATEWAY_JWT_AUDIENCE": mint.audience,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(make.communicate(), 120)
    assert make.returncode == 0, err.decode()
    assert out.decode().startswith("ID  ")
