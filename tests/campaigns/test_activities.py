"""TrackActivity and DryRunActivity over a real campaigns server and a real ledger."""

from __future__ import annotations

import asyncio

import grpc
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from services.kit.status import field_violations
from services.ledger.server import LedgerSettings, build_server
from tests.support.campaigns import (
    activity,
    fixed,
    launch,
    member,
    move_points,
    multiplier,
    program,
    purchase,
    signup_referral,
    track,
)
from tests.support.errors import expect_error
from tests.support.ledger import NEVER_SECONDS, balance
from tests.support.metrics import NO_METRICS

HOUR_US = 3600 * 1_000_000
RECONNECT_GUARD_SECONDS = 30


async def settled_stats(stub, campaign_id: str, clock) -> pb.CampaignStats:
    """The campaign's stats once the relay has posted everything pending. Each round
    moves the clock past the relay's backoff; the service's channel to a restarted
    ledger reconnects on gRPC's own backoff, which no event shows, so this polls,
    within a bound."""
    async with asyncio.timeout(RECONNECT_GUARD_SECONDS):
        while True:
            clock.advance(60)
            try:
                request = pb.GetCampaignStatsRequest(campaign_id=campaign_id)
                stats = (await stub.GetCampaignStats(request)).stats
                if stats.reconciled:
                    return stats
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE, error
            await asyncio.sleep(0.05)


async def test_upsert_member_opens_the_wallet_once(campaigns):
    stub = campaigns.stub
    profile = member(time_zone="Europe/Paris", tier="gold", birthday=pb.Birthday(month=2, day=29))
    first = await stub.UpsertMember(pb.UpsertMemberRequest(member=profile))
    again = await stub.UpsertMember(pb.UpsertMemberRequest(member=profile))
    assert first.created and not again.created
    assert again.member.birthday.day == 29
    wallet = await campaigns.ledger.GetAccount(ledger_pb.GetAccountRequest(account_id="m-1"))
    assert wallet.account.flags.expiring_lots
    assert wallet.account.expiry_account_id == "program:breakage"
    got = await stub.GetMember(pb.GetMemberRequest(member_id="m-1"))
    assert got.member.tier == "gold"


async def test_one_referrer_per_member_never_itself(campaigns):
    stub = campaigns.stub
    await program(stub, "m-1", "m-2", "m-3")
    await expect_error(
        stub.UpsertMember(
            pb.UpsertMemberRequest(member=member("m-4", referrer_member_id="nobody"))
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REFERRER_NOT_FOUND",
    )
    error = await expect_error(
        stub.UpsertMember(pb.UpsertMemberRequest(member=member("m-2", referrer_member_id="m-2"))),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "member.referrer_member_id" in field_violations(error)
    await stub.UpsertMember(pb.UpsertMemberRequest(member=member("m-2", referrer_member_id="m-1")))
    await expect_error(
        stub.UpsertMember(pb.UpsertMemberRequest(member=member("m-2", referrer_member_id="m-3"))),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REFERRER_ALREADY_SET",
    )


async def test_an_activity_awards_one_linked_chain_and_a_retry_replays_it(campaigns):
    stub, ledger = campaigns.stub, campaigns.ledger
    await program(stub)
    await launch(stub, "double", multiplier(200))
    await launch(stub, "welcome", fixed(25))
    now = campaigns.clock.now_us()
    first = await track(stub, purchase("a-1", 1234, now))
    breakdown = first.breakdown
    assert (breakdown.base_points, breakdown.total_points, breakdown.balance) == (12, 49, 49)
    assert list(breakdown.transfer_ids) == [
        "activity:a-1:base",
        "activity:a-1:bonus:double",
        "activity:a-1:bonus:welcome",
    ]
    legs = [
        (await ledger.GetTransfer(ledger_pb.GetTransferRequest(transfer_id=t))).transfer
        for t in breakdown.transfer_ids
    ]
    assert [leg.debit_account_id for leg in legs] == [
        "program:issuance",
        "campaign:double:budget",
        "campaign:welcome:budget",
    ]
    assert breakdown.expire_time.seconds == now // 1_000_000 + 365 * 86_400
    again = await track(stub, purchase("a-1", 1234, now))
    assert again.replayed and again.breakdown == breakdown
    assert await balance(campaigns.ledger, "m-1") == 49


async def test_the_same_id_with_other_content_names_the_difference(campaigns):
    stub = campaigns.stub
    await program(stub)
    now = campaigns.clock.now_us()
    await track(stub, purchase("a-1", 1000, now))
    await expect_error(
        track(stub, purchase("a-1", 2000, now)),
        grpc.StatusCode.ALREADY_EXISTS,
        "ACTIVITY_ID_REUSED",
    )
    assert await balance(campaigns.ledger, "m-1") == 10


async def test_late_future_and_unknown_member_activities_change_nothing(campaigns):
    stub = campaigns.stub
    await program(stub)
    now = campaigns.clock.now_us()
    late = purchase("late", 1000, now - 73 * HOUR_US)
    await expect_error(track(stub, late), grpc.StatusCode.FAILED_PRECONDITION, "ACTIVITY_TOO_LATE")
    future = purchase("future", 1000, now + HOUR_US)
    await expect_error(
        track(stub, future), grpc.StatusCode.FAILED_PRECONDITION, "ACTIVITY_IN_FUTURE"
    )
    beyond_year_9999 = purchase("far", 1000, now)
    beyond_year_9999.occur_time.seconds = 10**15
    error = await expect_error(
        track(stub, beyond_year_9999), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"
    )
    assert "activity.occur_time" in field_violations(error)
    stranger = purchase("who", 1000, now, member_id="stranger")
    await expect_error(track(stub, stranger), grpc.StatusCode.NOT_FOUND, "MEMBER_NOT_FOUND")
    # Within the allowed lateness the activity counts, by its own time.
    on_time = await track(stub, purchase("on-time", 1000, now - 71 * HOUR_US))
    assert on_time.breakdown.total_points == 10
    assert await balance(campaigns.ledger, "m-1") == 10


async def test_dry_run_tells_what_would_be_earned_and_posts_nothing(campaigns):
    stub = campaigns.stub
    await program(stub)
    await launch(
        stub, "share", fixed(15, conditions=pb.Conditions(activity_types=["social_share"]))
    )
    now = campaigns.clock.now_us()
    dry = await stub.DryRunActivity(
        pb.DryRunActivityRequest(activity=activity("s-1", "social_share", now))
    )
    assert dry.breakdown.total_points == 15
    assert await balance(campaigns.ledger, "m-1") == 0
    tracked = await track(stub, activity("s-1", "social_share", now))
    assert tracked.breakdown.total_points == 15 and not tracked.replayed


async def test_refunds_claw_back_in_proportion_and_never_below_zero(campaigns):
    stub, ledger = campaigns.stub, campaigns.ledger
    await program(stub)
    await launch(stub, "bonus", fixed(50))
    now = campaigns.clock.now_us()
    await track(stub, purchase("p-1", 10_000, now))  # 100 base + 50 bonus
    assert await balance(campaigns.ledger, "m-1") == 150

    def refund(activity_id, amount):
        return activity(
            activity_id,
            "refund",
            now,
            refund=pb.Refund(purchase_activity_id="p-1", amount_minor=amount),
        )

    partial = (await track(stub, refund("r-1", 3_333))).breakdown
    assert partial.clawback.points_reversed == 33 + 16  # floor(100/3) + floor(50/3)
    assert partial.balance == 150 - 49
    budget = await stub.GetCampaign(pb.GetCampaignRequest(campaign_id="bonus"))
    assert budget.campaign.budget_used == 50 - 16
    # The member spends most of the rest before the remaining refund.
    await move_points(ledger, "redeem-1", "m-1", "shop:redemption", 81)
    rest = (await track(stub, refund("r-2", 6_667))).breakdown
    assert rest.clawback.points_reversed == 20
    assert rest.clawback.points_unrecovered == (100 - 33) + (50 - 16) - 20
    assert await balance(campaigns.ledger, "m-1") == 0
    await expect_error(
        track(stub, refund("r-3", 1)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REFUND_EXCEEDS_PURCHASE",
    )


async def test_birthday_bonus_once_a_year(campaigns):
    stub = campaigns.stub
    await program(stub)
    await stub.UpsertMember(
        pb.UpsertMemberRequest(member=member(birthday=pb.Birthday(month=1, day=1)))
    )
    birthday = pb.CampaignSpec(
        display_name="Happy birthday",
        kind=pb.CAMPAIGN_KIND_BIRTHDAY_BONUS,
        reward=pb.Reward(points=200),
        budget_points=1000,
        schedule=pb.Schedule(time_zone="Europe/Paris"),
    )
    await launch(stub, "bday", birthday)
    now = campaigns.clock.now_us()  # 1 January, 01:00 in Paris
    first = await track(stub, activity("l-1", "app_login", now))
    second = await track(stub, activity("l-2", "app_login", now + 1))
    assert [a.campaign_id for a in first.breakdown.applied] == ["bday"]
    assert [r.reason for r in second.breakdown.refused] == [pb.REFUSAL_REASON_ALREADY_GRANTED]


async def test_a_budget_drained_outside_the_service_is_refused_by_the_ledger(campaigns):
    stub, ledger = campaigns.stub, campaigns.ledger
    await program(stub)
    await launch(stub, "bonus", fixed(10, budget=10))
    await move_points(ledger, "drain", "campaign:bonus:budget", "ops:sink", 10)
    # Our bookkeeping still sees 10 points; the ledger refuses the chain, the
    # record is undone and the activity evaluated again without that budget.
    response = await track(stub, purchase("a-1", 500, campaigns.clock.now_us()))
    assert response.breakdown.total_points == 5
    assert [r.reason for r in response.breakdown.refused] == [pb.REFUSAL_REASON_BUDGET_EXHAUSTED]
    assert await balance(campaigns.ledger, "m-1") == 5
    stats = (await stub.GetCampaignStats(pb.GetCampaignStatsRequest(campaign_id="bonus"))).stats
    assert stats.points_awarded == 0 and not stats.reconciled


async def test_an_award_recorded_while_the_ledger_is_down_is_posted_once_by_the_relay(
    campaigns, ledger, ledger_db
):
    stub = campaigns.stub
    await program(stub)
    await launch(stub, "bonus", fixed(10))
    await ledger.host.stop(None)
    now = campaigns.clock.now_us()
    await expect_error(
        track(stub, purchase("a-1", 1000, now)), grpc.StatusCode.UNAVAILABLE, "LEDGER_UNAVAILABLE"
    )
    settings = LedgerSettings(
        db_path=ledger_db,
        sweep_interval_seconds=NEVER_SECONDS,
        metrics_listen=NO_METRICS,
    )
    revived = await build_server(settings, ledger.target, ledger.clock)
    await revived.start()
    try:
        # No client retry: the relay posts the entry once its own request had its
        # chance (the kit's RelayPolicy grace), by the injected clock.
        stats = await settled_stats(stub, "bonus", campaigns.clock)
        assert stats.points_awarded == 10 and stats.reconciled
        assert await balance(campaigns.ledger, "m-1") == 20
        again = await track(stub, purchase("a-1", 1000, now))
        assert again.replayed and again.breakdown.balance == 20
        assert await balance(campaigns.ledger, "m-1") == 20
    finally:
        await revived.stop(None)


async def test_a_referred_signup_pays_both_wallets_in_one_chain_once(campaigns):
    stub, ledger = campaigns.stub, campaigns.ledger
    await program(stub, "m-1")
    await stub.UpsertMember(pb.UpsertMemberRequest(member=member("m-2", referrer_member_id="m-1")))
    await launch(stub, "friends", signup_referral(referrer_points=100, referred_points=50))
    now = campaigns.clock.now_us()
    signup = await track(stub, activity("s-1", "referral_signup", now, member_id="m-2"))
    assert list(signup.breakdown.applied[0].transfer_ids) == [
        "activity:s-1:bonus:friends",
        "activity:s-1:bonus:friends:referrer",
    ]
    assert signup.breakdown.total_points == 50
    again = await track(stub, activity("s-2", "referral_signup", now, member_id="m-2"))
    assert [r.reason for r in again.breakdown.refused] == [pb.REFUSAL_REASON_ALREADY_GRANTED]
    assert (await balance(ledger, "m-1"), await balance(ledger, "m-2")) == (100, 50)
