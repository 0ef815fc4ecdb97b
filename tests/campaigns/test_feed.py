"""WatchActivities: every settled activity with the points it gave, gapless, in
the order activities settled, and resumable from any sequence."""

from __future__ import annotations

import asyncio

import grpc
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as pb_grpc

from services.kit.status import field_violations
from tests.support.campaigns import (
    activity,
    fixed,
    launch,
    member,
    program,
    purchase,
    signup_referral,
    start_campaigns,
    track,
)
from tests.support.errors import expect_error

READ_GUARD_SECONDS = 10  # only against a hang: every event read is already committed


async def read(stream, count: int) -> list[pb.WatchActivitiesResponse]:
    return [await asyncio.wait_for(stream.read(), READ_GUARD_SECONDS) for _ in range(count)]


async def events_after(stub, after_sequence: int, count: int) -> list[pb.WatchActivitiesResponse]:
    stream = stub.WatchActivities(pb.WatchActivitiesRequest(after_sequence=after_sequence))
    try:
        return await read(stream, count)
    finally:
        stream.cancel()


async def a_day_of_activities(campaigns) -> None:
    """A purchase, a share that earns nothing, a referral paying two members, a refund."""
    stub, now = campaigns.stub, campaigns.clock.now_us()
    await program(stub, "m-1")
    await stub.UpsertMember(
        pb.UpsertMemberRequest(
            member=member("m-2", referrer_member_id="m-1", time_zone="Europe/Paris")
        )
    )
    await launch(stub, "friends", signup_referral(referrer_points=100, referred_points=50))
    await launch(stub, "bonus", fixed(5, conditions=pb.Conditions(activity_types=["purchase"])))
    order = purchase("p-1", 2000, now)
    order.attributes["channel"] = "app"
    await track(stub, order)
    await track(stub, activity("s-1", "social_share", now + 1))
    await track(stub, activity("r-1", "referral_signup", now + 2, member_id="m-2"))
    refund = activity(
        "x-1",
        "refund",
        now + 3,
        refund=pb.Refund(purchase_activity_id="p-1", amount_minor=1000),
    )
    await track(stub, refund)


def summary(event: pb.WatchActivitiesResponse) -> tuple:
    credits = [(credit.member_id, credit.points) for credit in event.credits]
    activity = event.activity
    return (
        event.sequence,
        activity.activity_id,
        activity.member_id,
        activity.type,
        event.points,
        credits,
    )


async def test_every_settled_activity_with_what_it_gave(campaigns):
    await a_day_of_activities(campaigns)
    events = await events_after(campaigns.stub, 0, 4)
    assert [summary(event) for event in events] == [
        (1, "p-1", "m-1", "purchase", 25, [("m-1", 25)]),
        (2, "s-1", "m-1", "social_share", 0, []),
        (3, "r-1", "m-2", "referral_signup", 50, [("m-1", 100), ("m-2", 50)]),
        (4, "x-1", "m-1", "refund", -12, [("m-1", -12)]),
    ]
    purchased = events[0].activity
    assert dict(purchased.attributes) == {"channel": "app"}
    assert purchased.purchase.amount_minor == 2000
    assert purchased.occur_time.seconds == campaigns.clock.now_us() // 1_000_000
    assert events[0].record_time.seconds == campaigns.clock.now_us() // 1_000_000
    # The member's zone as campaigns knew it (for streaks in their own days).
    assert (events[0].time_zone, events[2].time_zone) == ("", "Europe/Paris")
    assert events[3].activity.refund.purchase_activity_id == "p-1"
    assert events[3].activity.refund.amount_minor == 1000


async def test_resuming_from_any_sequence_gives_exactly_what_follows_it(campaigns):
    await a_day_of_activities(campaigns)
    everything = [summary(event) for event in await events_after(campaigns.stub, 0, 4)]
    for position in range(len(everything)):
        stream = campaigns.stub.WatchActivities(pb.WatchActivitiesRequest(after_sequence=position))
        try:
            # Nothing skipped, nothing repeated: the very next event is position + 1...
            (first,) = await read(stream, 1)
            assert summary(first) == everything[position], position
            # ...and the rest follow it in order.
            rest = await read(stream, len(everything) - position - 1)
            assert [summary(event) for event in rest] == everything[position + 1 :], position
        finally:
            stream.cancel()


async def test_a_follower_gets_new_activities_as_they_settle_and_resumes_after_a_restart(
    campaigns, ledger
):
    stub, clock = campaigns.stub, campaigns.clock
    await program(stub)
    stream = stub.WatchActivities(pb.WatchActivitiesRequest())
    await track(stub, purchase("p-1", 1000, clock.now_us()))
    (first,) = await read(stream, 1)
    assert (first.sequence, first.points) == (1, 10)
    await track(stub, purchase("p-2", 2000, clock.now_us()))
    (second,) = await read(stream, 1)
    assert (second.sequence, second.activity.activity_id) == (2, "p-2")
    stream.cancel()

    await campaigns.host.stop(None)
    host, channel = await start_campaigns(ledger.target, clock, campaigns.settings.db_path)
    async with channel:
        restarted = pb_grpc.CampaignsServiceStub(channel)
        resumed = restarted.WatchActivities(pb.WatchActivitiesRequest(after_sequence=2))
        await track(restarted, purchase("p-3", 3000, clock.now_us()))
        (third,) = await read(resumed, 1)
        assert (third.sequence, third.activity.activity_id, third.points) == (3, "p-3", 30)
        resumed.cancel()
    await host.stop(None)


async def test_a_negative_position_is_invalid(campaigns):
    stream = campaigns.stub.WatchActivities(pb.WatchActivitiesRequest(after_sequence=-1))
    error = await expect_error(stream.read(), grpc.StatusCode.INVALID_ARGUMENT)
    assert "after_sequence" in field_violations(error)
