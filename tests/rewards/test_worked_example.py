"""The worked example of docs/rewards.md, call for call: the table in the guide is
the one these calls produce. If this fails, the guide is wrong."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
from loyalty.rewards.v1 import rewards_service_pb2 as pb

from services.kit.status import error_info
from tests.support.rewards import HOUR_US, START_US, TIMEOUT, at, create_reward, import_codes, spec

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "rewards.md"
PARIS = "Europe/Paris"
# The ManualClock starts on Thursday 1 January 2026, 01:00 in Paris.
LAUNCH_US = START_US + 9 * HOUR_US  # 10:00 in Paris
GOLD_US = START_US + 7 * HOUR_US  # 08:00 in Paris


def guide_table() -> list[list[str]]:
    text = GUIDE.read_text()
    block = text[
        text.index("<!-- worked-example:start -->") : text.index("<!-- worked-example:end -->")
    ]
    rows = [line for line in block.splitlines() if line.startswith("|")][2:]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


async def test_the_guides_worked_example(world) -> None:
    stub = world.stub
    coffee = spec(
        "Free coffee", pb.REWARD_KIND_CODE_POOL, 150, time_zone=PARIS,
        limits=pb.Limits(per_day=1),
    )  # fmt: skip
    await create_reward(stub, "free-coffee", coffee, stock=2)
    await import_codes(stub, "free-coffee", ["code", "COFFEE-0001", "COFFEE-0002", "COFFEE-0003"])
    gold_first = [pb.EarlyAccess(tier="gold", start_time=at(GOLD_US))]
    mug = spec(
        "Launch mug", pb.REWARD_KIND_PHYSICAL, 400, time_zone=PARIS,
        start_time=at(LAUNCH_US), early_access=gold_first,
    )  # fmt: skip
    await create_reward(stub, "launch-mug", mug, stock=1)
    world.directory.set("alice", tier="gold", time_zone=PARIS)
    world.directory.set("bob", tier="silver", time_zone=PARIS)
    await world.fund("alice", 600)
    await world.fund("bob", 300)

    rows: list[list[str]] = []
    redemptions: dict[str, str] = {}

    def paris(moment_us: int) -> str:
        hours = (moment_us - START_US) // HOUR_US + 1
        day = 1 + hours // 24
        return f"{day} Jan {hours % 24:02d}:00"

    async def step(member: str, what: str, call, key: str = "") -> None:
        try:
            redemption = (await call).redemption
        except grpc.aio.AioRpcError as error:
            outcome = f"{error.code().name} `{error_info(error).reason}`"
        else:
            state = pb.RedemptionState.Name(redemption.state).removeprefix("REDEMPTION_STATE_")
            outcome = state + (f", code `{redemption.code}`" if redemption.code else "")
            if key:
                redemptions[key] = redemption.redemption_id
        balance = await world.available(member)
        rows.append([paris(world.clock.now_us()), member, what, outcome, str(balance)])

    def redeem(member: str, reward_id: str, request_id: str):
        request = pb.RedeemRequest(member_id=member, reward_id=reward_id, request_id=request_id)
        return stub.Redeem(request, timeout=TIMEOUT)

    world.clock.set(GOLD_US)
    await step("alice", "redeem free-coffee", redeem("alice", "free-coffee", "a-1"), "alice-coffee")
    await step("alice", "redeem free-coffee again", redeem("alice", "free-coffee", "a-2"))
    await step("alice", "redeem launch-mug", redeem("alice", "launch-mug", "a-3"))
    await step("bob", "redeem launch-mug", redeem("bob", "launch-mug", "b-1"))
    world.clock.set(LAUNCH_US)
    await step("bob", "redeem launch-mug", redeem("bob", "launch-mug", "b-2"))
    await step("bob", "redeem free-coffee", redeem("bob", "free-coffee", "b-3"))
    await step("bob", "the same request again", redeem("bob", "free-coffee", "b-3"))
    refund = pb.RefundRedemptionRequest(
        redemption_id=redemptions["alice-coffee"], reason="machine broken"
    )
    await step("alice", "refund of her coffee", stub.RefundRedemption(refund, timeout=TIMEOUT))
    world.clock.set(START_US + 23 * HOUR_US)  # midnight in Paris
    await step("alice", "redeem free-coffee", redeem("alice", "free-coffee", "a-4"))

    assert rows == guide_table(), "\n".join("| " + " | ".join(row) + " |" for row in rows)
    report = await stub.GetRewardReport(
        pb.GetRewardReportRequest(reward_id="free-coffee"), timeout=TIMEOUT
    )
    assert (report.report.stock_left, report.report.codes_left, report.report.codes_low) == (
        0,
        1,
        False,
    )
    assert re.search(r"`codes_low: false`, `stock_left: 0`", GUIDE.read_text())
