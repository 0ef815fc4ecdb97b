"""A personal offer on every visit, and the program's figures, through real servers."""

from __future__ import annotations

import grpc
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.rewards.v1 import rewards_service_pb2 as pb

from tests.support.errors import expect_error
from tests.support.ledger import post, transfer
from tests.support.rewards import (
    DAY_US,
    START_US,
    TIMEOUT,
    at,
    create_reward,
    import_codes,
    redeem,
    spec,
)


async def upsert(world, offer_id: str, **fields) -> None:
    fields.setdefault("title", offer_id)
    await world.stub.UpsertOffer(
        pb.UpsertOfferRequest(offer_id=offer_id, spec=pb.OfferSpec(**fields)), timeout=TIMEOUT
    )


async def my_offer(world, member_id: str, visit_id: str) -> pb.VisitOffer:
    response = await world.stub.GetMyOffer(
        pb.GetMyOfferRequest(member_id=member_id, visit_id=visit_id), timeout=TIMEOUT
    )
    return response.visit


async def test_no_free_coffee_for_a_tea_drinker_and_a_free_cake_is_redeemed(world) -> None:
    cake = spec("Free cake", pb.REWARD_KIND_CODE_POOL, 999, hidden=True)
    await create_reward(world.stub, "cake", cake, stock=5)
    await import_codes(world.stub, "cake", ["CAKE-1", "CAKE-2"])
    await upsert(world, "coffee", tags=["drinks:coffee"], bonus_points=20)
    await upsert(world, "cake", tags=["food:sweet"], reward_id="cake", price_points=0)
    await upsert(world, "tea", tags=["drinks:tea"], bonus_points=15)
    await world.stub.SetPreferences(
        pb.SetPreferencesRequest(
            member_id="m-1",
            preferences=pb.Preferences(choices=[pb.Preference(key="drinks", values=["tea"])]),
        ),
        timeout=TIMEOUT,
    )
    await world.fund("m-1", 10)

    visits = [await my_offer(world, "m-1", f"visit-{n}") for n in range(8)]

    assert {visit.offer.offer_id for visit in visits} == {"cake", "tea"}
    assert await my_offer(world, "m-1", "visit-2") == visits[2]
    cake_visit = next(visit for visit in visits if visit.offer.offer_id == "cake")
    tea_visit = next(visit for visit in visits if visit.offer.offer_id == "tea")
    accepted = await world.stub.AcceptOffer(
        pb.AcceptOfferRequest(member_id="m-1", visit_id=cake_visit.visit_id), timeout=TIMEOUT
    )
    assert accepted.visit.state == pb.OFFER_STATE_ACCEPTED
    assert accepted.visit.redemption.code == "CAKE-1"
    assert accepted.visit.redemption.price_total == 0
    for _ in range(2):
        awarded = await world.stub.AcceptOffer(
            pb.AcceptOfferRequest(member_id="m-1", visit_id=tea_visit.visit_id), timeout=TIMEOUT
        )
        assert awarded.visit.points_awarded
    assert await world.points("m-1") == 10 + 15
    # A hidden reward is only given through an offer.
    await expect_error(
        redeem(world.stub, "m-1", "cake", "direct"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REWARD_NOT_OFFERED",
    )
    await expect_error(
        world.stub.AcceptOffer(
            pb.AcceptOfferRequest(member_id="m-1", visit_id="never-shown"), timeout=TIMEOUT
        ),
        grpc.StatusCode.NOT_FOUND,
        "VISIT_NOT_FOUND",
    )


async def test_the_program_report_reads_liability_and_movements_from_the_ledger(world) -> None:
    mug = spec(
        "Mug", pb.REWARD_KIND_PHYSICAL, 300, value=pb.Money(amount_minor=1200, currency="EUR")
    )
    await create_reward(world.stub, "mug", mug, stock=10)
    await world.fund("m-1", 1000)
    await world.fund("m-2", 500)
    world.clock.advance(86_400)
    day_two = world.clock.now_us()
    first = await redeem(world.stub, "m-1", "mug", "r-1")
    await redeem(world.stub, "m-2", "mug", "r-2", quantity=1)
    await world.stub.CancelRedemption(
        pb.CancelRedemptionRequest(redemption_id=first.redemption_id), timeout=TIMEOUT
    )
    (expired,) = await post(
        world.ledger,
        transfer(
            "expire-by-hand", "m-2", "program:breakage", 50, code=ledger_pb.TRANSFER_CODE_ADJUSTMENT
        ),
    )
    assert expired.code == ledger_pb.TRANSFER_RESULT_CODE_OK

    whole = await world.stub.GetProgramReport(pb.GetProgramReportRequest(), timeout=TIMEOUT)
    later = await world.stub.GetProgramReport(
        pb.GetProgramReportRequest(start_time=at(day_two), end_time=at(START_US + 3 * DAY_US)),
        timeout=TIMEOUT,
    )

    assert whole.outstanding_points == 1000 + 500 - 300 - 50
    assert (whole.points_issued, whole.points_redeemed, whole.points_expired) == (1500, 300, 50)
    assert abs(whole.redemption_rate - 300 / 1500) < 1e-9
    assert [(m.amount_minor, m.currency) for m in whole.value_redeemed] == [(1200, "EUR")]
    assert whole.redemptions == 2
    assert (later.points_issued, later.points_redeemed) == (0, 300)
    assert later.redemption_rate == 0.0
    report = await world.stub.GetRewardReport(
        pb.GetRewardReportRequest(reward_id="mug"), timeout=TIMEOUT
    )
    assert (report.report.redemptions, report.report.reversed, report.report.stock_left) == (
        1,
        1,
        9,
    )
    assert report.report.value_redeemed.amount_minor == 1200
