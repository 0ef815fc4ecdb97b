"""A real games process killed with SIGKILL: at the instant after the ledger answered
and before games applied the answer (through a test harness), and at random moments
under load (from the outside, no harness). Nothing is charged or awarded twice, no
play is left unapplied, and no member is left blocked, with no client retry."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import grpc
import pytest
from loyalty.games.v1 import games_service_pb2 as pb
from loyalty.games.v1 import games_service_pb2_grpc as pb_grpc
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.kit.ids import GAMES_REVENUE_ACCOUNT
from tests.support import deadlines
from tests.support.errors import expect_error
from tests.support.games import STANDARD_WHEEL, create_stocked_wheel, plays_of, wheel_config
from tests.support.ledger import balance, fund, history
from tests.support.postgres import stored_rows
from tools.suite import Suite

pytestmark = pytest.mark.slow

COST = 10
UNLIMITED = wheel_config(*STANDARD_WHEEL.segments, spins_per_day=0)
CHARGES = (ledger_pb.TRANSFER_CODE_GAME_COST, ledger_pb.TRANSFER_CODE_GAME_PRIZE)
PAID = (pb.PLAY_STATUS_SETTLED, pb.PLAY_STATUS_FALLBACK)


@dataclass
class Running:
    suite: Suite
    games_db: str
    ledger: ledger_grpc.LedgerServiceStub
    games: pb_grpc.GamesServiceStub


@pytest.fixture
async def running(tmp_path, ledger_db, games_db):
    suite = Suite(
        tmp_path / "data",
        env={"LOG_LEVEL": "warning"},
        log_dir=tmp_path / "logs",
        databases={"ledger": ledger_db, "games": games_db},
    )
    await suite.start("ledger")
    async with (
        deadlines.channel(suite.target("ledger"), wait_for_ready=True) as ledger_channel,
        deadlines.channel(suite.target("games")) as games_channel,
    ):
        try:
            yield Running(
                suite,
                games_db,
                ledger_grpc.LedgerServiceStub(ledger_channel),
                pb_grpc.GamesServiceStub(games_channel),
            )
        finally:
            await suite.stop_all()


def spins_in_games_db(games_db: str) -> dict[str, str]:
    """The spins games recorded, by id, as its database says while it is down."""
    return dict(stored_rows(games_db, "SELECT spin_id, status FROM spins"))


async def charges_of(ledger, members: list[str]) -> dict[str, ledger_pb.Transfer]:
    """Every cost and prize transfer the ledger committed for these members."""
    found = {}
    for account in [GAMES_REVENUE_ACCOUNT, *members, *(f"{m}/prize:free-coffee" for m in members)]:
        try:
            entries = await history(ledger, account, page_size=1000)
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND
            continue
        for entry in entries:
            if entry.transfer.code in CHARGES:
                found[entry.transfer.id] = entry.transfer
    return found


def unapplied(plays: list[pb.Play]) -> set[str]:
    """Plays with a pending entry and nothing after it."""
    pending = {p.play_id for p in plays if p.status == pb.PLAY_STATUS_PENDING}
    return pending - {p.play_id for p in plays if p.status != pb.PLAY_STATUS_PENDING}


async def assert_ledger_matches_plays(running: Running, members: list[str], funded: int):
    """Every point the ledger charged or awarded belongs to exactly one applied play,
    and every applied play's transfers are in the ledger."""
    charged = await charges_of(running.ledger, members)
    applied: dict[str, str] = {}
    for member in members:
        plays = await plays_of(running.games, member)
        assert not unapplied(plays), f"{member} has plays never applied"
        for play in plays:
            if play.status in PAID:
                for transfer_id in play.transfer_ids:
                    assert transfer_id not in applied, f"{transfer_id} applied twice"
                    applied[transfer_id] = play.play_id
        costs = sum(t.amount for t in charged.values() if t.debit_account_id == member)
        prizes = sum(
            t.amount
            for t in charged.values()
            if t.credit_account_id == member and t.code == ledger_pb.TRANSFER_CODE_GAME_PRIZE
        )
        assert costs == COST * sum(p.status in PAID for p in plays)
        assert await balance(running.ledger, member) == funded - costs + prizes
    assert set(charged) == set(applied)


async def assert_not_blocked(games, member: str, request_id: str) -> None:
    await games.Spin(pb.SpinRequest(wheel_id="w", member_id=member, request_id=request_id))
    await games.SetClientSeed(pb.SetClientSeedRequest(member_id=member, client_seed="after"))


async def test_killed_between_the_ledgers_answer_and_the_apply_the_restart_applies_it(running):
    suite = running.suite
    harness = await suite.start("games", module="tests.games.crash_harness")
    await create_stocked_wheel(running.games, "w", UNLIMITED)
    await fund(running.ledger, "m-1", 100)

    # The harness dies inside the call: the client gets no answer and never asks again.
    await expect_error(
        running.games.Spin(pb.SpinRequest(wheel_id="w", member_id="m-1", request_id="r-1")),
        grpc.StatusCode.UNAVAILABLE,
    )
    assert await deadlines.within(harness.process.wait()) == -9
    # The ledger committed the spin's chain; games had recorded it and applied nothing.
    assert await balance(running.ledger, GAMES_REVENUE_ACCOUNT) == COST
    assert list(spins_in_games_db(running.games_db).values()) == ["pending"]

    await suite.start("games")  # the real service, on the same files
    plays = await plays_of(running.games, "m-1")
    assert [p.status for p in plays][-1] in PAID
    pair = await running.games.GetSeedPair(pb.GetSeedPairRequest(member_id="m-1"))
    assert pair.seed_pair.nonce == 1
    await running.games.SetClientSeed(pb.SetClientSeedRequest(member_id="m-1", client_seed="c"))
    assert await balance(running.ledger, GAMES_REVENUE_ACCOUNT) == COST
    await assert_ledger_matches_plays(running, ["m-1"], 100)
    await assert_not_blocked(running.games, "m-1", "r-2")


@dataclass
class Crowd:
    """Members spinning at once, each call made once and never retried: after a
    failure a member waits until games is serving again, then spins anew."""

    games: pb_grpc.GamesServiceStub
    members: list[str]
    spins_each: int
    serving: asyncio.Event = field(default_factory=asyncio.Event)
    answered: int = 0
    in_flight: int = 0
    failed: int = 0
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    async def member(self, member: str) -> None:
        for n in range(self.spins_each):
            await self.serving.wait()
            self.in_flight += 1
            try:
                await spin_once(self.games, member, f"r-{n}")
                self.answered += 1
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    continue  # refused (SPIN_IN_PROGRESS after a restart): a fresh spin next
                self.failed += 1
            finally:
                self.in_flight -= 1
                self.progress.set()

    async def answered_at_least(self, count: int) -> None:
        while self.answered < count:
            self.progress.clear()
            await self.progress.wait()


async def spin_once(games, member: str, request_id: str) -> None:
    await games.Spin(pb.SpinRequest(wheel_id="w", member_id=member, request_id=request_id))


async def test_sigkill_at_random_moments_under_load_charges_once_and_blocks_no_one(running):
    suite = running.suite
    await suite.start("games")
    await create_stocked_wheel(running.games, "w", UNLIMITED)
    members = [f"crowd-{n}" for n in range(16)]
    for member in members:
        await fund(running.ledger, member, 10_000)
    crowd = Crowd(running.games, members, spins_each=25)
    crowd.serving.set()
    load = asyncio.gather(*(crowd.member(m) for m in members))
    moments = random.Random(8).sample(range(20, 60), 3)
    for moment in moments:
        # A moment is a number of answered spins since the last restart: an event
        # the test can see, drawn at random from a fixed seed.
        await deadlines.within(crowd.answered_at_least(crowd.answered + moment))
        failed_before, in_flight = crowd.failed, crowd.in_flight
        crowd.serving.clear()
        await suite.running["games"].kill()
        assert in_flight > 0, "the kill found no spin in flight"
        await suite.start("games")
        assert crowd.failed > failed_before, "the kill cut no call in flight"
        crowd.serving.set()
    await deadlines.within(load, 120)
    assert crowd.answered > 0

    async def all_applied() -> bool:
        return not any([unapplied(await plays_of(running.games, m)) for m in members])

    # The restarted service settles what the kills left by itself (recovery at start).
    await deadlines.eventually(all_applied)
    await assert_ledger_matches_plays(running, members, 10_000)
    for member in members:
        await assert_not_blocked(running.games, member, "after")
