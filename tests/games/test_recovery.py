"""Exactly once, whatever fails, in one process: the ledger going away before the
draw, after it, and in the middle of a load of spins. (Real processes killed with
SIGKILL are tests/games/test_crash.py.)"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from loyalty.games.v1 import games_service_pb2 as pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.kit.clock import ManualClock
from services.ledger.server import LedgerSettings
from services.ledger.server import build_server as build_ledger
from tests.support import deadlines
from tests.support.errors import expect_error
from tests.support.games import (
    ALWAYS_PAYS,
    STANDARD_WHEEL,
    create_stocked_wheel,
    games_settings,
    numbered_seeds,
    plays_of,
    spin,
    start_games,
    wheel_config,
)
from tests.support.ledger import NEVER_SECONDS, balance, fund
from tools.suite import free_port

COST = 10
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class RestartableLedger:
    """A real ledger that can be stopped and started again on the same port and file."""

    def __init__(self, db_path: Path, clock: ManualClock) -> None:
        self.db_path = db_path
        self.clock = clock
        self.target = f"127.0.0.1:{free_port()}"
        self.host = None
        # The test's own reads wait for a restarted ledger (within their deadline).
        self.channel = deadlines.channel(self.target, wait_for_ready=True)
        self.stub = ledger_grpc.LedgerServiceStub(self.channel)

    async def start(self) -> None:
        settings = LedgerSettings(db_path=self.db_path, sweep_interval_seconds=NEVER_SECONDS)
        self.host = await build_ledger(settings, self.target, self.clock)
        await self.host.start()

    async def stop(self) -> None:
        await self.host.stop(None)
        self.host = None


@pytest.fixture
async def ledger_server(tmp_path):
    server = RestartableLedger(tmp_path / "ledger.db", ManualClock())
    await server.start()
    yield server
    if server.host is not None:
        await server.stop()
    await server.channel.close()


async def start_in_process(tmp_path, ledger_server, seeds=None, **settings_changes):
    settings = games_settings(
        tmp_path / "games.db",
        ledger_server.target,
        ledger_timeout_seconds=0.5,
        **settings_changes,
    )
    return await start_games(settings, ledger_server.clock, seeds or numbered_seeds())


async def test_a_paid_spin_with_the_ledger_down_fails_fast_and_draws_nothing(
    tmp_path, ledger_server
):
    games = await start_in_process(tmp_path, ledger_server)
    try:
        await create_stocked_wheel(games.stub, "w", STANDARD_WHEEL)
        await fund(ledger_server.stub, "m-1", 100)
        await ledger_server.stop()
        await expect_error(
            games.stub.Spin(pb.SpinRequest(wheel_id="w", member_id="m-1", request_id="r")),
            grpc.StatusCode.UNAVAILABLE,
            "LEDGER_UNAVAILABLE",
        )
        seed = await games.stub.GetSeedPair(pb.GetSeedPairRequest(member_id="m-1"))
        assert seed.seed_pair.nonce == 0
        assert await plays_of(games.stub, "m-1") == []
        await ledger_server.start()
        assert await balance(ledger_server.stub, "m-1") == 100
    finally:
        await games.stop()


async def test_a_drawn_spin_is_settled_exactly_once_after_a_restart(tmp_path, ledger_server):
    """The ledger is unreachable after the draw is recorded; the games service
    then stops (as if killed) and a new one on the same file settles the spin
    as it starts, before it serves, with no retry from the client."""
    seeds = numbered_seeds()
    games = await start_in_process(tmp_path, ledger_server, seeds)
    try:
        await create_stocked_wheel(games.stub, "w", ALWAYS_PAYS)
        await spin(games.stub, "w", "m-2", "r0")
        await ledger_server.stop()
        await expect_error(spin(games.stub, "w", "m-2", "r1"), grpc.StatusCode.UNAVAILABLE)
        plays = await plays_of(games.stub, "m-2")
        assert plays[-1].status == pb.PLAY_STATUS_PENDING
        await expect_error(
            games.stub.RotateSeed(pb.RotateSeedRequest(member_id="m-2")),
            grpc.StatusCode.FAILED_PRECONDITION,
            "SPIN_IN_PROGRESS",
        )
    finally:
        await games.stop()

    await ledger_server.start()
    games = await start_in_process(tmp_path, ledger_server, seeds, relay_interval_seconds=1)
    try:

        async def settled() -> bool:
            pair = await games.stub.GetSeedPair(pb.GetSeedPairRequest(member_id="m-2"))
            return pair.seed_pair.nonce == 2

        # Recovery at start settles it, or the relay once the ledger's channel is
        # up (one process shares its connection attempts); its backoff runs on the
        # manual clock.
        await deadlines.eventually(settled, between=lambda: ledger_server.clock.advance(1))
        assert await balance(ledger_server.stub, "m-2") == 40
        replay = await spin(games.stub, "w", "m-2", "r1")
        assert (replay.proof.nonce, replay.points_balance_after) == (1, 40)
        statuses = [p.status for p in await plays_of(games.stub, "m-2")]
        assert statuses.count(pb.PLAY_STATUS_SETTLED) == 2
        await games.stub.SetClientSeed(pb.SetClientSeedRequest(member_id="m-2", client_seed="x"))
    finally:
        await games.stop()


@dataclass
class Load:
    """Members spinning in turn, each retrying with the same request id until
    answered, and what the test needs to see of it."""

    games: object
    members: list[str]
    spins_each: int
    answered: int = 0
    in_flight: int = 0
    failed_in_flight: list[grpc.StatusCode] = field(default_factory=list)
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    async def spin_until_answered(self, member: str, request_id: str) -> pb.Spin:
        for _ in range(2_000):
            self.in_flight += 1
            try:
                return await spin(self.games.stub, "w", member, request_id)
            except grpc.aio.AioRpcError as error:
                if error.code() not in RETRYABLE:
                    raise
                self.failed_in_flight.append(error.code())
            finally:
                self.in_flight -= 1
            # A client's pause between two attempts (it places no fault).
            await asyncio.sleep(0.01)
        raise AssertionError(f"spin {member}/{request_id} never answered")

    async def member(self, member: str) -> None:
        for n in range(self.spins_each):
            await self.spin_until_answered(member, f"r{n}")
            self.answered += 1
            self.progress.set()

    async def answered_at_least(self, count: int) -> None:
        while self.answered < count:
            self.progress.clear()
            await self.progress.wait()


async def assert_charged_exactly_once(ledger_stub, games, members, spins_each, funded):
    assert await balance(ledger_stub, "games:revenue") == COST * len(members) * spins_each
    for member in members:
        plays = await plays_of(games.stub, member)
        won = sum(p.prize.points for p in plays if p.status == pb.PLAY_STATUS_SETTLED)
        assert await balance(ledger_stub, member) == funded - COST * spins_each + won
        pair = await games.stub.GetSeedPair(pb.GetSeedPairRequest(member_id=member))
        assert pair.seed_pair.nonce == spins_each


async def test_stopping_the_ledger_mid_load_charges_nothing_twice_and_loses_nothing(
    tmp_path, ledger_server
):
    games = await start_in_process(tmp_path, ledger_server)
    members = [f"load-{n}" for n in range(8)]
    spins_each = 6
    try:
        await create_stocked_wheel(
            games.stub, "w", wheel_config(*STANDARD_WHEEL.segments, spins_per_day=0)
        )
        for member in members:
            await fund(ledger_server.stub, member, 1_000)
        load = Load(games, members, spins_each)
        running = asyncio.gather(*(load.member(m) for m in members))
        # The fault goes in once a fifth of the spins are answered, while the rest
        # are being sent: every member spins in turn, so spins are in flight.
        await deadlines.within(load.answered_at_least(len(members) * spins_each // 5))
        assert load.in_flight > 0
        await ledger_server.stop()

        # Observable: some call in flight failed because of the outage.
        async def outage_seen() -> bool:
            return bool(load.failed_in_flight)

        await deadlines.eventually(outage_seen)
        await ledger_server.start()
        await deadlines.within(running)
        assert load.failed_in_flight, "the outage hit no spin in flight"
        await assert_charged_exactly_once(ledger_server.stub, games, members, spins_each, 1_000)
    finally:
        await games.stop()
