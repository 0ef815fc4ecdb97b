"""Concurrency against a real ledger: budgets never overrun, duplicates award once."""

from __future__ import annotations

import asyncio

from loyalty.campaigns.v1 import campaigns_service_pb2 as pb

from tests.support.campaigns import fixed, launch, program, purchase
from tests.support.ledger import balance


async def test_concurrent_activities_never_overrun_a_nearly_spent_budget(campaigns):
    stub, ledger = campaigns.stub, campaigns.ledger
    members = [f"m-{n}" for n in range(20)]
    await program(stub, *members)
    await launch(stub, "flash", fixed(10, budget=95))
    now = campaigns.clock.now_us()
    responses = await asyncio.gather(
        *(
            stub.TrackActivity(
                pb.TrackActivityRequest(
                    activity=purchase(f"a-{n}", 500, now, member_id=members[n % len(members)])
                )
            )
            for n in range(40)
        )
    )
    bonuses = [a.points for r in responses for a in r.breakdown.applied if a.campaign_id == "flash"]
    refusals = [
        r.reason for resp in responses for r in resp.breakdown.refused if r.campaign_id == "flash"
    ]
    assert bonuses == [10] * 9
    assert refusals == [pb.REFUSAL_REASON_BUDGET_EXHAUSTED] * 31
    assert await balance(ledger, "campaign:flash:budget") == 5
    wallets = [await balance(ledger, member_id) for member_id in members]
    assert sum(wallets) == 40 * 5 + 90
    stats = (await stub.GetCampaignStats(pb.GetCampaignStatsRequest(campaign_id="flash"))).stats
    assert stats.reconciled and stats.budget_left == 5


async def test_the_same_activity_delivered_concurrently_awards_once(campaigns):
    stub, ledger = campaigns.stub, campaigns.ledger
    await program(stub)
    await launch(stub, "bonus", fixed(7))
    delivery = pb.TrackActivityRequest(activity=purchase("a-1", 1000, campaigns.clock.now_us()))
    responses = await asyncio.gather(*(stub.TrackActivity(delivery) for _ in range(12)))
    assert sum(not r.replayed for r in responses) == 1
    assert {r.breakdown.SerializeToString() for r in responses} == {
        responses[0].breakdown.SerializeToString()
    }
    assert responses[0].breakdown.balance == 17
    assert await balance(ledger, "m-1") == 17
    assert await balance(ledger, "campaign:bonus:budget") == 10_000 - 7
