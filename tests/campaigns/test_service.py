"""The use cases over a real temporary SQLite store and an in-memory ledger
(tests/support/fake_ledger.py), with no gRPC: the rules that need a store
(caps counted per local day, pauses by event time, the outbox's kinds and
settlements) without a server in the way."""

from __future__ import annotations

from dataclasses import replace

import pytest
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from services.campaigns.domain.model import (
    Activity,
    CampaignSpec,
    Conditions,
    Limits,
    MemberLimit,
    RefusalReason,
)
from services.campaigns.server import assemble
from services.kit.clock import MICROS_PER_SECOND
from services.kit.errors import FailedPrecondition, Unavailable
from services.kit.outbox import POLICY
from services.kit.schedule import LimitPeriod
from tests.support.campaign_cases import join, launch, points_of, refusal_of, track
from tests.support.campaign_specs import activity, always, base_rule, fixed, purchase

LOS_ANGELES = "America/Los_Angeles"  # UTC-8 in January: local midnight is 08:00 UTC
AUCKLAND = "Pacific/Auckland"  # UTC+13 in January: local midnight is 11:00 UTC the day before
LOGINS = Conditions(activity_types=("app_login",))
# Past the grace the relay leaves to an entry's own request.
SECOND = MICROS_PER_SECOND
# More lost answers than the request's own attempts (it retries UNAVAILABLE).
LOST_EVERY_TIME = 10
AFTER_GRACE_US = POLICY.grace_us + SECOND


def daily_capped(zone: str) -> CampaignSpec:
    """60 points per login, at most 100 a day in `zone`."""
    return fixed(
        60,
        schedule=always(zone),
        conditions=LOGINS,
        limits=Limits(member_limits=(MemberLimit(LimitPeriod.DAY, 100),)),
    )


@pytest.mark.parametrize(
    ("zone", "same_utc_day", "same_local_day"),
    [
        # 23:30 and 00:30 in Los Angeles are both 11 January in UTC (07:30Z, 08:30Z)...
        (LOS_ANGELES, ("2026-01-10T23:30:00", "2026-01-11T00:30:00"),
         # ...and 15:00 and 17:00 the same local day are 23:00Z on the 12th, 01:00Z on the 13th.
         ("2026-01-12T15:00:00", "2026-01-12T17:00:00")),
        # 23:30 and 00:30 in Auckland are both 10 January in UTC (10:30Z, 11:30Z)...
        (AUCKLAND, ("2026-01-10T23:30:00", "2026-01-11T00:30:00"),
         # ...and 12:00 and 14:00 the same local day are 23:00Z on the 10th, 01:00Z on the 11th.
         ("2026-01-12T12:00:00", "2026-01-12T14:00:00")),
    ],
)  # fmt: skip
async def test_a_daily_cap_counts_the_campaigns_local_day_not_the_utc_day(
    service, zone, same_utc_day, same_local_day
):
    await join(service)
    await launch(service, "daily", daily_capped(zone))
    first, second = (activity("app_login", t, f"u-{n}", zone) for n, t in enumerate(same_utc_day))
    assert first.occur_us // 86_400_000_000 == second.occur_us // 86_400_000_000
    # Two local days: each login gets its full 60, though one UTC day holds 120.
    assert [points_of(await track(service, a), "daily") for a in (first, second)] == [60, 60]
    first, second = (activity("app_login", t, f"l-{n}", zone) for n, t in enumerate(same_local_day))
    assert first.occur_us // 86_400_000_000 != second.occur_us // 86_400_000_000
    # One local day across two UTC days: the second login is cut to the 40 left of 100.
    assert [points_of(await track(service, a), "daily") for a in (first, second)] == [60, 40]
    stats = await service.campaigns.stats.stats("daily")
    assert [(day.day, day.points) for day in stats.figures.days] == [
        (same_utc_day[0][:10], 60),
        (same_utc_day[1][:10], 60),
        (same_local_day[0][:10], 100),
    ]


async def test_a_pause_holds_back_what_happened_during_it_not_what_arrives_during_it(service):
    await join(service)
    await launch(service, "bonus", fixed(25, conditions=LOGINS))
    management, clock = service.campaigns.management, service.clock
    start = clock.now_us()
    happened_live = _at(activity("app_login", activity_id="live"), start + 60 * SECOND)
    happened_paused = _at(activity("app_login", activity_id="paused"), start + 180 * SECOND)
    clock.set(start + 120 * SECOND)
    await management.act("bonus", "pause")
    clock.set(start + 240 * SECOND)
    # Happened while live, arrives during the pause: awarded.
    arrived_in_pause = await track(service, happened_live)
    assert points_of(arrived_in_pause, "bonus") == 25
    await management.act("bonus", "resume")
    clock.set(start + 300 * SECOND)
    # Happened during the pause, arrives after the resume: refused as PAUSED.
    arrived_after = await track(service, happened_paused)
    assert refusal_of(arrived_after, "bonus") is RefusalReason.PAUSED
    assert points_of(arrived_after, "bonus") == 0
    campaign = (await management.get("bonus")).campaign
    assert [(p.start_us - start, p.end_us - start) for p in campaign.pauses] == [
        (120 * SECOND, 240 * SECOND)
    ]


def _at(tracked: Activity, occur_us: int) -> Activity:
    return replace(tracked, occur_us=occur_us)


async def test_an_answer_lost_after_the_ledger_committed_is_applied_by_the_relay(service):
    campaigns, fake, clock = service.campaigns, service.ledger, service.clock
    await join(service)
    await launch(service, "base", base_rule())
    await launch(service, "bonus", fixed(10))
    order = _at(purchase(1234), clock.now_us())
    fake.lose_answers = LOST_EVERY_TIME
    with pytest.raises(Unavailable):
        await campaigns.tracking.track(order)
    fake.lose_answers = 0
    # The ledger has the award; this service has it recorded, not applied.
    assert fake.balance("m-1") == 22
    assert (await campaigns.stats.stats("bonus")).figures.pending_entries == 1
    # No retry by the client: the relay posts it again (EXISTS) and applies it once.
    assert await campaigns.outbox.relay_once(clock.now_us() + AFTER_GRACE_US) == 1
    stats = await campaigns.stats.stats("bonus")
    assert stats.reconciled and stats.figures.points == 10
    assert fake.balance("m-1") == 22
    again = await campaigns.tracking.track(order)
    assert again.replayed and again.outcome.balance == 22
    assert fake.balance("m-1") == 22


async def test_what_a_crash_left_recorded_is_applied_at_start(service, tmp_path):
    campaigns, fake, clock = service.campaigns, service.ledger, service.clock
    await join(service)
    await launch(service, "base", base_rule())
    fake.lose_answers = LOST_EVERY_TIME
    with pytest.raises(Unavailable):
        await campaigns.tracking.track(_at(purchase(5000), clock.now_us()))
    fake.lose_answers = 0
    await campaigns.stop()
    # The same files, a new process: recovery finishes the entry before serving.
    restarted = assemble(service.settings, fake, clock)
    await restarted.start()
    try:
        stats = await restarted.stats.stats("base")
        assert stats.figures.pending_entries == 0 and stats.figures.points == 50
        assert fake.balance("m-1") == 50
    finally:
        await restarted.stop()
        await campaigns.start()  # the fixture stops it again


async def test_a_request_the_ledger_calls_malformed_is_undone_and_not_posted_again(service):
    campaigns, fake, clock = service.campaigns, service.ledger, service.clock
    await join(service)
    await launch(service, "base", base_rule())
    fake.malformed = {"activity:a-1:base"}
    with pytest.raises(FailedPrecondition) as refused:
        await campaigns.tracking.track(_at(purchase(1000), clock.now_us()))
    assert refused.value.reason == "LEDGER_REFUSED"
    posts = fake.calls["PostTransfers"]
    assert posts == 1  # no second attempt at a request the ledger calls malformed
    # Closed as failed: nothing pending, nothing for the relay, nothing counted.
    assert await campaigns.outbox.relay_once(clock.now_us() + 10**12) == 0
    assert fake.calls["PostTransfers"] == posts
    stats = await campaigns.stats.stats("base")
    assert stats.figures.pending_entries == 0 and stats.figures.points == 0
    assert await campaigns.store.read(lambda unit: unit.events_after(0, 10)) == []


async def test_the_ledger_refusing_a_chain_undoes_it_and_decides_again(service):
    campaigns, fake, clock = service.campaigns, service.ledger, service.clock
    await join(service)
    await launch(service, "base", base_rule())
    await launch(service, "bonus", fixed(10, budget_points=10))
    # The budget account is drained behind this service's back.
    fake.accounts["campaign:bonus:budget"].debits += 10
    outcome = await track(service, _at(purchase(500), clock.now_us()))
    assert (outcome.decision.base_points, points_of(outcome, "bonus")) == (5, 0)
    assert refusal_of(outcome, "bonus") is RefusalReason.BUDGET_EXHAUSTED
    assert fake.balance("m-1") == 5
    stats = await campaigns.stats.stats("bonus")
    assert stats.figures.points == 0 and stats.campaign.budget_used == 0
    bonuses = [t for t in fake.transfers.values() if t.code == ledger_pb.TRANSFER_CODE_BONUS]
    assert bonuses == []
    # The feed has the activity once, as it finally settled; the undone try is not in it.
    events = await campaigns.store.read(lambda unit: unit.events_after(0, 10))
    assert [(e.sequence, e.activity.activity_id, e.points) for e in events] == [(1, "a-1", 5)]


async def test_budget_funding_counts_once_whoever_settles_it(service):
    campaigns, fake, clock = service.campaigns, service.ledger, service.clock
    await campaigns.management.create("bonus", fixed(10, budget_points=500))
    fake.lose_answers = LOST_EVERY_TIME
    with pytest.raises(Unavailable):
        await campaigns.management.act("bonus", "schedule")
    fake.lose_answers = 0
    assert fake.balance("campaign:bonus:budget") == 500
    assert (await campaigns.management.get("bonus")).campaign.budget_funded == 0
    assert await campaigns.outbox.relay_once(clock.now_us() + AFTER_GRACE_US) == 1
    view = await campaigns.management.get("bonus")
    assert view.campaign.budget_funded == 500 and view.campaign.budget_remaining == 500
    assert (await campaigns.stats.stats("bonus")).reconciled
