"""Progress helpers shared by its test files: event builders, definitions, a
service tier (the use cases over a temporary SQLite store, no gRPC) and an
in-memory stand-in for the ledger calls rewards make."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
from google.protobuf import json_format
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from loyalty.progress.v1 import progress_service_pb2 as pb
from loyalty.progress.v1 import progress_service_pb2_grpc as progress_grpc

from services.kit.clock import ManualClock, from_datetime
from services.kit.feeds import CommitSignal, FeedItem
from services.kit.ledger_accounts import LedgerAccounts
from services.kit.schedule import LocalTime, ScheduleSpec
from services.kit.server import ServiceHost
from services.kit.stores import UnitStore
from services.progress.catalog import CatalogUseCases
from services.progress.domain.definitions import (
    Badge,
    BadgeLevel,
    Challenge,
    Downgrade,
    Measure,
    Milestone,
    Rule,
    Step,
    Streak,
    StreakPeriod,
    Tier,
    TierProgram,
    WindowKind,
)
from services.progress.domain.events import (
    ActivityEvent,
    PlayEvent,
    PlayKind,
    PointsCredited,
    PointsReversed,
)
from services.progress.feeding import FeedUseCases
from services.progress.members import MemberUseCases
from services.progress.rewards import Rewards
from services.progress.server import progress_store
from services.progress.store import ProgressUnit
from services.progress.watching import WatchUseCases
from tests.support.ledger import open_program, post, posted, start_ledger, wallet_request
from tests.support.metrics import NO_METRICS
from tests.support.upstream import FakeUpstream

PARIS = "Europe/Paris"
DAY_US = 86_400 * 1_000_000


def at(*parts: int, zone: str = PARIS) -> int:
    return from_datetime(datetime(*parts, tzinfo=ZoneInfo(zone)))


# ------------------------------------------------------------------ events


def credit(transfer_id, member, amount, commit_us, code="EARN", activity_id=""):
    return PointsCredited(transfer_id, member, code, amount, commit_us, activity_id)


def reversal(transfer_id, member, original, amount, commit_us):
    return PointsReversed(transfer_id, member, original, amount, commit_us)


def activity(activity_id, member, kind, occur_us, zone="", amount=0, refunds=""):
    return ActivityEvent(
        activity_id,
        member,
        kind,
        occur_us,
        0,
        zone,
        amount_minor=amount,
        refunds_activity_id=refunds,
    )


def spin(play_id, member, occur_us, wheel="wheel-1"):
    return PlayEvent(play_id, member, PlayKind.SPIN, wheel, occur_us)


def catch(play_id, member, occur_us, score, game="catch-1"):
    return PlayEvent(play_id, member, PlayKind.CATCH, game, occur_us, score=score)


def items(*events, start: int = 1) -> list[FeedItem]:
    """One feed item per event, numbered from `start`."""
    return [FeedItem(start + n, [event]) for n, event in enumerate(events)]


# ------------------------------------------------------------------ definitions


def club(window=WindowKind.CALENDAR_YEAR, grace_days=0, downgrade=Downgrade.RECOMPUTE, **kw):
    return TierProgram(
        display_name="Club",
        time_zone=PARIS,
        tiers=(
            Tier("member", "Member"),
            Tier("silver", "Silver", min_points=1_000),
            Tier("gold", "Gold", min_points=5_000),
        ),
        window=window,
        grace_us=grace_days * DAY_US,
        downgrade=downgrade,
        **kw,
    )


def reviewer(bonus=(0, 50, 200), budget="rewards") -> Badge:
    return Badge(
        "Reviewer",
        Rule(Measure.ACTIVITY_COUNT, activity_type="product_review"),
        (
            BadgeLevel("bronze", 1, "Bronze", bonus[0]),
            BadgeLevel("silver", 3, "Silver", bonus[1]),
            BadgeLevel("gold", 5, "Gold", bonus[2]),
        ),
        description="Write product reviews",
        budget_id=budget,
    )


def login_streak(freeze=False, bonus=100, period=StreakPeriod.DAY) -> Streak:
    return Streak(
        "Daily login",
        Rule(Measure.ACTIVITY_COUNT, activity_type="app_login"),
        period,
        PARIS,
        freeze=freeze,
        milestones=(Milestone(3, 0), Milestone(7, bonus)),
        budget_id="rewards",
    )


def weekly_challenge(opt_in=False, reward=150) -> Challenge:
    """Monday 00:00 to the next Monday in Paris, every week from 2 March 2026."""
    return Challenge(
        "Review and spin",
        ScheduleSpec(PARIS, LocalTime(2026, 3, 2), 7 * 86_400, "FREQ=WEEKLY"),
        (
            Step("reviews", Rule(Measure.ACTIVITY_COUNT, activity_type="product_review"), 2),
            Step("spin", Rule(Measure.SPIN_COUNT), 1),
        ),
        opt_in=opt_in,
        reward_points=reward,
        budget_id="rewards",
    )


# ------------------------------------------------------------------ the service tier


class FakeLedgerStub:
    """Answers what rewards ask of the ledger (open accounts, post, read) in memory."""

    def __init__(self) -> None:
        self.accounts: dict[str, ledger_pb.Account] = {}
        self.transfers: dict[str, ledger_pb.Transfer] = {}

    async def OpenAccount(self, request, timeout=None):
        self.accounts.setdefault(request.account.id, request.account)
        return ledger_pb.OpenAccountResponse(account=request.account, created=True)

    async def PostTransfers(self, request, timeout=None):
        results = []
        for index, transfer in enumerate(request.transfers):
            code = (
                ledger_pb.TRANSFER_RESULT_CODE_EXISTS
                if transfer.id in self.transfers
                else ledger_pb.TRANSFER_RESULT_CODE_OK
            )
            self.transfers.setdefault(transfer.id, transfer)
            results.append(
                ledger_pb.TransferResult(index=index, id=transfer.id, code=code, transfer=transfer)
            )
        return ledger_pb.PostTransfersResponse(results=results)

    async def GetAccount(self, request, timeout=None):
        balance = sum(
            t.amount for t in self.transfers.values() if t.credit_account_id == request.account_id
        ) - sum(
            t.amount for t in self.transfers.values() if t.debit_account_id == request.account_id
        )
        account = ledger_pb.Account(
            id=request.account_id, balance=ledger_pb.Balance(balance=balance)
        )
        return ledger_pb.GetAccountResponse(account=account)

    def paid_to(self, member_id: str) -> list[ledger_pb.Transfer]:
        return [t for t in self.transfers.values() if t.credit_account_id == member_id]


@dataclass
class ServiceTier:
    store: UnitStore[ProgressUnit]
    clock: ManualClock
    ledger: FakeLedgerStub
    feeds: FeedUseCases
    catalog: CatalogUseCases
    members: MemberUseCases
    watch: WatchUseCases
    rewards: Rewards
    sequence: int = 0

    async def feed(self, *events, feed: str = "ledger", defer: bool = False) -> int:
        """Apply each event as the next item of one feed (as a backlog's batch
        when `defer`)."""
        batch = items(*events, start=self.sequence + 1)
        self.sequence += len(batch)
        return await self.feeds.apply(feed, batch, defer=defer)


@contextlib.asynccontextmanager
async def service_tier(
    db: Path | str, clock: ManualClock | None = None
) -> AsyncIterator[ServiceTier]:
    """The use cases over the store `db` names (a SQLite file, a PostgreSQL URL)."""
    clock = clock or ManualClock(at(2026, 3, 1))
    signal = CommitSignal()
    store = progress_store(db, on_commit=signal.notify)
    await store.open()
    ledger = FakeLedgerStub()
    rewards = Rewards(store, LedgerAccounts(ledger, 1.0), clock, 1.0)
    shared = (store, clock, rewards, signal)
    try:
        yield ServiceTier(
            store,
            clock,
            ledger,
            FeedUseCases(*shared),
            CatalogUseCases(*shared),
            MemberUseCases(*shared),
            WatchUseCases(*shared),
            rewards,
        )
    finally:
        await store.close()


# ------------------------------------------------------------------ a real server


async def start_progress(
    db_path: Path | str,
    clock,
    ledger_target: str,
    upstream_target: str = "",
    review_interval_seconds: float = 3600.0,
    **changes,
):
    """A real progress server on a free port over `db_path`, following the ledger
    and (when given) campaigns' and games' feeds at `upstream_target`, through
    their real contracts; and a stub to it. `changes` are more settings (metrics
    are off unless they say otherwise; campaigns_target or games_target follow
    one feed elsewhere)."""
    from loyalty.progress.v1 import progress_service_pb2_grpc as progress_grpc

    from services.progress.server import ProgressSettings, build_server

    defaults = {
        "campaigns_target": upstream_target,
        "games_target": upstream_target,
        "metrics_listen": NO_METRICS,
    }
    settings = ProgressSettings(
        db_path=db_path,
        ledger_target=ledger_target,
        review_interval_seconds=review_interval_seconds,
        relay_interval_seconds=3600.0,
        **{**defaults, **changes},
    )
    host = await build_server(settings, "127.0.0.1:0", clock)
    await host.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{host.port}")
    return host, channel, progress_grpc.ProgressServiceStub(channel)


@dataclass
class Running:
    """A real ledger, fake campaigns and games feeds, and a real progress server
    following them, on one ManualClock."""

    clock: ManualClock
    ledger: ledger_grpc.LedgerServiceStub
    upstream: FakeUpstream
    host: ServiceHost
    progress: progress_grpc.ProgressServiceStub
    ledger_target: str
    ledger_host: ServiceHost


@contextlib.asynccontextmanager
async def running_progress(
    directory: Path, db: Path | str | None = None, **changes
) -> AsyncIterator[Running]:
    """Everything of Running started over files in `directory` (progress in `db`
    when given: a file or a PostgreSQL URL), stopped after; `changes` are
    progress settings."""
    clock = ManualClock(at(2026, 3, 2, 9))
    ledger_host, ledger_channel, ledger = await start_ledger(directory / "ledger.db", clock)
    await open_program(ledger)
    upstream = FakeUpstream()
    await upstream.start()
    target = f"127.0.0.1:{ledger_host.port}"
    host, channel, progress = await start_progress(
        db or directory / "progress.db", clock, target, upstream.target, **changes
    )
    try:
        yield Running(clock, ledger, upstream, host, progress, target, ledger_host)
    finally:
        await channel.close()
        await host.stop(None)
        await upstream.stop()
        await ledger_channel.close()
        # A test may have stopped its ledger already.
        await ledger_host.stop(None)


async def caught_up(host, feed: str, sequence: int, timeout: float = 20.0) -> None:
    """Wait until the server's follower of `feed` has applied up to `sequence`."""
    (follower,) = [f for f in host.followers if f.state.name == feed]
    await asyncio.wait_for(follower.wait_for(sequence), timeout)


# ------------------------------------------------------------------ through gRPC

TIMEOUT = 10.0

CLUB = {
    "id": "club",
    "tierProgram": {
        "displayName": "Club",
        "timeZone": "Europe/Paris",
        "tiers": [
            {"tierId": "member", "displayName": "Member"},
            {"tierId": "silver", "displayName": "Silver", "minPoints": "1000"},
            {"tierId": "gold", "displayName": "Gold", "minPoints": "5000"},
        ],
        "window": "QUALIFYING_WINDOW_CALENDAR_YEAR",
        "grace": "2592000s",
    },
}
REVIEWER = {
    "id": "reviewer",
    "badge": {
        "displayName": "Reviewer",
        "rule": {"measure": "MEASURE_ACTIVITY_COUNT", "activityType": "product_review"},
        "levels": [
            {"levelId": "bronze", "threshold": "1"},
            {"levelId": "silver", "threshold": "3", "bonusPoints": "50"},
        ],
        "budgetId": "rewards",
    },
}


def definition(data: dict) -> pb.Definition:
    return json_format.ParseDict(data, pb.Definition())


async def apply(stub, data: dict) -> pb.ApplyDefinitionResponse:
    return await stub.ApplyDefinition(
        pb.ApplyDefinitionRequest(definition=definition(data)), timeout=TIMEOUT
    )


async def earn(ledger, transfer_id: str, member: str, amount: int, activity_id: str = "") -> int:
    await ledger.OpenAccount(wallet_request(member), timeout=TIMEOUT)
    (result,) = await post(
        ledger,
        posted(
            transfer_id,
            "program:issuance",
            member,
            amount,
            metadata={"activity_id": activity_id} if activity_id else {},
        ),
    )
    assert result.code == ledger_pb.TRANSFER_RESULT_CODE_OK, result
    return result.transfer.sequence


GATEWAY_SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def gateway_token(now_us: int, subject: str, role: str) -> str:
    from services.gateway.tokens import issue_token

    return issue_token(
        GATEWAY_SECRET.encode(),
        subject=subject,
        roles=[role],
        issuer="test",
        audience="test",
        now_us=now_us,
        ttl_seconds=3600,
    )


@contextlib.asynccontextmanager
async def gateway_in_front(running) -> AsyncIterator[str]:
    """A real gateway in front of the running ledger and progress; its address."""
    from services.gateway.server import GatewaySettings, build_server

    settings = GatewaySettings(
        ledger_target=running.ledger_target,
        games_target=None,
        campaigns_target=None,
        progress_target=f"127.0.0.1:{running.host.port}",
        jwt_issuer="test",
        jwt_audience="test",
        jwt_secret=GATEWAY_SECRET,
        metrics_listen=NO_METRICS,
    )
    gateway = await build_server(settings, "127.0.0.1:0", running.clock)
    await gateway.start()
    try:
        yield f"127.0.0.1:{gateway.port}"
    finally:
        await gateway.stop(1.0)
