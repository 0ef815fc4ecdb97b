"""Kill the campaigns process where it hurts and restart it on the same database:
nothing the ledger awarded is left unapplied, nothing is applied twice, and no
client retries for it. Real processes (tools.suite), real ledger, real clock."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as pb_grpc
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.kit.clock import SystemClock
from tests.support import deadlines
from tests.support.campaigns import fixed, launch, program, purchase, track
from tests.support.errors import expect_error
from tests.support.ledger import balance, history
from tests.support.postgres import fresh_database
from tests.support.replicas import failing_over, kill_under_load, replica_suites
from tools.suite import Suite

HARNESS = "tests.campaigns.crash_harness"
EXIT_SECONDS = 20
CALL_SECONDS = 20
LOAD_SECONDS = 120
SEED = 20_261_201
MEMBERS = 16
PER_MEMBER = 30
KILLS = 3
# The two-replica test's bonus budget: 5 points a purchase, spent before the load ends.
BUDGET = 5 * MEMBERS * PER_MEMBER // 2


@pytest.fixture
def databases(ledger_db: str, campaigns_db: str) -> dict[str, str]:
    """Where the processes keep their data: files, or schemas on the test server."""
    return {"ledger": ledger_db, "campaigns": campaigns_db}


@dataclass
class Clients:
    suite: Suite
    campaigns: pb_grpc.CampaignsServiceStub
    ledger: ledger_grpc.LedgerServiceStub


@contextlib.asynccontextmanager
async def real_processes(
    tmp_path, databases: dict[str, str], campaigns_module: str | None = None
) -> AsyncIterator[Clients]:
    """A ledger and a campaigns process (or a harness in its place) over `databases`
    (each one's db setting), stubs with deadlines."""
    suite = Suite(
        tmp_path / "data",
        env={"LOG_LEVEL": "warning"},
        log_dir=tmp_path / "logs",
        databases=databases,
    )
    try:
        await suite.start("ledger")
        await suite.start("campaigns", module=campaigns_module)
        async with (
            deadlines.channel(suite.target("campaigns"), CALL_SECONDS) as campaigns,
            deadlines.channel(suite.target("ledger"), CALL_SECONDS) as ledger,
        ):
            yield Clients(
                suite,
                pb_grpc.CampaignsServiceStub(campaigns),
                ledger_grpc.LedgerServiceStub(ledger),
            )
    finally:
        await suite.stop_all()


async def stats_of(stub, campaign_id: str) -> pb.CampaignStats:
    request = pb.GetCampaignStatsRequest(campaign_id=campaign_id)
    return (await stub.GetCampaignStats(request, wait_for_ready=True)).stats


@pytest.mark.slow
async def test_killed_after_the_ledger_answered_the_award_is_applied_at_restart(
    tmp_path, databases
):
    async with real_processes(tmp_path, databases, HARNESS) as clients:
        stub, ledger, suite = clients.campaigns, clients.ledger, clients.suite
        await program(stub)
        await launch(stub, "bonus", fixed(10))
        harness = suite.running["campaigns"].process
        order = purchase("a-1", 1234, SystemClock().now_us())
        # The harness dies applying the ledger's answer: the call never gets one.
        await expect_error(track(stub, order), grpc.StatusCode.UNAVAILABLE)
        assert await asyncio.wait_for(harness.wait(), EXIT_SECONDS) == -signal.SIGKILL
        # The ledger committed the award; nothing local did.
        assert await balance(ledger, "m-1") == 12 + 10

        # The real service on the same files; serving means recovery is done.
        await suite.start("campaigns")
        bonus, base = await stats_of(stub, "bonus"), await stats_of(stub, "base")
        assert (bonus.points_awarded, base.points_awarded) == (10, 12)
        assert bonus.reconciled and base.reconciled
        entries = await history(ledger, "m-1")
        assert sorted(entry.transfer.id for entry in entries) == [
            "activity:a-1:base",
            "activity:a-1:bonus:bonus",
        ]
        # Asked again only now, the activity answers as settled, from the first decision.
        again = await track(stub, order)
        assert again.replayed and again.breakdown.balance == 22
        assert await balance(ledger, "m-1") == 22


@dataclass
class Load:
    """Members reporting activities concurrently, each call once: a call that
    fails is never sent again."""

    stub: pb_grpc.CampaignsServiceStub
    serving: asyncio.Event = field(default_factory=asyncio.Event)
    progress: asyncio.Condition = field(default_factory=asyncio.Condition)
    in_flight: int = 0
    acknowledged: dict[str, pb.Breakdown] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    async def member(self, member_id: str) -> None:
        clock = SystemClock()
        for n in range(PER_MEMBER):
            await asyncio.wait_for(self.serving.wait(), LOAD_SECONDS)
            activity_id = f"{member_id}-{n}"
            request = pb.TrackActivityRequest(
                activity=purchase(activity_id, 100 * (n % 7 + 1), clock.now_us(), member_id)
            )
            self.in_flight += 1
            try:
                response = await self.stub.TrackActivity(request, wait_for_ready=True)
            except grpc.aio.AioRpcError as error:
                # Only the kill may fail a call, and the process is gone: UNAVAILABLE.
                assert error.code() == grpc.StatusCode.UNAVAILABLE, error
                self.failed.append(activity_id)
            else:
                self.acknowledged[activity_id] = response.breakdown
            finally:
                self.in_flight -= 1
            async with self.progress:
                self.progress.notify_all()

    async def until_acknowledged(self, count: int) -> None:
        async with asyncio.timeout(LOAD_SECONDS), self.progress:
            await self.progress.wait_for(lambda: len(self.acknowledged) >= count)


@pytest.mark.slow
async def test_sigkills_at_random_moments_under_load_leave_every_award_applied_once(
    tmp_path, databases
):
    rng = random.Random(SEED)
    members = [f"m-{n}" for n in range(MEMBERS)]
    async with real_processes(tmp_path, databases) as clients:
        stub, ledger, suite = clients.campaigns, clients.ledger, clients.suite
        await program(stub, *members)
        await launch(stub, "bonus", fixed(5, budget=100_000))
        load = Load(stub)
        load.serving.set()
        reporting = [asyncio.create_task(load.member(member_id)) for member_id in members]
        in_flight_at_kills = []
        for _ in range(KILLS):
            await load.until_acknowledged(len(load.acknowledged) + rng.randint(10, 60))
            load.serving.clear()
            process = suite.running["campaigns"].process
            in_flight_at_kills.append(load.in_flight)
            process.kill()
            assert await asyncio.wait_for(process.wait(), EXIT_SECONDS) == -signal.SIGKILL
            await suite.start("campaigns")  # serving means it recovered by itself
            load.serving.set()
        await asyncio.wait_for(asyncio.gather(*reporting), LOAD_SECONDS)

        # Every kill hit calls in flight, and some of them got no answer.
        assert all(count > 0 for count in in_flight_at_kills), in_flight_at_kills
        assert load.failed
        base, bonus = await stats_of(stub, "base"), await stats_of(stub, "bonus")
        # Nothing waits for the ledger, and the budget's bookkeeping is the ledger's.
        assert base.reconciled and bonus.reconciled
        # Every point the ledger awarded is an applied award, and nothing more.
        awarded = {
            entry.transfer.id: entry.transfer
            for member_id in members
            for entry in await history(ledger, member_id)
        }
        points = sum(transfer.amount for transfer in awarded.values())
        assert points == base.points_awarded + bonus.points_awarded
        assert sum([await balance(ledger, m) for m in members]) == points
        applied = {transfer.metadata["activity_id"] for transfer in awarded.values()}
        assert base.activities == len(applied) == bonus.activities
        # Every acknowledged award is in the ledger as answered.
        for breakdown in load.acknowledged.values():
            assert set(breakdown.transfer_ids) <= awarded.keys()
        # The calls that got no answer were either finished by recovery or never recorded.
        assert set(load.acknowledged) <= applied <= set(load.acknowledged) | set(load.failed)
        # The feed holds each applied activity once, gapless, with what the ledger paid.
        feed = stub.WatchActivities(pb.WatchActivitiesRequest())
        events = [await asyncio.wait_for(feed.read(), CALL_SECONDS) for _ in range(len(applied))]
        feed.cancel()
        assert [event.sequence for event in events] == list(range(1, len(applied) + 1))
        assert {event.activity.activity_id for event in events} == applied
        for member_id in members:
            credited = sum(e.points for e in events if e.activity.member_id == member_id)
            assert credited == await balance(ledger, member_id), member_id


@pytest.mark.slow
async def test_two_replicas_on_one_postgres_one_killed_under_load(tmp_path, postgres):
    """Two campaigns processes and a ledger on one PostgreSQL; members report to
    either replica, and a call that fails goes to the other. One replica is
    SIGKILLed mid-load: every activity is answered once, the budget is spent to
    its last point and never past it, and the feed is gapless."""
    databases = {
        name: fresh_database(tmp_path, "postgres", name) for name in ("ledger", "campaigns")
    }
    members = [f"m-{n}" for n in range(MEMBERS)]
    async with replica_suites(tmp_path, databases, shared={"ledger"}) as (first, second):
        await first.start("ledger")
        await first.start("campaigns")
        async with (
            deadlines.channel(first.target("campaigns"), CALL_SECONDS) as zero,
            deadlines.channel(first.target("ledger"), CALL_SECONDS) as ledger_channel,
        ):
            stubs = [pb_grpc.CampaignsServiceStub(zero)]
            await program(stubs[0], *members)
            await launch(stubs[0], "bonus", fixed(5, budget=BUDGET))
            await second.start("campaigns")  # its catalog holds the campaigns
            async with deadlines.channel(second.target("campaigns"), CALL_SECONDS) as one:
                stubs.append(pb_grpc.CampaignsServiceStub(one))
                answers: dict[str, pb.Breakdown] = {}
                failed_over: list[str] = []
                progress = asyncio.Event()

                async def report(n: int, member_id: str) -> None:
                    clock = SystemClock()
                    for k in range(PER_MEMBER):
                        activity_id = f"{member_id}-{k}"
                        request = pb.TrackActivityRequest(
                            activity=purchase(activity_id, 300, clock.now_us(), member_id)
                        )
                        response = await failing_over(
                            lambda stub, request=request: stub.TrackActivity(request),
                            stubs,
                            n + k,
                            failed_over,
                        )
                        answers[activity_id] = response.breakdown
                        progress.set()

                reporting = asyncio.gather(*(report(n, m) for n, m in enumerate(members)))
                enough = len(members) * PER_MEMBER // 3
                await kill_under_load(
                    first.running["campaigns"],
                    reporting,
                    progress,
                    lambda: len(answers) >= enough,
                    LOAD_SECONDS,
                )
                assert failed_over, "the kill met no call in flight"
                ledger = ledger_grpc.LedgerServiceStub(ledger_channel)
                await check_replicas_left(stubs[1], ledger, members, answers)


async def check_replicas_left(stub, ledger, members, answers) -> None:
    assert len(answers) == len(members) * PER_MEMBER
    base, bonus = await stats_of(stub, "base"), await stats_of(stub, "bonus")
    # 3 points a purchase, and 5 more from the budget until it is spent, never past it.
    assert base.points_awarded == 3 * len(answers)
    assert bonus.points_awarded == BUDGET and bonus.budget_left == 0
    assert bonus.reconciled and base.reconciled
    assert await balance(ledger, "campaign:bonus:budget") == 0
    assert sum([await balance(ledger, m) for m in members]) == 3 * len(answers) + BUDGET
    # Each activity paid once, as answered: the feed holds each once, gapless.
    feed = stub.WatchActivities(pb.WatchActivitiesRequest())
    events = [await asyncio.wait_for(feed.read(), CALL_SECONDS) for _ in range(len(answers))]
    feed.cancel()
    assert [event.sequence for event in events] == list(range(1, len(answers) + 1))
    assert sorted(event.activity.activity_id for event in events) == sorted(answers)
    for event in events:
        assert event.points == answers[event.activity.activity_id].total_points
