"""The demo's story, played through the gateway once per client: connect-web
over Connect (JSON) and gRPC-Web, grpc-js over native gRPC. Set-up, purchases
and refunds go through the same client as the member's own calls."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.e2e import TRANSPORTS, NodeClient
from tests.support.gateway import REPO
from tools.demo import (
    BADGE_BONUS,
    CHALLENGE_REWARD,
    COFFEE,
    COFFEE_PRICE,
    GOLD_DAY_POINTS,
    GOLD_POINTS,
    TokenMint,
    new_tag,
    num,
    play_member,
    progress_story,
    redeem_story,
    set_up_program,
    set_up_rewards,
)
from tools.suite import Suite

pytestmark = pytest.mark.asyncio(loop_scope="module")

# The budgets and the points pool the set-up funds from the issuance account.
FUNDED = 10_000 + 5_000 + 5_000 + 1_000


def points_of(prize: dict) -> int:
    return num(prize, "points")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_story(node: NodeClient, mint: TokenMint, transport: str) -> None:
    call = node.caller(transport)
    said: list[str] = []
    program = await set_up_program(call, mint, new_tag(transport), said.append)
    assert num(program.issuance, "balance") <= -FUNDED

    story = await play_member(call, mint, program, said.append)

    # Earning: 1 point per euro, doubled this weekend; a share; a birthday.
    assert num(story.purchase, "basePoints") == 40
    assert [(a["campaignId"], num(a, "points")) for a in story.purchase["applied"]] == [
        (program.campaigns["double"], 40)
    ]
    assert num(story.share, "totalPoints") == 25
    assert num(story.login, "totalPoints") == 100
    assert num(story.wallet_after_earning, "balance") == 205

    # The spin cost 10 points and paid what it says, and it verifies.
    prize = story.spin.get("prize", {})
    after_spin = 205 - 10 + points_of(prize)
    assert num(story.spin, "pointsBalanceAfter") == after_spin
    assert story.verify["verified"] is True
    won_coffee = prize.get("item", {}).get("unit") == COFFEE
    assert num(story.coffee_wallet, "balance") == (1 if won_coffee else 0)

    # Catch: every scoring object caught as it landed is accepted and paid.
    assert "spawns" not in story.session  # revealed one by one, not up front
    spawned = {num(s, "objectId"): num(s, "points") for s in story.objects}
    assert story.catches, "the session spawned nothing to catch"
    assert [v["code"] for v in story.catch_result["verdicts"]] == [
        "CATCH_VERDICT_CODE_ACCEPTED"
    ] * len(story.catches)
    score = sum(spawned[c["objectId"]] for c in story.catches)
    assert num(story.catch_result, "awardedPoints") == score
    assert num(story.leaderboard, "memberEntry", "bestScore") == score
    assert num(story.leaderboard, "memberEntry", "rank") == 1

    # Points earned from activities expire 30 days after they were earned.
    expiring = story.expiring_wallet["expiringSoon"]
    assert 0 < sum(num(e, "amount") for e in expiring) <= num(story.expiring_wallet, "balance")
    earned_on = datetime.now(UTC)
    for item in expiring:
        expires = datetime.fromisoformat(item["expireTime"])
        assert earned_on + timedelta(days=29) < expires < earned_on + timedelta(days=31)

    # Half the purchase refunded: half of its 80 points come back out.
    clawback = story.refund["clawback"]
    assert (num(clawback, "pointsReversed"), num(clawback, "pointsUnrecovered")) == (40, 0)
    final = after_spin + score - 40
    assert num(story.final_wallet, "balance") == final
    assert sum(num(entry, "change") for entry in story.history) == final
    reasons = [entry["reason"] for entry in story.history]
    assert reasons.count("ENTRY_REASON_CLAWBACK") == 2
    assert "ENTRY_REASON_GAME_COST" in reasons
    assert any(line.startswith("== Member") for line in said)

    # Spending: a free coffee from the catalog, its code shown, then refunded.
    reward_id = await set_up_rewards(call, program, said.append)
    told = await redeem_story(call, program, story, reward_id, said.append)
    assert told.catalog_entry["affordable"] is True
    assert told.redemption["state"] == "REDEMPTION_STATE_ISSUED" and told.redemption["code"]
    assert [r["code"] for r in told.mine] == [told.redemption["code"]]
    assert num(told.wallet_after_redeeming, "balance") == final - COFFEE_PRICE
    assert told.refunded["state"] == "REDEMPTION_STATE_REFUNDED"
    assert num(told.wallet_after_refund, "balance") == final

    # Climbing: the purchase crosses gold; campaigns, following progress' tier
    # feed, pays the gold-only member day by the computed tier.
    climb = await progress_story(call, program, story, said.append)
    assert num(climb.purchase, "basePoints") == GOLD_POINTS + 100
    assert climb.tiers == ["gold"]
    assert [(a["campaignId"], num(a, "points")) for a in climb.gold_login["applied"]] == [
        (program.campaigns["gold-day"], GOLD_DAY_POINTS)
    ]
    # A badge and a challenge, each paid once (the rebuild pays nothing more).
    before = num(climb.wallet_before_reviews, "balance")
    paid = before + BADGE_BONUS + CHALLENGE_REWARD
    assert num(climb.wallet_after_awards, "balance") == paid
    assert num(climb.wallet_after_rebuild, "balance") == paid
    assert climb.rebuilt.get("differences", []) == []
    progress = climb.progress
    club = next(t for t in progress["tiers"] if t["programId"] == f"{program.tag}-club")
    assert club["tierId"] == "gold"
    (badge,) = [b for b in progress["badges"] if b["badgeId"] == f"{program.tag}-reviewer"]
    assert [level.get("earned", False) for level in badge["levels"]] == [True]
    (challenge,) = [
        c for c in progress["challenges"] if c["challengeId"] == f"{program.tag}-review-twice"
    ]
    assert challenge.get("completed") is True


async def test_make_demo_tells_the_story_against_a_running_suite(suite: Suite) -> None:
    """`python -m tools.demo` (grpcio) finds this suite's gateway and uses the
    tokens its configuration accepts."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.demo",
        "--gateway",
        suite.target("gateway"),
        env={**os.environ, **suite.env},
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()
    printed = stdout.decode()
    assert f"Using the suite at {suite.target('gateway')}" in printed
    for step in (
        "buys sneakers for 40.00 EUR: +80 points",
        "shares a post: +25 points",
        "opens the app on their birthday: +100 points",
        "verifies the spin: verified",
        "expiring:",
        "40 points clawed back, 0 unrecovered",
        "redeems it: issued, code",
        "the shop refunds it: refunded",
        "campaigns targets the member as gold",
        f"opens the app on the gold members' day: +{GOLD_DAY_POINTS} points",
        " 0 differences",
    ):
        assert step in printed, step
