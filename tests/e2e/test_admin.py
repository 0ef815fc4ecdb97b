"""loyalty-admin, the managers' tool as installed, against the real suite through the gateway."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from loyalty.campaigns.v1 import campaigns_service_pb2 as campaigns_pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as campaigns_grpc

from tests.support.e2e import admin
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
