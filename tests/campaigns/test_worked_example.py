"""The worked example of docs/campaigns.md, call for call: if this fails, the guide is wrong."""

from __future__ import annotations

from google.protobuf import duration_pb2
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb

from tests.support.campaign_specs import at
from tests.support.campaigns import activity, launch, local, purchase, stamp
from tests.support.ledger import balance

PARIS = "Europe/Paris"
DAY = duration_pb2.Duration(seconds=86_400)


def spec(name, kind, budget=0, **fields) -> pb.CampaignSpec:
    return pb.CampaignSpec(display_name=name, kind=kind, budget_points=budget, **fields)


CAMPAIGNS = {
    "earn-1pt-per-eur": spec(
        "1 point per euro",
        pb.CAMPAIGN_KIND_BASE_RULE,
        reward=pb.Reward(points_per_unit=1),
        schedule=pb.Schedule(time_zone=PARIS),
    ),
    "earn-share": spec(
        "10 points per share",
        pb.CAMPAIGN_KIND_BASE_RULE,
        reward=pb.Reward(points=10),
        conditions=pb.Conditions(activity_types=["social_share"]),
        schedule=pb.Schedule(time_zone=PARIS),
    ),
    "double-weekend": spec(
        "Double points every weekend",
        pb.CAMPAIGN_KIND_MULTIPLIER,
        budget=100_000,
        reward=pb.Reward(multiplier_percent=200),
        schedule=pb.Schedule(
            start=local("2026-03-07T00:00:00"),
            duration=duration_pb2.Duration(seconds=2 * 86_400),
            rrule="FREQ=WEEKLY;BYDAY=SA",
            time_zone=PARIS,
        ),
        limits=pb.Limits(
            member_limits=[pb.MemberLimit(period=pb.LIMIT_PERIOD_DAY, max_points=500)]
        ),
        stacking=pb.Stacking(group="multipliers"),
    ),
    "spring-48h": spec(
        "48-hour spring event: 100 points on 20 EUR",
        pb.CAMPAIGN_KIND_FIXED_BONUS,
        budget=50_000,
        reward=pb.Reward(points=100),
        conditions=pb.Conditions(min_spend_minor=2000, currency="EUR"),
        schedule=pb.Schedule(
            start=local("2026-03-27T18:00:00"),
            duration=duration_pb2.Duration(seconds=48 * 3600),
            time_zone=PARIS,
        ),
        limits=pb.Limits(max_members=1000),
    ),
    "share-bonus": spec(
        "25 extra points per share, 75 a day at most",
        pb.CAMPAIGN_KIND_FIXED_BONUS,
        budget=20_000,
        reward=pb.Reward(points=25),
        conditions=pb.Conditions(activity_types=["social_share"]),
        schedule=pb.Schedule(time_zone=PARIS),
        limits=pb.Limits(member_limits=[pb.MemberLimit(period=pb.LIMIT_PERIOD_DAY, max_points=75)]),
    ),
    "birthday": spec(
        "200 points on your birthday",
        pb.CAMPAIGN_KIND_BIRTHDAY_BONUS,
        budget=100_000,
        reward=pb.Reward(points=200),
        conditions=pb.Conditions(activity_types=["purchase", "app_login"]),
        schedule=pb.Schedule(time_zone=PARIS),
    ),
    "surprise": spec(
        "Surprise! 50 points, 1 purchase in 4",
        pb.CAMPAIGN_KIND_SURPRISE_BONUS,
        budget=10_000,
        reward=pb.Reward(points=50, probability_ppm=250_000),
        conditions=pb.Conditions(activity_types=["purchase"]),
        schedule=pb.Schedule(time_zone=PARIS),
    ),
    "gold-saturday": spec(
        "Gold members' day: triple points",
        pb.CAMPAIGN_KIND_MULTIPLIER,
        budget=100_000,
        reward=pb.Reward(multiplier_percent=300),
        conditions=pb.Conditions(tiers=["gold"]),
        schedule=pb.Schedule(
            start=local("2026-03-28T00:00:00"),
            duration=DAY,
            time_zone=PARIS,
            zone_mode=pb.ZONE_MODE_MEMBER,
        ),
        stacking=pb.Stacking(group="multipliers"),
    ),
}


def summary(breakdown: pb.Breakdown) -> dict:
    return {
        "base": breakdown.base_points,
        "applied": {a.campaign_id: a.points for a in breakdown.applied},
        "refused": {r.campaign_id: pb.RefusalReason.Name(r.reason) for r in breakdown.refused},
        "total": breakdown.total_points,
        "balance": breakdown.balance,
    }


async def test_the_worked_example(campaigns):
    stub, clock = campaigns.stub, campaigns.clock
    for campaign_id, campaign_spec in CAMPAIGNS.items():
        await launch(stub, campaign_id, campaign_spec)
    alice = pb.Member(
        member_id="alice",
        time_zone=PARIS,
        tier="gold",
        birthday=pb.Birthday(month=3, day=7, year=1990),
    )
    await stub.UpsertMember(pb.UpsertMemberRequest(member=alice))

    async def track(message):
        clock.set(max(clock.now_us(), message.occur_time.seconds * 1_000_000))
        response = await stub.TrackActivity(pb.TrackActivityRequest(activity=message))
        return summary(response.breakdown)

    saturday = at("2026-03-07T11:00:00", PARIS)
    assert await track(purchase("order-1004", 4250, saturday, member_id="alice")) == {
        "base": 42,
        "applied": {"birthday": 200, "double-weekend": 42, "surprise": 50},
        "refused": {},
        "total": 334,
        "balance": 334,
    }
    shares = [
        await track(activity(f"share-{n}", "social_share", saturday + n, member_id="alice"))
        for n in range(1, 5)
    ]
    assert [s["applied"] for s in shares] == [{"share-bonus": 25}] * 3 + [{}]
    assert shares[-1]["refused"] == {"share-bonus": "REFUSAL_REASON_MEMBER_LIMIT_REACHED"}
    assert shares[-1]["balance"] == 334 + 3 * 35 + 10

    gold_day = at("2026-03-28T10:00:00", PARIS)
    assert await track(purchase("order-1002", 2500, gold_day, member_id="alice")) == {
        "base": 25,
        "applied": {"gold-saturday": 50, "spring-48h": 100},
        "refused": {
            "double-weekend": "REFUSAL_REASON_LOST_STACKING",
            "surprise": "REFUSAL_REASON_NOT_DRAWN",
        },
        "total": 175,
        "balance": 449 + 175,
    }
    schedule = await stub.GetSchedule(
        pb.GetScheduleRequest(campaign_id="spring-48h", after_time=stamp(saturday))
    )
    (event,) = schedule.occurrences
    assert (event.local_start, event.local_end) == (
        "2026-03-27T18:00:00+01:00",
        "2026-03-29T18:00:00+02:00",
    )
    assert event.end_time.seconds - event.start_time.seconds == 47 * 3600
    refund = activity(
        "refund-1002",
        "refund",
        gold_day + 3600 * 1_000_000,
        member_id="alice",
        refund=pb.Refund(purchase_activity_id="order-1002", amount_minor=2500),
    )
    clock.set(gold_day + 3600 * 1_000_000)
    response = await stub.TrackActivity(pb.TrackActivityRequest(activity=refund))
    assert response.breakdown.clawback.points_reversed == 175
    assert await balance(campaigns.ledger, "alice") == 449
