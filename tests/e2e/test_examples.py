"""examples/: each file applied by the installed loyalty-admin against the real suite,
then checked to do what its name says, by dry runs of activities inside and outside
its windows (the suite accepts activities a year either side of now, so the files'
fixed dates stay testable)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.e2e import admin
from tests.support.gateway import REPO
from tools.demo import TokenMint
from tools.suite import Suite

pytestmark = pytest.mark.asyncio(loop_scope="module")

EXAMPLES = REPO / "examples"
YEARS = str(3 * 366 * 86_400)
SUITE_ENV = {"CAMPAIGNS_LATENESS_SECONDS": YEARS, "CAMPAIGNS_MAX_FUTURE_SECONDS": YEARS}


@pytest.fixture(scope="module")
def manager(mint: TokenMint) -> str:
    return mint.issue("examples-manager", "campaign-manager")


async def run(suite: Suite, token: str, *args: str) -> str:
    code, out, err = await admin(suite, token, *args)
    assert code == 0, f"loyalty-admin {' '.join(args)}: {err}"
    return out


async def apply_and_fund(suite: Suite, manager: str, name: str) -> list[str]:
    """plan, apply, then fund every campaign of the example; their ids."""
    path = str(EXAMPLES / name)
    planned = (await run(suite, manager, "plan", path)).splitlines()
    assert planned and all(line.startswith("create ") for line in planned), planned
    applied = await run(suite, manager, "apply", path)
    ids = [line.split()[1] for line in applied.splitlines() if line.startswith("applied ")]
    assert len(ids) == len(planned)
    for campaign_id in ids:
        assert f"next: loyalty-admin fund {campaign_id}" in applied
        assert (await run(suite, manager, "fund", campaign_id)).startswith(f"{campaign_id}: ")
    # Applied again: nothing to do.
    assert all(
        " no change" in line for line in (await run(suite, manager, "plan", path)).splitlines()
    )
    return ids


async def dry_run(
    suite: Suite,
    token: str,
    tmp_path: Path,
    member: str,
    kind: str,
    when: str,
    number: int = 0,
    **fields,
) -> dict:
    """The breakdown an activity at `when` (RFC 3339) would get: points by campaign."""
    stamp = "".join(c for c in when if c.isdigit())
    activity_id = f"{member}-{kind}-{stamp}-{number}"
    activity = {"activity_id": activity_id, "member_id": member, "type": kind}
    activity |= {"occur_time": when, **fields}
    path = tmp_path / f"{activity['activity_id']}.json"
    path.write_text(json.dumps({"activity": activity}))
    breakdown = json.loads(await run(suite, token, "dry-run", str(path)))
    breakdown["by_campaign"] = {
        entry["campaignId"]: int(entry["points"]) for entry in breakdown.get("applied", [])
    }
    return breakdown


def purchase(euros: int) -> dict:
    return {"purchase": {"amount_minor": euros * 100, "currency": "EUR"}}


async def test_the_base_rule_and_the_double_points_weekend(suite, manager, tmp_path):
    await apply_and_fund(suite, manager, "base-earning.yaml")
    await apply_and_fund(suite, manager, "double-points-weekend.yaml")
    await run(suite, manager, "member", "set", "ex-shopper", "--time-zone", "Europe/Paris")
    weekday = await dry_run(
        suite, manager, tmp_path, "ex-shopper", "purchase", "2026-12-02T10:00:00Z", **purchase(25)
    )
    assert weekday["basePoints"] == "25" and weekday["baseCampaignId"] == "base-earning"
    assert "double-points-weekend" not in weekday["by_campaign"]
    saturday = await dry_run(
        suite, manager, tmp_path, "ex-shopper", "purchase", "2026-12-05T10:00:00Z", **purchase(25)
    )
    assert saturday["by_campaign"]["double-points-weekend"] == 25
    assert saturday["totalPoints"] == "50"
    # Sunday 23:30 in Paris is still the weekend; Monday 00:30 is not.
    late = await dry_run(
        suite, manager, tmp_path, "ex-shopper", "purchase", "2026-12-06T22:30:00Z", **purchase(10)
    )
    assert late["by_campaign"]["double-points-weekend"] == 10
    monday = await dry_run(
        suite, manager, tmp_path, "ex-shopper", "purchase", "2026-12-06T23:30:00Z", **purchase(10)
    )
    assert "double-points-weekend" not in monday["by_campaign"]


async def test_the_48_hour_bonus_lasts_48_hours_in_paris(suite, manager, tmp_path):
    await apply_and_fund(suite, manager, "bonus-48h.yaml")
    await run(suite, manager, "member", "set", "ex-48h", "--time-zone", "Asia/Tokyo")
    cases = {
        "2026-12-11T16:59:00Z": False,  # 17:59 in Paris
        "2026-12-11T17:00:00Z": True,  # 18:00 Friday
        "2026-12-13T16:59:00Z": True,  # 17:59 Sunday
        "2026-12-13T17:00:00Z": False,  # 48 hours later
    }
    for when, inside in cases.items():
        found = await dry_run(suite, manager, tmp_path, "ex-48h", "purchase", when, **purchase(20))
        assert found["by_campaign"].get("bonus-48h") == (100 if inside else None), when
    small = await dry_run(
        suite, manager, tmp_path, "ex-48h", "purchase", "2026-12-12T10:00:00Z", **purchase(19)
    )
    assert "bonus-48h" not in small["by_campaign"]
    code, shown, _ = await admin(
        suite, manager, "schedule", "bonus-48h", "--tz", "America/New_York"
    )
    assert code == 0
    if "2026-12-11T12:00:00-05:00" not in shown:  # once the event is over, nothing is to come
        assert shown.strip() == "LOCAL START  LOCAL END  ZONE  UTC START  UTC END"


async def test_the_member_day_is_for_gold_members_on_their_own_day(suite, manager, tmp_path):
    await apply_and_fund(suite, manager, "member-day.yaml")
    await run(
        suite, manager, "member", "set", "ex-gold", "--tier", "gold", "--time-zone", "Asia/Tokyo"
    )
    await run(
        suite,
        manager,
        "member",
        "set",
        "ex-silver",
        "--tier",
        "silver",
        "--time-zone",
        "Asia/Tokyo",
    )
    # 9 December 08:00 in Tokyo is still 8 December in Paris: Tokyo's day counts.
    when = "2026-12-08T23:00:00Z"
    gold = await dry_run(suite, manager, tmp_path, "ex-gold", "purchase", when, **purchase(10))
    silver = await dry_run(suite, manager, tmp_path, "ex-silver", "purchase", when, **purchase(10))
    assert gold["by_campaign"]["gold-member-day"] == 50
    assert "gold-member-day" not in silver["by_campaign"]
    # 10 December 09:00 in Tokyo: over.
    after = await dry_run(
        suite, manager, tmp_path, "ex-gold", "purchase", "2026-12-10T00:00:00Z", **purchase(10)
    )
    assert "gold-member-day" not in after["by_campaign"]


async def test_the_birthday_gift_comes_on_the_birthday(suite, manager, tmp_path):
    await apply_and_fund(suite, manager, "birthday-gift.yaml")
    await run(
        suite, manager, "member", "set", "ex-born", "--birthday", "12-24", "--time-zone", "UTC"
    )
    shown = await run(suite, manager, "member", "get", "ex-born")
    assert "--12-24" in shown and "UTC" in shown
    on = await dry_run(suite, manager, tmp_path, "ex-born", "app_login", "2026-12-24T09:00:00Z")
    off = await dry_run(suite, manager, tmp_path, "ex-born", "app_login", "2026-12-23T09:00:00Z")
    assert on["by_campaign"]["birthday-gift"] == 200
    assert "birthday-gift" not in off["by_campaign"]


async def test_the_surprise_bonus_comes_now_and_then(suite, manager, tmp_path):
    await apply_and_fund(suite, manager, "surprise-bonus.yaml")
    await run(suite, manager, "member", "set", "ex-lucky", "--time-zone", "Europe/Paris")
    when = "2026-12-02T09:00:00Z"
    drawn = [
        (await dry_run(suite, manager, tmp_path, "ex-lucky", "app_login", when, n))[
            "by_campaign"
        ].get("surprise-bonus")
        for n in range(30)
    ]
    # The draw is an HMAC of the campaign and the activity: fixed for these ids.
    assert set(drawn) == {None, 20}
    assert drawn.count(20) < 15


async def test_the_referral_program_pays_both_members(suite, manager, tmp_path):
    ids = await apply_and_fund(suite, manager, "referral-program.yaml")
    assert ids == ["referral-invite", "referral-signup", "referral-first-purchase"]
    await run(suite, manager, "member", "set", "ex-inviter", "--time-zone", "Europe/Paris")
    await run(suite, manager, "member", "set", "ex-friend", "--referrer", "ex-inviter")
    signup = await dry_run(
        suite, manager, tmp_path, "ex-friend", "referral_signup", "2026-12-02T09:00:00Z"
    )
    # The campaign pays both: 50 to the friend who signed up, 100 to who invited them.
    assert signup["by_campaign"]["referral-signup"] == 150
    invite = await dry_run(
        suite, manager, tmp_path, "ex-inviter", "referral_invite_sent", "2026-12-02T09:00:00Z"
    )
    assert invite["by_campaign"]["referral-invite"] == 10


async def test_the_wheel_is_applied_stocked_and_shows_its_odds(suite, manager):
    wheel = str(EXAMPLES / "wheel.yaml")
    applied = await run(suite, manager, "wheel", "apply", wheel)
    assert applied.startswith("applied lucky-wheel (odds version 1)")
    assert "next: loyalty-admin wheel stock lucky-wheel points QUANTITY" in applied
    assert "next: loyalty-admin wheel stock lucky-wheel prize:free-coffee QUANTITY" in applied
    assert (await run(suite, manager, "wheel", "apply", wheel)).startswith("no change: lucky-wheel")
    await run(suite, manager, "wheel", "stock", "lucky-wheel", "points", "100000")
    stocked = await run(
        suite,
        manager,
        "wheel",
        "stock",
        "lucky-wheel",
        "prize:free-coffee",
        "50",
        "--request-id",
        "x",
    )
    assert "prize:free-coffee pool at 50" in stocked
    odds = await run(suite, manager, "wheel", "odds", "lucky-wheel")
    rows = {line.split("  ")[1].strip(): line for line in odds.splitlines()[2:]}
    assert "50.00%" in rows["Try again"] and "fallback" in rows["Try again"]
    assert "5.00%" in rows["Free coffee"] and "sold out" not in odds
