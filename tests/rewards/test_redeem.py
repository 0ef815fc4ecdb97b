"""Redeeming through a real rewards server and a real ledger."""

from __future__ import annotations

import grpc
from loyalty.rewards.v1 import rewards_service_pb2 as pb

from services.rewards.domain.codes import is_valid_generated
from tests.support.errors import expect_error
from tests.support.rewards import TIMEOUT, create_reward, import_codes, redeem, spec


async def test_a_code_reward_takes_points_and_stock_and_shows_one_code(world) -> None:
    await create_reward(world.stub, "coffee", spec(), stock=5)
    await import_codes(world.stub, "coffee", ["code", "AAA-1", "AAA-2"])
    await world.fund("m-1", 250)

    redemption = await redeem(world.stub, "m-1", "coffee", "r-1")

    assert redemption.state == pb.REDEMPTION_STATE_ISSUED
    assert redemption.code == "AAA-1"
    assert await world.points("m-1") == 150
    assert await world.available("reward:coffee:stock") == 4
    again = await redeem(world.stub, "m-1", "coffee", "r-1")
    assert again == redemption
    assert await world.points("m-1") == 150


async def test_not_enough_points_holds_nothing(world) -> None:
    await create_reward(world.stub, "coffee", spec(), stock=5)
    await import_codes(world.stub, "coffee", ["AAA-1"])
    await world.fund("m-1", 50)
    refusal = await expect_error(
        redeem(world.stub, "m-1", "coffee", "r-1"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "INSUFFICIENT_POINTS",
    )
    assert refusal.details()
    assert await world.available("m-1") == 50
    assert await world.available("reward:coffee:stock") == 5
    report = await world.stub.GetRewardReport(
        pb.GetRewardReportRequest(reward_id="coffee"), timeout=TIMEOUT
    )
    assert report.report.codes_left == 1


async def refund(world, redemption_id: str):
    response = await world.stub.RefundRedemption(
        pb.RefundRedemptionRequest(redemption_id=redemption_id, reason="customer returned it"),
        timeout=TIMEOUT,
    )
    return response.redemption


async def test_a_refund_after_issue_returns_the_points_once_and_voids_the_code(world) -> None:
    await create_reward(world.stub, "coffee", spec(), stock=5)
    await import_codes(world.stub, "coffee", ["AAA-1", "AAA-2"])
    await world.fund("m-1", 250)
    issued = await redeem(world.stub, "m-1", "coffee", "r-1")

    refunded = await refund(world, issued.redemption_id)
    again = await refund(world, issued.redemption_id)

    assert refunded.state == pb.REDEMPTION_STATE_REFUNDED and refunded.code == ""
    assert again == refunded
    assert await world.points("m-1") == 250
    assert [event.state for event in refunded.history] == [
        pb.REDEMPTION_STATE_PROCESSING,
        pb.REDEMPTION_STATE_ISSUED,
        pb.REDEMPTION_STATE_REFUNDING,
        pb.REDEMPTION_STATE_REFUNDED,
    ]
    assert refunded.history[2].reason == "customer returned it"
    # The void code is never handed out again; the stock stays taken.
    second = await redeem(world.stub, "m-1", "coffee", "r-2")
    assert second.code == "AAA-2"
    assert await world.available("reward:coffee:stock") == 3
    report = await world.stub.GetRewardReport(
        pb.GetRewardReportRequest(reward_id="coffee"), timeout=TIMEOUT
    )
    assert (report.report.redemptions, report.report.reversed) == (1, 1)
    assert report.report.points_burned == 100


async def test_a_physical_item_is_fulfilled_or_cancelled_with_points_and_stock_back(world) -> None:
    await create_reward(world.stub, "mug", spec("Mug", pb.REWARD_KIND_PHYSICAL, 300), stock=2)
    await world.fund("m-1", 1000)
    first = await redeem(world.stub, "m-1", "mug", "r-1")
    second = await redeem(world.stub, "m-1", "mug", "r-2")
    assert first.state == second.state == pb.REDEMPTION_STATE_AWAITING_FULFILMENT
    assert await world.available("reward:mug:stock") == 0

    fulfilled = await world.stub.FulfilRedemption(
        pb.FulfilRedemptionRequest(redemption_id=first.redemption_id, note="parcel 42"),
        timeout=TIMEOUT,
    )
    cancelled = await world.stub.CancelRedemption(
        pb.CancelRedemptionRequest(redemption_id=second.redemption_id, reason="out of mugs"),
        timeout=TIMEOUT,
    )

    assert fulfilled.redemption.state == pb.REDEMPTION_STATE_FULFILLED
    assert fulfilled.redemption.history[-1].reason == "parcel 42"
    assert cancelled.redemption.state == pb.REDEMPTION_STATE_CANCELLED
    assert await world.points("m-1") == 700
    assert await world.available("reward:mug:stock") == 1
    await expect_error(
        world.stub.CancelRedemption(
            pb.CancelRedemptionRequest(redemption_id=first.redemption_id), timeout=TIMEOUT
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REDEMPTION_STATE_CONFLICT",
    )


async def test_a_wheel_prize_is_claimed_as_a_code(world) -> None:
    claim = spec("Coffee for a wheel prize", price=1, price_unit="prize:free-coffee")
    await create_reward(world.stub, "coffee-claim", claim, stock=10)
    await import_codes(world.stub, "coffee-claim", ["CLAIM-1", "CLAIM-2"])
    await fund_prize(world, "m-1", "prize:free-coffee", 1)

    claimed = await world.stub.ClaimPrize(
        pb.ClaimPrizeRequest(member_id="m-1", prize_unit="prize:free-coffee", request_id="c-1"),
        timeout=TIMEOUT,
    )

    assert claimed.redemption.code == "CLAIM-1"
    assert claimed.redemption.price_unit == "prize:free-coffee"
    assert await world.available("m-1/prize:free-coffee") == 0
    await expect_error(
        world.stub.ClaimPrize(
            pb.ClaimPrizeRequest(member_id="m-1", prize_unit="prize:free-coffee", request_id="c-2"),
            timeout=TIMEOUT,
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "PRIZE_NOT_HELD",
    )


async def fund_prize(world, member_id: str, unit: str, quantity: int) -> None:
    """A prize unit in the member's wallet, the way a wheel pays it."""
    from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

    from tests.support.ledger import open_request, post, transfer, wallet_request

    await world.ledger.OpenAccount(
        open_request(f"prize-issuance:{unit}", ledger_pb.ACCOUNT_KIND_PROGRAM_ISSUANCE, unit),
        timeout=TIMEOUT,
    )
    await world.ledger.OpenAccount(wallet_request(f"{member_id}/{unit}", unit), timeout=TIMEOUT)
    (result,) = await post(
        world.ledger,
        transfer(
            f"won:{member_id}", f"prize-issuance:{unit}", f"{member_id}/{unit}", quantity,
            code=ledger_pb.TRANSFER_CODE_GAME_PRIZE,
        ),
    )  # fmt: skip
    assert result.code == ledger_pb.TRANSFER_RESULT_CODE_OK


async def test_generated_codes_credits_and_prize_units(world) -> None:
    await create_reward(
        world.stub, "voucher", spec("Voucher", pb.REWARD_KIND_GENERATED_CODE, code_length=8), 3
    )
    await create_reward(
        world.stub, "miles", spec("Partner miles", pb.REWARD_KIND_CREDIT, 50, credit_points=0), 3
    )
    await create_reward(
        world.stub, "double", spec("Bonus", pb.REWARD_KIND_CREDIT, 50, credit_points=80), 3
    )
    await create_reward(
        world.stub,
        "wheel-ticket",
        spec("Coffee prize", pb.REWARD_KIND_PRIZE_UNIT, 40, prize_unit="prize:free-coffee"),
        3,
    )
    await world.fund("m-1", 1000)

    voucher = await redeem(world.stub, "m-1", "voucher", "r-1")
    miles = await redeem(world.stub, "m-1", "miles", "r-2")
    double = await redeem(world.stub, "m-1", "double", "r-3", quantity=2)
    ticket = await redeem(world.stub, "m-1", "wheel-ticket", "r-4")

    assert len(voucher.code) == 9 and is_valid_generated(voucher.code)
    assert miles.state == double.state == ticket.state == pb.REDEMPTION_STATE_ISSUED
    assert await world.points("m-1") == 1000 - 100 - 50 - 100 + 160 - 40
    assert await world.available("m-1/prize:free-coffee") == 1


async def test_a_retry_returns_the_first_answer_even_a_refusal(world) -> None:
    await create_reward(world.stub, "mug", spec("Mug", pb.REWARD_KIND_PHYSICAL, 300), stock=1)
    await world.fund("m-1", 100)
    for _ in range(2):
        await expect_error(
            redeem(world.stub, "m-1", "mug", "r-1"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "INSUFFICIENT_POINTS",
        )
    await world.fund("m-1", 500, "more")
    await expect_error(
        redeem(world.stub, "m-1", "mug", "r-1"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "INSUFFICIENT_POINTS",
    )
    await expect_error(
        redeem(world.stub, "m-1", "mug", "r-1", quantity=2),
        grpc.StatusCode.ALREADY_EXISTS,
        "REQUEST_ID_REUSED",
    )
    made = await redeem(world.stub, "m-1", "mug", "r-2")
    assert made.state == pb.REDEMPTION_STATE_AWAITING_FULFILMENT
    mine = await world.stub.ListMyRedemptions(
        pb.ListMyRedemptionsRequest(member_id="m-1", page_size=1), timeout=TIMEOUT
    )
    assert [r.request_id for r in mine.redemptions] == ["r-2"]
    rest = await world.stub.ListMyRedemptions(
        pb.ListMyRedemptionsRequest(member_id="m-1", page_size=1, page_token=mine.next_page_token),
        timeout=TIMEOUT,
    )
    assert [r.failure_reason for r in rest.redemptions] == ["INSUFFICIENT_POINTS"]
    assert rest.next_page_token == ""
    await expect_error(
        world.stub.GetRedemption(
            pb.GetRedemptionRequest(member_id="m-2", redemption_id=made.redemption_id),
            timeout=TIMEOUT,
        ),
        grpc.StatusCode.NOT_FOUND,
        "REDEMPTION_NOT_FOUND",
    )


async def test_a_redemption_records_the_version_it_was_made_under(world) -> None:
    await create_reward(world.stub, "mug", spec("Mug", pb.REWARD_KIND_PHYSICAL, 300), stock=5)
    await world.fund("m-1", 1000)
    first = await redeem(world.stub, "m-1", "mug", "r-1")
    updated = await world.stub.UpdateReward(
        pb.UpdateRewardRequest(
            reward_id="mug", spec=spec("Mug", pb.REWARD_KIND_PHYSICAL, 200), expected_version=1
        ),
        timeout=TIMEOUT,
    )
    second = await redeem(world.stub, "m-1", "mug", "r-2")
    assert (first.reward_version, first.price_total) == (1, 300)
    assert (updated.reward.version, second.reward_version, second.price_total) == (2, 2, 200)
    await expect_error(
        world.stub.UpdateReward(
            pb.UpdateRewardRequest(
                reward_id="mug", spec=spec("Mug", pb.REWARD_KIND_CODE_POOL), expected_version=2
            ),
            timeout=TIMEOUT,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    archived = await world.stub.ArchiveReward(
        pb.ArchiveRewardRequest(reward_id="mug"), timeout=TIMEOUT
    )
    assert archived.reward.archived
    await expect_error(
        redeem(world.stub, "m-1", "mug", "r-3"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REWARD_ARCHIVED",
    )
