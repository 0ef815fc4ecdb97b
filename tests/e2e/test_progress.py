"""Member progress end to end: the real suite as separate processes (tools.suite),
definitions applied and progress read with the installed `loyalty-admin`
through the gateway, activities tracked on campaigns.

A member crosses a tier threshold (progress computes it from the ledger's
credit and campaigns' activity), campaigns follows progress' WatchTierChanges
and pays the member its gold-only member-day bonus, though the member's
manual profile tier says silver, and rewards lists the gold-only item (not
the silver one: the computed gold outranks the manual floor); the member
earns a badge (its bonus paid once, by the ledger's own account) and
completes a challenge."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from loyalty.campaigns.v1 import campaigns_service_pb2 as campaigns_pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as campaigns_grpc
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from loyalty.progress.v1 import progress_service_pb2 as progress_pb
from loyalty.progress.v1 import progress_service_pb2_grpc as progress_grpc
from loyalty.rewards.v1 import rewards_service_pb2 as rewards_pb
from loyalty.rewards.v1 import rewards_service_pb2_grpc as rewards_grpc

from services.kit.ids import POINTS, member_account
from tests.support.e2e import admin
from tools.demo import TokenMint
from tools.suite import Suite

pytestmark = pytest.mark.asyncio(loop_scope="module")

MEMBER = "e2e-tier-1"
TIMEOUT = 10.0
# How long the feeds between the processes may take to carry a change across.
CARRIED_SECONDS = 30.0
# How the ids of the transfers progress pays awards with begin.
AWARD = "progress:award:"


def definitions(today: datetime) -> list[dict]:
    yesterday = today - timedelta(days=1)
    return [
        {
            "id": "e2e-club",
            "tierProgram": {
                "displayName": "Club",
                "timeZone": "UTC",
                "window": "QUALIFYING_WINDOW_CALENDAR_YEAR",
                "tiers": [
                    {"tierId": "member", "displayName": "Member"},
                    {"tierId": "silver", "displayName": "Silver", "minPoints": "100"},
                    {"tierId": "gold", "displayName": "Gold", "minPoints": "300"},
                ],
            },
        },
        {
            "id": "e2e-reviewer",
            "badge": {
                "displayName": "Reviewer",
                "rule": {"measure": "MEASURE_ACTIVITY_COUNT", "activityType": "product_review"},
                "levels": [{"levelId": "first", "threshold": "1", "bonusPoints": "20"}],
                "budgetId": "e2e",
            },
        },
        {
            "id": "e2e-review-twice",
            "challenge": {
                "displayName": "Review twice this week",
                "schedule": {
                    "timeZone": "UTC",
                    # The admin files' human units, as in every other file.
                    "start": yesterday.date().isoformat(),
                    "duration": "7d",
                },
                "steps": [
                    {
                        "stepId": "reviews",
                        "rule": {
                            "measure": "MEASURE_ACTIVITY_COUNT",
                            "activityType": "product_review",
                        },
                        "target": "2",
                    }
                ],
                "rewardPoints": "30",
                "budgetId": "e2e",
            },
        },
    ]


CAMPAIGNS = {
    "e2e-base": {
        "displayName": "1 point per euro",
        "kind": "CAMPAIGN_KIND_BASE_RULE",
        "reward": {"pointsPerUnit": "1", "minorUnitsPerUnit": "100"},
        "conditions": {"activityTypes": ["purchase"]},
        "schedule": {"timeZone": "UTC"},
    },
    "e2e-gold-day": {
        "displayName": "Gold members' day: 50 points for opening the app",
        "kind": "CAMPAIGN_KIND_FIXED_BONUS",
        "budgetPoints": "1000",
        "reward": {"points": "50"},
        "conditions": {"activityTypes": ["app_login"], "tiers": ["gold"]},
        "schedule": {"timeZone": "UTC"},
    },
}


def activity(
    activity_id: str, kind: str, member_id: str = MEMBER, **fields
) -> campaigns_pb.Activity:
    message = campaigns_pb.Activity(
        activity_id=activity_id, member_id=member_id, type=kind, **fields
    )
    message.occur_time.FromDatetime(datetime.now(UTC))
    return message


async def track(campaigns, message: campaigns_pb.Activity) -> dict[str, int]:
    answer = await campaigns.TrackActivity(
        campaigns_pb.TrackActivityRequest(activity=message), timeout=TIMEOUT
    )
    breakdown = answer.breakdown
    bonuses = {a.campaign_id: a.points for a in breakdown.applied}
    return (
        {breakdown.base_campaign_id: breakdown.base_points, **bonuses}
        if breakdown.base_points
        else bonuses
    )


async def tiers_become(campaigns, tiers: list[str], member_id: str = MEMBER) -> None:
    """Until campaigns' view of the member holds `tiers` (carried by the feeds)."""

    async def poll() -> None:
        while True:
            answer = await campaigns.GetMember(
                campaigns_pb.GetMemberRequest(member_id=member_id), timeout=TIMEOUT
            )
            if list(answer.member.tiers) == tiers:
                return
            await asyncio.sleep(0.1)

    await asyncio.wait_for(poll(), CARRIED_SECONDS)


async def launch(campaigns, campaign_id: str, spec: dict) -> None:
    await campaigns.CreateCampaign(
        campaigns_pb.CreateCampaignRequest(
            campaign_id=campaign_id, spec=json_format.ParseDict(spec, campaigns_pb.CampaignSpec())
        ),
        timeout=TIMEOUT,
    )
    await campaigns.ScheduleCampaign(
        campaigns_pb.ScheduleCampaignRequest(campaign_id=campaign_id), timeout=TIMEOUT
    )


async def bonuses(ledger) -> list[ledger_pb.Transfer]:
    """Every credit progress paid to the member's wallet, as the ledger has them
    (campaigns' bonuses carry the same code)."""
    answer = await ledger.ListTransfers(
        ledger_pb.ListTransfersRequest(
            account_id=member_account(MEMBER, POINTS),
            codes=[ledger_pb.TRANSFER_CODE_BONUS],
            page_size=100,
        ),
        timeout=TIMEOUT,
    )
    return [e.transfer for e in answer.entries if e.transfer.id.startswith(AWARD)]


async def test_a_member_climbs_gets_the_gold_day_earns_a_badge_and_completes_a_challenge(
    suite: Suite, mint: TokenMint, tmp_path: Path
) -> None:
    ops = mint.issue("ops", "admin")
    file = tmp_path / "progress.json"
    file.write_text(json.dumps(definitions(datetime.now(UTC))))
    code, out, err = await admin(suite, ops, "progress", "apply", str(file))
    assert code == 0, err
    assert out.splitlines() == [
        "applied e2e-club (version 1)",
        "applied e2e-reviewer (version 1)",
        "applied e2e-review-twice (version 1)",
    ]
    code, out, err = await admin(suite, ops, "progress", "fund", "e2e", "500", "--request-id", "f1")
    assert (code, out) == (0, "progress:e2e:budget: 500\n"), err

    async with (
        grpc.aio.insecure_channel(suite.target("campaigns")) as campaigns_channel,
        grpc.aio.insecure_channel(suite.target("ledger")) as ledger_channel,
        grpc.aio.insecure_channel(suite.target("progress")) as progress_channel,
    ):
        campaigns = campaigns_grpc.CampaignsServiceStub(campaigns_channel)
        ledger = ledger_grpc.LedgerServiceStub(ledger_channel)
        progress = progress_grpc.ProgressServiceStub(progress_channel)
        for campaign_id, spec in CAMPAIGNS.items():
            await launch(campaigns, campaign_id, spec)
        # The CRM's label: silver, by hand. It is only a floor now.
        await campaigns.UpsertMember(
            campaigns_pb.UpsertMemberRequest(
                member=campaigns_pb.Member(member_id=MEMBER, tier="silver")
            ),
            timeout=TIMEOUT,
        )
        assert "e2e-gold-day" not in await track(campaigns, activity("login-1", "app_login"))

        # 400 EUR: 400 qualifying points cross gold's 300.
        bought = await track(
            campaigns,
            activity(
                "buy-1",
                "purchase",
                purchase=campaigns_pb.Purchase(amount_minor=40_000, currency="EUR"),
            ),
        )
        assert bought == {"e2e-base": 400}
        changes = progress.WatchTierChanges(
            progress_pb.WatchTierChangesRequest(program_id="e2e-club"), timeout=CARRIED_SECONDS
        )
        change = (await asyncio.wait_for(changes.read(), CARRIED_SECONDS)).change
        changes.cancel()
        assert (change.member_id, change.from_tier_id, change.to_tier_id) == (MEMBER, "", "gold")
        assert list(change.program_tier_ids) == ["member", "silver", "gold"]
        await tiers_become(campaigns, ["gold"])
        assert await track(campaigns, activity("login-2", "app_login")) == {"e2e-gold-day": 50}
        # Rewards reads the same tiers from campaigns: the gold-only item is listed.
        async with grpc.aio.insecure_channel(suite.target("rewards")) as rewards_channel:
            rewards = rewards_grpc.RewardsServiceStub(rewards_channel)
            for reward_id, tiers in (("e2e-gold-lounge", ["gold"]), ("e2e-silver-mug", ["silver"])):
                spec = rewards_pb.RewardSpec(
                    title=reward_id, price=10, kind=rewards_pb.REWARD_KIND_PHYSICAL, tiers=tiers
                )
                await rewards.CreateReward(
                    rewards_pb.CreateRewardRequest(reward_id=reward_id, spec=spec), timeout=TIMEOUT
                )
            catalog = await rewards.ListCatalog(
                rewards_pb.ListCatalogRequest(member_id=MEMBER), timeout=TIMEOUT
            )
        listed = {entry.reward_id for entry in catalog.entries}
        assert "e2e-gold-lounge" in listed and "e2e-silver-mug" not in listed

        # Two reviews: the badge at the first, the challenge at the second.
        for n in (1, 2):
            await track(campaigns, activity(f"review-{n}", "product_review"))

        # Progress pays both: its credits come by on the ledger's feed.
        stream = ledger.WatchTransfers(ledger_pb.WatchTransfersRequest(), timeout=CARRIED_SECONDS)
        paid = []
        while len(paid) < 2:
            transfer = (await asyncio.wait_for(stream.read(), CARRIED_SECONDS)).transfer
            if transfer.id.startswith(AWARD):
                paid.append(transfer.amount)
        stream.cancel()
        assert sorted(paid) == [20, 30]

    code, shown, err = await admin(suite, ops, "progress", "show", MEMBER)
    assert code == 0, err
    lines = shown.splitlines()
    assert lines[0].startswith("tier e2e-club: gold (400 points; 0 to -;")
    assert "badge e2e-reviewer: complete (earned: first)" in lines
    assert "challenge e2e-review-twice: completed (reviews 2/2)" in lines
    code, rebuilt, err = await admin(suite, ops, "progress", "rebuild", MEMBER)
    assert code == 0 and rebuilt.endswith(" events replayed, 0 differences\n"), (rebuilt, err)
    async with grpc.aio.insecure_channel(suite.target("ledger")) as channel:
        # Each award paid once: the rebuild posted nothing more.
        again = await bonuses(ledger_grpc.LedgerServiceStub(channel))
    assert sorted(t.amount for t in again) == [20, 30]


STATUS = {"id": "e2e-status", "tierProgram": {**definitions(datetime.now(UTC))[0]["tierProgram"]}}
LOUNGE = {
    "displayName": "Gold lounge: 40 points a visit",
    "kind": "CAMPAIGN_KIND_FIXED_BONUS",
    "budgetPoints": "1000",
    "reward": {"points": "40"},
    "conditions": {"activityTypes": ["lounge_visit"], "tiers": ["gold"]},
    "schedule": {"timeZone": "UTC"},
}


async def test_a_manual_floor_set_with_the_tool_reaches_campaign_targeting(
    suite: Suite, mint: TokenMint, tmp_path: Path
) -> None:
    """A status match: `progress floor` makes the member gold in progress, and
    campaigns, following the tier feed, targets the member as gold. The rest of
    the manager's commands run against the same suite."""
    member = "e2e-floor-1"
    ops = mint.issue("ops", "admin")
    file = tmp_path / "status.yaml"
    file.write_text(json.dumps(STATUS))
    assert (await admin(suite, ops, "progress", "apply", str(file)))[:2] == (
        0,
        "applied e2e-status (version 1)\n",
    )
    code, listing, _ = await admin(suite, ops, "progress", "list", "--kind", "tier-program")
    assert code == 0 and "e2e-status  tier_program  v1  active" in listing.splitlines()

    async with grpc.aio.insecure_channel(suite.target("campaigns")) as channel:
        campaigns = campaigns_grpc.CampaignsServiceStub(channel)
        await launch(campaigns, "e2e-gold-lounge", LOUNGE)
        await campaigns.UpsertMember(
            campaigns_pb.UpsertMemberRequest(member=campaigns_pb.Member(member_id=member)),
            timeout=TIMEOUT,
        )
        assert await track(campaigns, activity("visit-1", "lounge_visit", member)) == {}
        until = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        code, out, err = await admin(
            suite, ops, "progress", "floor", "e2e-status", member, "gold",
            "--until", until, "--reason", "status match",
        )  # fmt: skip
        assert (code, out) == (0, f"e2e-status {member}: gold\n"), err
        await tiers_become(campaigns, ["gold"], member)
        visit = await track(campaigns, activity("visit-2", "lounge_visit", member))
        assert visit == {"e2e-gold-lounge": 40}

    code, events, err = await admin(suite, ops, "progress", "events", member)
    keys = [line.split()[-1] for line in events.splitlines()]
    assert code == 0 and {"visit-1", "visit-2"} <= set(keys), (events, err)
    code, dry, err = await admin(suite, ops, "progress", "dry-run", str(file))
    assert code == 0 and dry.splitlines()[-1].endswith(" events"), (dry, err)
    code, stats, err = await admin(suite, ops, "progress", "stats", "e2e-status")
    tiers = {t["tierId"]: int(t.get("members", 0)) for t in json.loads(stats).get("tiers", [])}
    assert code == 0 and tiers["gold"] >= 1, (stats, err)
    code, feeds, err = await admin(suite, ops, "progress", "feeds")
    assert code == 0 and {line.split()[0] for line in feeds.splitlines()} == {
        "ledger",
        "campaigns",
        "games",
    }, (feeds, err)
    code, out, err = await admin(suite, ops, "progress", "archive", "e2e-status")
    assert (code, out) == (0, "e2e-status (version 1): archived\n"), err
    # Campaigns, following the tier feed, no longer targets the member as gold.
    async with grpc.aio.insecure_channel(suite.target("campaigns")) as channel:
        campaigns = campaigns_grpc.CampaignsServiceStub(channel)
        await tiers_become(campaigns, [], member)
        assert await track(campaigns, activity("visit-3", "lounge_visit", member)) == {}

    # A player runs none of it; a broken file is the tool's error, not the server's.
    code, _, err = await admin(suite, mint.issue(member, "player"), "progress", "show", "m-2")
    assert code == 1 and "PERMISSION_DENIED" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: [unclosed")
    code, _, err = await admin(suite, ops, "progress", "apply", str(broken))
    assert code == 2 and "broken.yaml" in err
