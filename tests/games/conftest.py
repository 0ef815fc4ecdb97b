"""A real games server beside the shared real ledger, both on port 0 over temp SQLite files."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import grpc
import pytest_asyncio
from loyalty.games.v1 import games_service_pb2 as pb
from loyalty.games.v1 import games_service_pb2_grpc as pb_grpc
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from services.games.ledger import issuance, member_wallet
from services.games.server import GamesSettings, build_server
from services.kit.ledger_accounts import BREAKAGE
from services.kit.server import ServiceHost


def seed_number(n: int) -> bytes:
    """Server seeds the tests can predict: 32 bytes of one value."""
    return bytes([n % 256]) * 32


@dataclass
class RunningGames:
    host: ServiceHost
    stub: pb_grpc.GamesServiceStub
    settings: GamesSettings


async def start_games(
    settings: GamesSettings, ledger, seeds
) -> tuple[ServiceHost, grpc.aio.Channel]:
    host = await build_server(
        settings, "127.0.0.1:0", ledger.clock, seed_source=lambda: seed_number(next(seeds))
    )
    await host.start()
    return host, grpc.aio.insecure_channel(f"127.0.0.1:{host.port}")


@pytest_asyncio.fixture
async def games(tmp_path, ledger) -> RunningGames:
    settings = GamesSettings(
        db_path=tmp_path / "games.db",
        ledger_target=ledger.target,
        ledger_timeout_seconds=2.0,
        relay_interval_seconds=3600,
    )
    host, channel = await start_games(settings, ledger, itertools.count(1))
    async with channel:
        yield RunningGames(host, pb_grpc.GamesServiceStub(channel), settings)
    await host.stop(None)


async def fund(ledger, member_id: str, points: int, transfer_id: str | None = None) -> None:
    """Give a member points the way campaigns would: issuance -> wallet."""
    for account in (BREAKAGE, issuance("points"), member_wallet(member_id, "points")):
        await ledger.stub.OpenAccount(ledger_pb.OpenAccountRequest(account=account))
    response = await ledger.stub.PostTransfers(
        ledger_pb.PostTransfersRequest(
            transfers=[
                ledger_pb.Transfer(
                    id=transfer_id or f"fund:{member_id}:{points}",
                    debit_account_id="program:issuance",
                    credit_account_id=member_id,
                    amount=points,
                    code=ledger_pb.TRANSFER_CODE_EARN,
                    kind=ledger_pb.TRANSFER_KIND_POSTED,
                )
            ]
        )
    )
    assert response.results[0].code == ledger_pb.TRANSFER_RESULT_CODE_OK, response


async def balance(ledger, account_id: str) -> int:
    try:
        response = await ledger.stub.GetAccount(ledger_pb.GetAccountRequest(account_id=account_id))
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND
        return 0
    return response.account.balance.balance


def points(n: int) -> pb.Prize:
    return pb.Prize(points=n)


def item(unit: str, quantity: int = 1) -> pb.Prize:
    return pb.Prize(item=pb.PrizeItem(unit=unit, quantity=quantity))


def wheel_config(*segments: pb.Segment, **changes) -> pb.WheelConfig:
    fields = dict(
        display_name="Daily wheel",
        segments=list(segments),
        fallback_segment_index=0,
        cost_points=10,
        spins_per_day=5,
        time_zone="Europe/Paris",
    )
    fields.update(changes)
    return pb.WheelConfig(**fields)


STANDARD_WHEEL = wheel_config(
    pb.Segment(label="Try again", weight=50),
    pb.Segment(label="20 points", weight=30, prize=points(20)),
    pb.Segment(label="Coffee", weight=15, prize=item("prize:free-coffee")),
    pb.Segment(label="Jackpot", weight=5, prize=points(500)),
)


async def create_stocked_wheel(stub, wheel_id: str, config: pb.WheelConfig) -> pb.Wheel:
    """Creates a wheel and stocks every pool it pays from generously."""
    response = await stub.CreateWheel(pb.CreateWheelRequest(wheel_id=wheel_id, config=config))
    units = {
        s.prize.item.unit if s.prize.HasField("item") else "points"
        for s in config.segments
        if s.prize.WhichOneof("kind")
    }
    for unit in sorted(units):
        await stub.StockWheel(
            pb.StockWheelRequest(wheel_id=wheel_id, unit=unit, quantity=10**6, request_id="initial")
        )
    return response.wheel
