"""Every RPC refuses bad input with INVALID_ARGUMENT naming the field, changes
nothing, and echoes no long value; a malformed CSV is reported line by line."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import timestamp_pb2
from loyalty.rewards.v1 import rewards_service_pb2 as pb

from services.kit.status import field_violations
from tests.support.errors import expect_error
from tests.support.rewards import TIMEOUT, create_reward, import_codes, spec

LONG = "x" * 5000
FAR = timestamp_pb2.Timestamp(seconds=10**12)

CASES = [
    ("CreateReward", pb.CreateRewardRequest(reward_id="Bad Id", spec=spec()), "reward_id"),
    ("CreateReward", pb.CreateRewardRequest(reward_id="r", spec=spec(title="")), "spec.title"),
    (
        "CreateReward",
        pb.CreateRewardRequest(reward_id="r", spec=spec(time_zone="Mars/" + LONG)),
        "spec.time_zone",
    ),
    (
        "CreateReward",
        pb.CreateRewardRequest(reward_id="r", spec=spec(start_time=FAR)),
        "spec.start_time",
    ),
    ("CreateReward", pb.CreateRewardRequest(reward_id="r", spec=spec(kind=99)), "spec.kind"),
    ("UpdateReward", pb.UpdateRewardRequest(reward_id=LONG, spec=spec()), "reward_id"),
    (
        "UpdateReward",
        pb.UpdateRewardRequest(reward_id="coffee", spec=spec(), expected_version=-1),
        "expected_version",
    ),
    ("ArchiveReward", pb.ArchiveRewardRequest(reward_id=""), "reward_id"),
    ("GetReward", pb.GetRewardRequest(reward_id="a/b"), "reward_id"),
    ("ListRewards", pb.ListRewardsRequest(page_size=-1), "page_size"),
    ("ListRewards", pb.ListRewardsRequest(page_token="forged"), "page_token"),
    ("StockReward", pb.StockRewardRequest(reward_id="coffee", request_id="s"), "quantity"),
    ("StockReward", pb.StockRewardRequest(reward_id="coffee", quantity=1), "request_id"),
    (
        "ImportCodes",
        pb.ImportCodesRequest(reward_id="coffee", import_id="i", first_line=0),
        "first_line",
    ),
    (
        "ImportCodes",
        pb.ImportCodesRequest(reward_id="coffee", import_id="i", first_line=1, lines=["A"] * 5001),
        "lines",
    ),
    ("GenerateCodes", pb.GenerateCodesRequest(reward_id="coffee", request_id="g"), "count"),
    (
        "GenerateCodes",
        pb.GenerateCodesRequest(reward_id="coffee", request_id="g", count=1, length=3),
        "length",
    ),
    ("ListCatalog", pb.ListCatalogRequest(member_id="a:b"), "member_id"),
    ("ListCatalog", pb.ListCatalogRequest(member_id="m-1", category=LONG), "category"),
    ("Redeem", pb.RedeemRequest(member_id="m-1", reward_id="coffee"), "request_id"),
    (
        "Redeem",
        pb.RedeemRequest(member_id="m-1", reward_id="coffee", request_id="r", quantity=101),
        "quantity",
    ),
    (
        "ClaimPrize",
        pb.ClaimPrizeRequest(member_id="m-1", prize_unit="points", request_id="c"),
        "prize_unit",
    ),
    (
        "GetRedemption",
        pb.GetRedemptionRequest(member_id="m-1", redemption_id=LONG),
        "redemption_id",
    ),
    ("ListMyRedemptions", pb.ListMyRedemptionsRequest(member_id=""), "member_id"),
    ("ListRedemptions", pb.ListRedemptionsRequest(reward_id="UPPER"), "reward_id"),
    ("FulfilRedemption", pb.FulfilRedemptionRequest(redemption_id="rd-1", note=LONG), "note"),
    ("CancelRedemption", pb.CancelRedemptionRequest(redemption_id=""), "redemption_id"),
    (
        "RefundRedemption",
        pb.RefundRedemptionRequest(redemption_id="rd-1", reason="\x00"),
        "reason",
    ),
    (
        "SetPreferences",
        pb.SetPreferencesRequest(
            member_id="m-1",
            preferences=pb.Preferences(choices=[pb.Preference(key="Drinks!", values=["tea"])]),
        ),
        "preferences.choices[0].key",
    ),
    ("GetPreferences", pb.GetPreferencesRequest(member_id=LONG), "member_id"),
    (
        "UpsertOffer",
        pb.UpsertOfferRequest(offer_id="o", spec=pb.OfferSpec(title="x")),
        "spec.reward_id",
    ),
    (
        "UpsertOffer",
        pb.UpsertOfferRequest(
            offer_id="o", spec=pb.OfferSpec(title="x", bonus_points=1, weight=5000)
        ),
        "spec.weight",
    ),
    ("ArchiveOffer", pb.ArchiveOfferRequest(offer_id="O O"), "offer_id"),
    ("ListOffers", pb.ListOffersRequest(page_size=-5), "page_size"),
    ("GetMyOffer", pb.GetMyOfferRequest(member_id="m-1", visit_id=""), "visit_id"),
    ("AcceptOffer", pb.AcceptOfferRequest(member_id="m/1", visit_id="v"), "member_id"),
    ("GetRewardReport", pb.GetRewardReportRequest(reward_id=LONG), "reward_id"),
    (
        "GetProgramReport",
        pb.GetProgramReportRequest(
            start_time=timestamp_pb2.Timestamp(seconds=100),
            end_time=timestamp_pb2.Timestamp(seconds=50),
        ),
        "end_time",
    ),
    ("GetProgramReport", pb.GetProgramReportRequest(end_time=FAR), "end_time"),
]


def test_the_table_covers_every_rpc() -> None:
    methods = {method.name for method in pb.DESCRIPTOR.services_by_name["RewardsService"].methods}
    assert {method for method, _, _ in CASES} == methods


@pytest.mark.parametrize(("method", "request_message", "field"), CASES, ids=lambda v: str(v)[:40])
async def test_bad_input_is_invalid_argument_naming_the_field(
    world, method: str, request_message, field: str
) -> None:
    await create_reward(world.stub, "coffee", spec(), stock=1)
    refusal = await expect_error(
        getattr(world.stub, method)(request_message, timeout=TIMEOUT),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert field in field_violations(refusal), field_violations(refusal)
    assert len(refusal.details()) < 1200
    reward = await world.stub.GetReward(pb.GetRewardRequest(reward_id="coffee"), timeout=TIMEOUT)
    assert reward.reward.version == 1
    assert await world.available("reward:coffee:stock") == 1


async def test_a_malformed_csv_is_reported_line_by_line_and_the_good_lines_go_in(world) -> None:
    await create_reward(world.stub, "coffee", spec(), stock=10)
    lines = ["code", "GOOD-1", '"UNCLOSED', "", ",no-first-column", "HAS SPACE", "GOOD-1", "G-2"]

    answer = await import_codes(world.stub, "coffee", lines)

    assert answer.added == 2 and answer.codes_free == 2
    assert [(p.line, p.reason) for p in answer.problems] == [
        (3, "MALFORMED"),
        (5, "MALFORMED"),
        (6, "MALFORMED"),
        (7, "DUPLICATE_IN_FILE"),
    ]
    assert answer.problems[3].first_seen_line == 2
    assert "CSV" in answer.problems[0].detail
    assert all("GOOD" not in p.detail and "SPACE" not in p.detail for p in answer.problems)


async def test_codes_go_only_to_code_pool_rewards(world) -> None:
    await create_reward(world.stub, "mug", spec("Mug", pb.REWARD_KIND_PHYSICAL), stock=1)
    await expect_error(
        import_codes(world.stub, "mug", ["A-1"]),
        grpc.StatusCode.FAILED_PRECONDITION,
        "NOT_A_CODE_POOL",
    )
    await expect_error(
        import_codes(world.stub, "nothing", ["A-1"]), grpc.StatusCode.NOT_FOUND, "REWARD_NOT_FOUND"
    )
