"""Exactly once, whatever fails: the ledger going away, the games service dying
between drawing and settling, and a real SIGKILL of the games process under load."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loyalty.games.v1 import games_service_pb2 as pb
from loyalty.games.v1 import games_service_pb2_grpc as pb_grpc
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.games.server import GamesSettings
from services.kit.clock import ManualClock
from services.kit.status import error_info
from services.ledger.server import LedgerSettings
from services.ledger.server import build_server as build_ledger
from tests.games.conftest import (
    STANDARD_WHEEL,
    create_stocked_wheel,
    points,
    start_games,
    wheel_config,
)

REPO = Path(__file__).parents[2]
COST = 10


class RestartableLedger:
    """A real ledger that can be stopped and started again on the same port and file."""

    def __init__(self, db_path: Path, clock: ManualClock) -> None:
        self.db_path = db_path
        self.clock = clock
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.host = None
        self.channel = grpc.aio.insecure_channel(self.target)
        self.stub = ledger_grpc.LedgerServiceStub(self.channel)

    async def start(self) -> None:
        settings = LedgerSettings(db_path=self.db_path, sweep_interval_seconds=3600)
        self.host = await build_ledger(settings, self.target, self.clock)
        await self.host.start()

    async def stop(self) -> None:
        await self.host.stop(None)
        self.host = None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
async def ledger_server(tmp_path):
    server = RestartableLedger(tmp_path / "ledger.db", ManualClock())
    await server.start()
    yield server
    if server.host is not None:
        await server.stop()
    await server.channel.close()


async def fund(ledger_stub, member: str, amount: int) -> None:
    from tests.games.conftest import fund as fund_with

    class Holder:
        stub = ledger_stub

    await fund_with(Holder, member, amount)


async def account_balance(ledger_stub, account_id: str) -> int:
    # wait_for_ready: after a restart the channel may still be in reconnect backoff.
    response = await ledger_stub.GetAccount(
        ledger_pb.GetAccountRequest(account_id=account_id), wait_for_ready=True, timeout=10
    )
    return response.account.balance.balance


async def start_in_process(tmp_path, ledger_server, seeds):
    settings = GamesSettings(
        db_path=tmp_path / "games.db",
        ledger_target=ledger_server.target,
        ledger_timeout_seconds=0.5,
        relay_interval_seconds=1,
    )
    host, channel = await start_games(settings, ledger_server, seeds)
    return host, channel, pb_grpc.GamesServiceStub(channel)


async def wait_for(predicate, attempts: int = 200):
    """Polls a condition (not a timing assertion): the relay runs on its own task."""
    for _ in range(attempts):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")


async def test_a_paid_spin_with_the_ledger_down_fails_fast_and_draws_nothing(
    tmp_path, ledger_server
):
    host, channel, games = await start_in_process(tmp_path, ledger_server, itertools.count(1))
    try:
        await create_stocked_wheel(games, "w", STANDARD_WHEEL)
        await fund(ledger_server.stub, "m-1", 100)
        await ledger_server.stop()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await games.Spin(pb.SpinRequest(wheel_id="w", member_id="m-1", request_id="r"))
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_info(raised.value).reason == "LEDGER_UNAVAILABLE"
        seed = await games.GetSeedPair(pb.GetSeedPairRequest(member_id="m-1"))
        assert seed.seed_pair.nonce == 0
        assert (await games.ListPlays(pb.ListPlaysRequest(member_id="m-1"))).plays == []
        await ledger_server.start()
        assert await account_balance(ledger_server.stub, "m-1") == 100
    finally:
        await channel.close()
        await host.stop(None)


async def test_a_drawn_spin_is_settled_exactly_once_after_a_restart(tmp_path, ledger_server):
    """The ledger is unreachable after the draw is recorded; the games service
    then stops (as if killed) and a new one on the same file settles the spin."""
    # Free, and every spin pays 20 points, so every spin needs the ledger.
    always_pays = wheel_config(
        pb.Segment(label="Try again", weight=0),
        pb.Segment(label="20 points", weight=1, prize=points(20)),
        cost_points=0,
    )
    seeds = itertools.count(1)
    host, channel, games = await start_in_process(tmp_path, ledger_server, seeds)
    try:
        await create_stocked_wheel(games, "w", always_pays)
        await games.Spin(pb.SpinRequest(wheel_id="w", member_id="m-2", request_id="r0"))
        await ledger_server.stop()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await games.Spin(pb.SpinRequest(wheel_id="w", member_id="m-2", request_id="r1"))
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        plays = (await games.ListPlays(pb.ListPlaysRequest(member_id="m-2"))).plays
        assert plays[-1].status == pb.PLAY_STATUS_PENDING
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await games.RotateSeed(pb.RotateSeedRequest(member_id="m-2"))
        assert error_info(raised.value).reason == "SPIN_IN_PROGRESS"
    finally:
        await channel.close()
        await host.stop(None)

    await ledger_server.start()
    host, channel, games = await start_in_process(tmp_path, ledger_server, seeds)
    try:

        async def settled() -> bool:
            # The relay retries once per second of the manual clock.
            ledger_server.clock.advance(1)
            pair = await games.GetSeedPair(pb.GetSeedPairRequest(member_id="m-2"))
            return pair.seed_pair.nonce == 2

        await wait_for(settled)
        replay = (
            await games.Spin(pb.SpinRequest(wheel_id="w", member_id="m-2", request_id="r1"))
        ).spin
        assert replay.proof.nonce == 1
        assert replay.points_balance_after == 40
        assert await account_balance(ledger_server.stub, "m-2") == 40
        statuses = [
            p.status for p in (await games.ListPlays(pb.ListPlaysRequest(member_id="m-2"))).plays
        ]
        assert statuses.count(pb.PLAY_STATUS_SETTLED) == 2
    finally:
        await channel.close()
        await host.stop(None)


async def spin_until_done(games, member: str, request_id: str) -> pb.Spin | None:
    """A client that retries with the same request id until it gets an answer."""
    for _ in range(400):
        try:
            response = await games.Spin(
                pb.SpinRequest(wheel_id="w", member_id=member, request_id=request_id), timeout=5
            )
            return response.spin
        except grpc.aio.AioRpcError as error:
            if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            await asyncio.sleep(0.05)
    raise AssertionError(f"spin {member}/{request_id} never answered")


async def spin_in_turn(games, member: str, spins: int) -> None:
    for n in range(spins):
        await spin_until_done(games, member, f"r{n}")


async def assert_charged_exactly_once(ledger_stub, games, members, spins_each, funded):
    revenue = await account_balance(ledger_stub, "games:revenue")
    assert revenue == COST * len(members) * spins_each
    for member in members:
        plays = (await games.ListPlays(pb.ListPlaysRequest(member_id=member, page_size=500))).plays
        won = sum(p.prize.points for p in plays if p.status == pb.PLAY_STATUS_SETTLED)
        assert await account_balance(ledger_stub, member) == funded - COST * spins_each + won
        pair = await games.GetSeedPair(pb.GetSeedPairRequest(member_id=member))
        assert pair.seed_pair.nonce == spins_each


async def test_stopping_the_ledger_mid_load_charges_nothing_twice_and_loses_nothing(
    tmp_path, ledger_server
):
    host, channel, games = await start_in_process(tmp_path, ledger_server, itertools.count(1))
    members = [f"load-{n}" for n in range(8)]
    spins_each = 6
    try:
        await create_stocked_wheel(
            games, "w", wheel_config(*STANDARD_WHEEL.segments, spins_per_day=0)
        )
        for member in members:
            await fund(ledger_server.stub, member, 1_000)

        load = asyncio.gather(*(spin_in_turn(games, m, spins_each) for m in members))
        await asyncio.sleep(0.15)
        await ledger_server.stop()
        await asyncio.sleep(0.3)
        await ledger_server.start()
        await load
        await assert_charged_exactly_once(ledger_server.stub, games, members, spins_each, 1_000)
    finally:
        await channel.close()
        await host.stop(None)


@pytest.mark.slow
async def test_killing_the_games_process_under_load_settles_every_spin_once(
    tmp_path, ledger_server
):
    port = free_port()
    env = {
        **os.environ,
        "GAMES_DB": str(tmp_path / "games.db"),
        "GAMES_LISTEN": f"127.0.0.1:{port}",
        "GAMES_LEDGER_TARGET": ledger_server.target,
        "GAMES_RELAY_INTERVAL_SECONDS": "0.2",
        "LOG_LEVEL": "warning",
    }

    def launch() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "services.games"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def serving(channel) -> bool:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=0.5
            )
        except grpc.aio.AioRpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    members = [f"kill-{n}" for n in range(6)]
    spins_each = 8
    process = launch()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    games = pb_grpc.GamesServiceStub(channel)
    try:
        await wait_for(lambda: serving(channel))
        await create_stocked_wheel(
            games, "w", wheel_config(*STANDARD_WHEEL.segments, spins_per_day=0)
        )
        for member in members:
            await fund(ledger_server.stub, member, 1_000)

        load = asyncio.gather(*(spin_in_turn(games, m, spins_each) for m in members))

        async def some_spins_done() -> bool:
            try:
                return await account_balance(ledger_server.stub, "games:revenue") >= COST * 10
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND  # not opened yet
                return False

        await wait_for(some_spins_done)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        process = launch()
        await load
        await assert_charged_exactly_once(ledger_server.stub, games, members, spins_each, 1_000)
    finally:
        await channel.close()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
