"""Games helpers the games tests share: predictable seeds, wheel builders, a real
games server on a free port, and the games' use cases over a temporary store."""

from __future__ import annotations

import itertools
import math
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
from services.games.server import GamesSettings, build_server, games_store, outbox_handlers
from services.games.spins import Spins
from services.games.wheels import Wheels
from services.kit.clock import Clock
from services.kit.feeds import CommitSignal
from services.kit.outbox import LedgerOutbox
from services.kit.server import ServiceHost
from tests.support import deadlines
from tests.support.ledger_stub import InProcessLedger
from tests.support.metrics import NO_METRICS

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


def games_settings(db_path: Path | str, ledger_target: str, **changes) -> GamesSettings:
    fields = dict(
        db_path=str(db_path),
        ledger_target=ledger_target,
        ledger_timeout_seconds=2.0,
        relay_interval_seconds=NEVER_SECONDS,
        metrics_listen=NO_METRICS,
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


class Commits(CommitSignal):
    """The store's commit signal, which the test can also count."""

    @property
    def count(self) -> int:
        return self.version


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


async def open_rig(
    directory: Path, clock: Clock, seeds: Callable[[], bytes], games_db: str | None = None
) -> GamesRig:
    """The rig over `games_db` (a file or a PostgreSQL URL; games.db in `directory`
    by default), beside an in-process ledger on a SQLite file."""
    ledger = InProcessLedger(directory / "ledger.db", clock)
    await ledger.open()
    commits = Commits()
    store = games_store(games_db or directory / "games.db", on_commit=commits.notify)
    await store.open()
    client = GamesLedger(ledger, timeout=2.0)
    outbox = LedgerOutbox(store, ledger, clock, outbox_handlers(clock), timeout=2.0)
    games = Games(store, client, outbox, clock, new_seed=seeds, commits=commits)
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


# ---------------------------------------------------------------- catch-to-earn

TRACE_STEP_MILLIS = 20


@dataclass(frozen=True)
class HonestPlay:
    """What a person could have played: catches as (object id, millis, basket x) and
    the basket's trace as (millis, x), smooth and after a human reaction time."""

    catches: list[tuple[int, int, int]]
    trace: list[tuple[int, int]]


def honest_play(rules, objects, keep: int | None = None) -> HonestPlay:
    """The good objects (points > 0) a person can catch, in landing order: the basket
    sets off toward each one a little after min_reaction_millis past its reveal (or
    after the previous catch), on an eased curve whose speed and acceleration stay
    within the game's (with room for rounding), and catches it as it lands. `rules`
    and `objects` may be the API's messages or the domain's values (same names)."""
    top = rules.basket_top_speed
    max_acceleration = rules.basket_max_acceleration or 10 * top
    lead = rules.reveal_lead_millis or 250
    reaction = (rules.min_reaction_millis or 150) + 60
    moves = []  # (start millis, end millis, from x, to x)
    at_millis, at_x = 0, rules.field_width // 2
    catches = []
    for spawned in sorted(objects, key=lambda o: (o.spawn_millis + o.fall_millis, o.object_id)):
        if spawned.points <= 0 or (keep is not None and len(catches) == keep):
            continue
        land = spawned.spawn_millis + spawned.fall_millis
        revealed = max(0, spawned.spawn_millis - lead)
        start = max(at_millis, revealed + reaction)
        seconds = (land - start) / 1_000
        distance = abs(spawned.x - at_x)
        if seconds <= 0:
            continue
        speed = math.pi / 2 * distance / seconds
        acceleration = math.pi**2 / 2 * distance / seconds**2
        if speed > 0.8 * top or acceleration > 0.7 * max_acceleration:
            continue
        moves.append((start, land, at_x, spawned.x))
        catches.append((spawned.object_id, land, spawned.x))
        at_millis, at_x = land, spawned.x

    def position(millis: int) -> int:
        x = rules.field_width // 2
        for start, end, origin, target in moves:
            if millis >= end:
                x = target
            elif millis > start:
                share = (1 - math.cos(math.pi * (millis - start) / (end - start))) / 2
                return round(origin + share * (target - origin))
            else:
                return x
        return x

    moments = sorted(
        {*range(0, rules.duration_millis + 1, TRACE_STEP_MILLIS), *(c[1] for c in catches)}
    )
    return HonestPlay(catches, [(millis, position(millis)) for millis in moments])


async def reveal_all(stub, clock, session) -> list:
    """Every object of a session, the clock moved (if need be) to the end of play."""
    end = session.start_time.ToMicroseconds() + session.rules.duration_millis * 1_000
    clock.set(max(clock.now_us(), end))
    call = stub.WatchCatchObjects(
        pb.WatchCatchObjectsRequest(session_id=session.session_id, member_id=session.member_id)
    )
    return [response.object async for response in call]


def submission(session, play: HonestPlay, claimed: int = 0, **changes) -> pb.SubmitCatchRequest:
    fields = dict(
        session_id=session.session_id,
        member_id=session.member_id,
        catches=[pb.Catch(object_id=o, catch_millis=m, basket_x=x) for o, m, x in play.catches],
        trace=[pb.BasketSample(millis=m, x=x) for m, x in play.trace],
        claimed_score=claimed,
    )
    fields.update(changes)
    return pb.SubmitCatchRequest(**fields)
