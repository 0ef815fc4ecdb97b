"""Rewards helpers the rewards tests share: a member directory that answers
CampaignsService.GetMember over real gRPC (the campaigns profile is where tiers
come from until the progress service lands), a real rewards server beside a
real ledger, and builders for specs and calls."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from loyalty.campaigns.v1 import campaigns_service_pb2 as campaigns_pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as campaigns_grpc
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from loyalty.rewards.v1 import rewards_service_pb2 as pb
from loyalty.rewards.v1 import rewards_service_pb2_grpc as rewards_grpc

from services.kit.clock import ManualClock
from services.kit.proto_time import timestamp
from services.kit.server import ServiceHost
from services.rewards.domain.redemptions import redemption_id
from services.rewards.server import RewardsSettings, build_server
from tests.support.ledger import balance, fund, start_ledger
from tests.support.metrics import NO_METRICS

TIMEOUT = 10.0
# The ManualClock's default start: Thursday 1 January 2026, 00:00 UTC.
START_US = 1_767_225_600 * 1_000_000
HOUR_US = 3600 * 1_000_000
DAY_US = 24 * HOUR_US


class MemberDirectory(campaigns_grpc.CampaignsServiceServicer):
    """CampaignsService.GetMember from a dict; every other method is UNIMPLEMENTED."""

    def __init__(self) -> None:
        self.members: dict[str, campaigns_pb.Member] = {}
        self.calls = 0

    def set(self, member_id: str, tier: str = "", time_zone: str = "", segments=()) -> None:
        """A member whose tier is `tier` (as campaigns answers when no program places them)."""
        self.members[member_id] = campaigns_pb.Member(
            member_id=member_id,
            tier=tier,
            tiers=[tier] if tier else [],
            time_zone=time_zone,
            segments=segments,
        )

    async def GetMember(self, request, context):
        self.calls += 1
        member = self.members.get(request.member_id)
        if member is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such member")
        return campaigns_pb.GetMemberResponse(member=member)


@contextlib.asynccontextmanager
async def member_directory() -> AsyncIterator[tuple[MemberDirectory, str]]:
    directory = MemberDirectory()
    server = grpc.aio.server()
    campaigns_grpc.add_CampaignsServiceServicer_to_server(directory, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield directory, f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


@dataclass
class World:
    """A rewards server, its ledger and member directory, one ManualClock."""

    clock: ManualClock
    stub: rewards_grpc.RewardsServiceStub
    ledger: ledger_grpc.LedgerServiceStub
    directory: MemberDirectory
    path: Path
    ledger_target: str
    directory_target: str
    # Where the rewards server answers.
    target: str
    host: ServiceHost
    ledger_host: ServiceHost

    async def fund(self, member_id: str, points: int, transfer_id: str = "") -> None:
        await fund(self.ledger, member_id, points, transfer_id)

    async def points(self, member_id: str) -> int:
        return await balance(self.ledger, member_id)

    async def available(self, account_id: str) -> int:
        try:
            response = await self.ledger.GetAccount(
                ledger_pb.GetAccountRequest(account_id=account_id), timeout=TIMEOUT
            )
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND
            return 0
        return response.account.balance.available


def settings(path: Path, ledger_target: str, directory_target: str, **fields) -> RewardsSettings:
    # The relay runs only when a test asks (relay_once / recover): no background work.
    fields.setdefault("relay_interval_seconds", 10**9)
    fields.setdefault("metrics_listen", NO_METRICS)
    # A SQLite file in the world's folder unless the test names a database (a URL).
    fields.setdefault("db_path", str(path / "rewards.db"))
    return RewardsSettings(
        ledger_target=ledger_target,
        campaigns_target=directory_target,
        **fields,
    )


async def start_rewards(
    world_path: Path, clock, ledger_target: str, directory_target: str, **fields
):
    host = await build_server(
        settings(world_path, ledger_target, directory_target, **fields), "127.0.0.1:0", clock
    )
    await host.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{host.port}")
    return host, channel, rewards_grpc.RewardsServiceStub(channel)


@contextlib.asynccontextmanager
async def rewards_world(path: Path, **fields) -> AsyncIterator[World]:
    clock = ManualClock()
    ledger_host, ledger_channel, ledger_stub = await start_ledger(path / "ledger.db", clock)
    ledger_target = f"127.0.0.1:{ledger_host.port}"
    async with member_directory() as (directory, directory_target):
        host, channel, stub = await start_rewards(
            path, clock, ledger_target, directory_target, **fields
        )
        world = World(
            clock,
            stub,
            ledger_stub,
            directory,
            path,
            ledger_target,
            directory_target,
            f"127.0.0.1:{host.port}",
            host,
            ledger_host,
        )
        try:
            yield world
        finally:
            await channel.close()
            await host.stop(None)
            await ledger_channel.close()
            # A test may have stopped its ledger already.
            await ledger_host.stop(None)


ISSUER, AUDIENCE = "rewards-tests", "rewards-tests-apps"


@dataclass
class Gateway:
    target: str
    mint: object  # tools.demo.TokenMint


@contextlib.asynccontextmanager
async def rewards_gateway(world: World) -> AsyncIterator[Gateway]:
    """The real gateway in front of this world's ledger and rewards, with its own key."""
    import secrets

    from services.gateway.server import GatewaySettings
    from services.gateway.server import build_server as build_gateway
    from tools.demo import TokenMint

    secret = secrets.token_urlsafe(32)
    settings = GatewaySettings(
        ledger_target=world.ledger_target,
        games_target=None,
        campaigns_target=None,
        rewards_target=world.target,
        jwt_secret=secret,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        shutdown_grace_seconds=1.0,
        metrics_listen=NO_METRICS,
    )
    host = await build_gateway(settings, "127.0.0.1:0")
    await host.start()
    try:
        yield Gateway(f"127.0.0.1:{host.port}", TokenMint(secret.encode(), ISSUER, AUDIENCE))
    finally:
        await host.stop(1.0)


# ---------------------------------------------------------------- builders


def spec(title: str = "Free coffee", kind=pb.REWARD_KIND_CODE_POOL, price: int = 100, **fields):
    fields.setdefault("value", pb.Money(amount_minor=350, currency="EUR"))
    fields.setdefault("category", "drinks")
    return pb.RewardSpec(title=title, kind=kind, price=price, **fields)


def at(moment_us: int):
    return timestamp(moment_us)


async def create_reward(stub, reward_id: str, reward_spec: pb.RewardSpec, stock: int = 0):
    response = await stub.CreateReward(
        pb.CreateRewardRequest(reward_id=reward_id, spec=reward_spec), timeout=TIMEOUT
    )
    if stock:
        await stub.StockReward(
            pb.StockRewardRequest(reward_id=reward_id, quantity=stock, request_id="initial"),
            timeout=TIMEOUT,
        )
    return response.reward


async def import_codes(stub, reward_id: str, codes, import_id: str = "import-1"):
    return await stub.ImportCodes(
        pb.ImportCodesRequest(
            reward_id=reward_id, import_id=import_id, first_line=1, lines=list(codes)
        ),
        timeout=TIMEOUT,
    )


async def redeem(stub, member_id: str, reward_id: str, request_id: str, quantity: int = 1):
    response = await stub.Redeem(
        pb.RedeemRequest(
            member_id=member_id, reward_id=reward_id, request_id=request_id, quantity=quantity
        ),
        timeout=TIMEOUT,
    )
    return response.redemption


# ---------------------------------------------------------------- checked against the ledger


# The crash and replica tests' reward "coffee" and members (set_up).
PRICE = 100
FUNDS = 10_000
CODES = 400
RECOVERY_SECONDS = 60.0
# The relay looks every 0.2 s; an entry a step records waits out the kit's grace first.
FAST_RELAY = {"REWARDS_RELAY_INTERVAL_SECONDS": "0.2"}


async def set_up(ledger, rewards, members: list[str], stock: int = CODES) -> None:
    """Reward "coffee" (a code pool of CODES codes, `stock` units) and members funded with FUNDS."""
    await create_reward(rewards, "coffee", spec(price=PRICE), stock=stock)
    await import_codes(rewards, "coffee", [f"CODE-{n:04d}" for n in range(CODES)])
    for member in members:
        await fund(ledger, member, FUNDS)


async def pending_state(ledger, transfer_id: str) -> int | None:
    try:
        answer = await ledger.GetTransfer(
            ledger_pb.GetTransferRequest(transfer_id=transfer_id), timeout=TIMEOUT
        )
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND
        return None
    return answer.pending_state


async def settled(rewards) -> list[pb.Redemption]:
    """Every redemption once none is PROCESSING any more (the relay finished them)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECOVERY_SECONDS
    while True:
        listed = await rewards.ListRedemptions(
            pb.ListRedemptionsRequest(page_size=500), timeout=TIMEOUT
        )
        if all(r.state != pb.REDEMPTION_STATE_PROCESSING for r in listed.redemptions):
            return list(listed.redemptions)
        assert loop.time() < deadline, "redemptions still PROCESSING after recovery"
        await asyncio.sleep(0.1)


async def check_against_the_ledger(
    ledger, rewards, members, sent, stock: int = CODES
) -> list[pb.Redemption]:
    """Each redemption sent completed (holds posted, one code) or left nothing behind;
    the reward's `stock` less what was issued is left, and its codes likewise."""
    found = {r.redemption_id: r for r in await settled(rewards)}
    codes: list[str] = []
    issued_by_member = dict.fromkeys(members, 0)
    for member, request_id in sent:
        rid = redemption_id(member, request_id)
        holds = [
            await pending_state(ledger, f"redeem:{rid}:points"),
            await pending_state(ledger, f"redeem:{rid}:stock"),
        ]
        redemption = found.get(rid)
        if redemption is None:  # killed before it was recorded: the ledger never heard of it
            assert holds == [None, None], (member, request_id)
            continue
        if redemption.state == pb.REDEMPTION_STATE_ISSUED:
            assert holds == [ledger_pb.PENDING_STATE_POSTED] * 2, redemption
            mine = await rewards.GetRedemption(
                pb.GetRedemptionRequest(member_id=member, redemption_id=rid), timeout=TIMEOUT
            )
            assert mine.redemption.code
            codes.append(mine.redemption.code)
            issued_by_member[member] += 1
        else:
            assert redemption.state == pb.REDEMPTION_STATE_FAILED, redemption
            assert ledger_pb.PENDING_STATE_POSTED not in holds, redemption
    assert len(codes) == len(set(codes)), "a code was given twice"
    for member, issued in issued_by_member.items():
        account = await ledger.GetAccount(
            ledger_pb.GetAccountRequest(account_id=member), timeout=TIMEOUT
        )
        expected = FUNDS - PRICE * issued
        assert (account.account.balance.balance, account.account.balance.available) == (
            expected,
            expected,
        ), member
    report = await rewards.GetRewardReport(
        pb.GetRewardReportRequest(reward_id="coffee"), timeout=TIMEOUT
    )
    assert report.report.stock_left == stock - len(codes)
    assert report.report.codes_left == CODES - len(codes)
    return [r for r in found.values() if r.state == pb.REDEMPTION_STATE_ISSUED]
