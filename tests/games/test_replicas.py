"""Issue 14 §3: two ledger replicas and two games replicas, real processes on one
PostgreSQL. Members spin at once through either games replica; one games replica
is SIGKILLed mid-load and what it left unanswered is sent again, the same, to the
other. Afterwards every spin is settled once, the ledger balances, and the
WatchPlays feed, followed the whole time on the surviving replica, is gapless."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from loyalty.games.v1 import games_service_pb2 as pb
from loyalty.games.v1 import games_service_pb2_grpc as pb_grpc
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from tests.games.test_crash import (
    PAID,
    UNLIMITED,
    Running,
    assert_ledger_matches_plays,
    unapplied,
)
from tests.support import deadlines
from tests.support.games import create_stocked_wheel, plays_of
from tests.support.ledger import all_transfers, check_invariants, every_account, fund
from tests.support.postgres import fresh_database
from tests.support.replicas import failing_over, kill_under_load, replica_suites

pytestmark = pytest.mark.slow

MEMBERS = [f"m-{n}" for n in range(12)]
SPINS_EACH = 6
FUNDED = 10_000
# A spin another replica left pending is settled by the survivor's relay after its grace.
PENDING = grpc.StatusCode.FAILED_PRECONDITION


async def follow(games, seen: list[int]) -> None:
    async for result in games.WatchPlays(pb.WatchPlaysRequest(after_sequence=0)):
        seen.append(result.sequence)


async def test_two_ledgers_and_two_games_on_one_postgres_one_games_killed(tmp_path, postgres):
    databases = {
        "ledger": fresh_database(tmp_path, "postgres", "ledger"),
        "games": fresh_database(tmp_path, "postgres", "games"),
    }
    async with replica_suites(tmp_path, databases) as suites:
        for suite in suites:
            await suite.start("ledger")
            await suite.start("games")
        channels = [grpc.aio.insecure_channel(suite.target("games")) for suite in suites]
        ledger_channel = deadlines.channel(suites[1].target("ledger"), wait_for_ready=True)
        replicas = [pb_grpc.GamesServiceStub(channel) for channel in channels]
        ledger = ledger_grpc.LedgerServiceStub(ledger_channel)
        seen: list[int] = []
        watcher = asyncio.create_task(follow(replicas[1], seen))
        try:
            await check_spins(suites, databases, replicas, ledger, seen)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            for channel in channels:
                await channel.close()
            await ledger_channel.close()


async def check_spins(suites, databases, replicas, ledger, seen: list[int]) -> None:
    await create_stocked_wheel(replicas[0], "w", UNLIMITED)
    for member in MEMBERS:
        await fund(ledger, member, FUNDED)
    answered: list[str] = []
    doubts: list[str] = []
    progress = asyncio.Event()

    async def member(n: int, name: str) -> None:
        for spin in range(SPINS_EACH):
            request = pb.SpinRequest(wheel_id="w", member_id=name, request_id=f"r-{spin}")
            await failing_over(
                lambda stub, request=request: stub.Spin(request, timeout=10),
                replicas,
                n + spin,
                doubts,
                wait_on={PENDING},
            )
            answered.append(request.request_id)
            progress.set()

    load = asyncio.gather(*(member(n, name) for n, name in enumerate(MEMBERS)))
    enough = len(MEMBERS) * SPINS_EACH // 3
    await kill_under_load(
        suites[0].running["games"], load, progress, lambda: len(answered) >= enough, 300
    )
    assert doubts, "the kill cut no call in flight"

    async def all_applied() -> bool:
        return not any([unapplied(await plays_of(replicas[1], m)) for m in MEMBERS])

    await deadlines.eventually(all_applied)
    running = Running(suites[1], databases["games"], ledger, replicas[1])
    await assert_ledger_matches_plays(running, MEMBERS, FUNDED)
    plays = [p for m in MEMBERS for p in await plays_of(replicas[1], m)]
    # Every request answered, each spin paid once: one settled play per spin.
    assert len([p for p in plays if p.status in PAID]) == len(MEMBERS) * SPINS_EACH
    state = await every_account(ledger, MEMBERS)
    check_invariants([message for message, _ in state.values()])
    # The ledger's change feed, written by both ledger replicas, is gapless too.
    transfers = len(all_transfers(state))
    feed = ledger.WatchTransfers(ledger_pb.WatchTransfersRequest(after_sequence=0))
    streamed = []
    async for item in feed:
        streamed.append(item.transfer.sequence)
        if len(streamed) == transfers:
            break
    feed.cancel()
    assert streamed == list(range(1, transfers + 1))
    results = len([p for p in plays if p.status != pb.PLAY_STATUS_PENDING])

    async def fed() -> bool:
        return len(seen) >= results

    await deadlines.eventually(fed)
    assert seen == list(range(1, len(seen) + 1))
