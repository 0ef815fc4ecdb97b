"""Twenty members race for the last unit through two rewards replicas on one
database (a SQLite file, a PostgreSQL schema): exactly one gets it, the ledger
agrees. And two stores racing to claim the last code in their units: one wins."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from loyalty.rewards.v1 import rewards_service_pb2 as pb

from services.kit.status import error_info
from services.rewards.domain.catalog import Reward, RewardKind, RewardSpec
from services.rewards.server import rewards_store
from tests.support.ledger import check_invariants, snapshot
from tests.support.rewards import TIMEOUT, create_reward, import_codes, redeem, spec, start_rewards

RACERS = 20
PRICE = 100


@pytest.fixture
async def second(world, rewards_db):
    """Another rewards replica on the world's database, beside the same ledger."""
    host, channel, stub = await start_rewards(
        world.path, world.clock, world.ledger_target, world.directory_target, db_path=rewards_db
    )
    yield stub
    await channel.close()
    await host.stop(None)


async def race(world, second, reward_id: str) -> tuple[list, list]:
    members = [f"m-{n:02d}" for n in range(RACERS)]
    for member in members:
        await world.fund(member, 500)
    replicas = (world.stub, second)
    attempts = await asyncio.gather(
        *(
            redeem(replicas[n % 2], member, reward_id, "last-one")
            for n, member in enumerate(members)
        ),
        return_exceptions=True,
    )
    won = [a for a in attempts if isinstance(a, pb.Redemption)]
    lost = [a for a in attempts if isinstance(a, grpc.aio.AioRpcError)]
    assert len(won) + len(lost) == RACERS, attempts
    return won, lost


async def check_books(world, reward_id: str, winner: str) -> None:
    members = [f"m-{n:02d}" for n in range(RACERS)]
    for member in members:
        expected = 500 - PRICE if member == winner else 500
        assert await world.points(member) == expected, member
        assert await world.available(member) == expected, member
    state = await snapshot(
        world.ledger,
        [
            *members,
            "program:issuance",
            "rewards:redeemed",
            f"reward:{reward_id}:stock",
            f"reward:{reward_id}:issued",
            f"prize-issuance:prize:reward-{reward_id}",
        ],
    )
    assert state["rewards:redeemed"][0].balance.balance == PRICE
    assert state[f"reward:{reward_id}:issued"][0].balance.balance == 1
    check_invariants([account for account, _ in state.values()])


async def test_the_last_unit_of_stock_goes_to_exactly_one(world, second) -> None:
    await create_reward(world.stub, "mug", spec("Mug", pb.REWARD_KIND_PHYSICAL, PRICE), stock=1)

    won, lost = await race(world, second, "mug")

    assert len(won) == 1 and won[0].state == pb.REDEMPTION_STATE_AWAITING_FULFILMENT
    assert {error.code() for error in lost} == {grpc.StatusCode.FAILED_PRECONDITION}
    assert {error_info(error).reason for error in lost} == {"OUT_OF_STOCK"}
    assert await world.available("reward:mug:stock") == 0
    await check_books(world, "mug", won[0].member_id)


async def test_the_last_code_goes_to_exactly_one(world, second) -> None:
    # More stock than codes: the holds all succeed, the code assignment decides.
    await create_reward(world.stub, "coffee", spec(price=PRICE), stock=100)
    await import_codes(world.stub, "coffee", ["LAST-CODE"])

    won, lost = await race(world, second, "coffee")

    assert len(won) == 1 and won[0].code == "LAST-CODE"
    assert {error.code() for error in lost} == {grpc.StatusCode.FAILED_PRECONDITION}
    assert {error_info(error).reason for error in lost} == {"CODES_EXHAUSTED"}
    assert await world.available("reward:coffee:stock") == 99
    await check_books(world, "coffee", won[0].member_id)
    report = await world.stub.GetRewardReport(
        pb.GetRewardReportRequest(reward_id="coffee"), timeout=TIMEOUT
    )
    assert (report.report.redemptions, report.report.codes_left) == (1, 0)
    assert report.report.codes_low


async def test_two_stores_claiming_the_last_code_at_once_hand_it_to_one(rewards_db) -> None:
    stores = [rewards_store(rewards_db), rewards_store(rewards_db)]
    for store in stores:
        await store.open()
    try:
        reward = Reward("tea", 1, RewardSpec(title="Tea", kind=RewardKind.CODE_POOL, price=1), 1, 1)
        await stores[0].write(lambda unit: unit.insert_reward(reward))
        await stores[0].write(lambda unit: unit.add_codes("tea", "i-1", [(1, "LAST-TEA")]))
        claims = await asyncio.gather(
            *(
                stores[n % 2].write(lambda unit, n=n: unit.assign_code("tea", f"rd-{n}"))
                for n in range(RACERS)
            )
        )
        assert sorted(claims, key=str) == ["LAST-TEA"] + [None] * (RACERS - 1)
        counts = await stores[1].read(lambda unit: unit.code_counts("tea"))
        assert (counts.free, counts.assigned) == (0, 1)
    finally:
        for store in stores:
            await store.close()
