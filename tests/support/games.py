"""Games helpers the games tests share: predictable seeds, wheel builders, a real
games server on a free port, and the games' use cases over a temporary store."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from loyalty.games.v1 import games_service_pb2 as pb
from loyalty.games.v1 import games_service_pb2_grpc as pb_grpc

from services.games.base import Games
from services.games.catch import Catch
from services.games.ledger import GamesLedger
from services.games.plays import Plays
from services.games.seeds import Seeds
from services.games.server import GamesSettings, build_server, outbox_handlers
from services.games.spins import Spins
from services.games.store import GamesStore
from services.games.wheels import Wheels
from services.kit.clock import Clock
from services.kit.outbox import LedgerOutbox
from services.kit.server import ServiceHost
from tests.support import deadlines
from tests.support.ledger_stub import InProcessLedger

NEVER_SECONDS = 10**9


def seed_number(n: int) -> bytes:
    """Server seeds the tests can predict: 32 bytes of one value."""
    return bytes([n % 256]) * 32


def numbered_seeds(start: int = 1) -> Callable[[], bytes]:
    """A seed source giving seed_number(start), seed_number(start + 1), ..."""
    numbers: Iterator[int] = itertools.count(start)
    return lambda: seed_number(next(numbers))


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
# Every spin pays 20 points, so every spin needs the ledger.
ALWAYS_PAYS = wheel_config(
    pb.Segment(label="Try again", weight=0),
    pb.Segment(label="20 points", weight=1, prize=points(20)),
    cost_points=0,
)


def pools_of(config: pb.WheelConfig) -> list[str]:
    return sorted(
        {
            s.prize.item.unit if s.prize.HasField("item") else "points"
            for s in config.segments
            if s.prize.WhichOneof("kind")
        }
    )


async def create_stocked_wheel(stub, wheel_id: str, config: pb.WheelConfig) -> pb.Wheel:
    """Creates a wheel and stocks every pool it pays from generously."""
    response = await stub.CreateWheel(pb.CreateWheelRequest(wheel_id=wheel_id, config=config))
    for unit in pools_of(config):
        await stub.StockWheel(
            pb.StockWheelRequest(wheel_id=wheel_id, unit=unit, quantity=10**6, request_id="initial")
        )
    return response.wheel


async def spin(stub, wheel_id: str, member_id: str, request_id: str) -> pb.Spin:
    request = pb.SpinRequest(wheel_id=wheel_id, member_id=member_id, request_id=request_id)
    return (await stub.Spin(request)).spin


async def plays_of(stub, member_id: str) -> list[pb.Play]:
    response = await stub.ListPlays(pb.ListPlaysRequest(member_id=member_id, page_size=500))
    return list(response.plays)


def games_settings(db_path: Path, ledger_target: str, **changes) -> GamesSettings:
    fields = dict(
        db_path=db_path,
        ledger_target=ledger_target,
        ledger_timeout_seconds=2.0,
        relay_interval_seconds=NEVER_SECONDS,
    )
    fields.update(changes)
    return GamesSettings(**fields)


@dataclass
class RunningGames:
    host: ServiceHost
    channel: grpc.aio.Channel
    stub: pb_grpc.GamesServiceStub
    settings: GamesSettings

    async def stop(self) -> None:
        await self.channel.close()
        await self.host.stop(None)


async def start_games(
    settings: GamesSettings, clock: Clock, seeds: Callable[[], bytes]
) -> RunningGames:
    """A real games server on a free port, and a channel to it with deadlines."""
    host = await build_server(settings, "127.0.0.1:0", clock, seed_source=seeds)
    await host.start()
    channel = deadlines.channel(f"127.0.0.1:{host.port}")
    return RunningGames(host, channel, pb_grpc.GamesServiceStub(channel), settings)


@dataclass
class Commits:
    """Counts the group commits of a store."""

    count: int = 0

    def tick(self) -> None:
        self.count += 1


@dataclass
class GamesRig:
    """The games' use cases over a temporary store and an in-process ledger: no gRPC."""

    games: Games
    commits: Commits
    ledger: InProcessLedger
    wheels: Wheels
    seeds: Seeds
    spins: Spins
    plays: Plays
    catch: Catch

    @property
    def outbox(self) -> LedgerOutbox:
        return self.games.outbox

    async def close(self) -> None:
        await self.games.store.close()
        await self.ledger.close()


async def open_rig(directory: Path, clock: Clock, seeds: Callable[[], bytes]) -> GamesRig:
    ledger = InProcessLedger(directory / "ledger.db", clock)
    await ledger.open()
    commits = Commits()
    store = GamesStore(directory / "games.db", on_commit=commits.tick)
    await store.open()
    client = GamesLedger(ledger, timeout=2.0)
    outbox = LedgerOutbox(store, ledger, clock, outbox_handlers(clock), timeout=2.0)
    games = Games(store, client, outbox, clock, new_seed=seeds)
    return GamesRig(
        games,
        commits,
        ledger,
        Wheels(games),
        Seeds(games),
        Spins(games),
        Plays(games),
        Catch(games),
    )
