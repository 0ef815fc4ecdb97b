"""Wires the games service: settings, store, ledger channel, outbox and its
handlers, use cases, servicer, and the outbox relay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Unpack

import grpc
from loyalty.games.v1 import games_service_pb2 as pb
from loyalty.games.v1 import games_service_pb2_grpc as pb_grpc
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.games.base import Games, new_server_seed
from services.games.catch import Catch, CatchHandlers
from services.games.ledger import GamesLedger
from services.games.pg_store import PgGamesStore
from services.games.plays import Plays
from services.games.seeds import Seeds
from services.games.servicer import GamesServicer
from services.games.spins import SpinHandlers, Spins
from services.games.store import GamesStore, GamesUnit
from services.games.wheels import WHEEL_STOCKING, PoolStock, StockingHandler, Wheels
from services.kit.clock import Clock, SystemClock
from services.kit.config import (
    GAMES_ADDRESS,
    GAMES_METRICS_ADDRESS,
    LEDGER_ADDRESS,
    ServiceSettings,
    setting,
)
from services.kit.feeds import CommitSignal
from services.kit.ledger_stream import poster_of
from services.kit.metrics import Figure, Metrics, labelled_gauge
from services.kit.outbox import LedgerOutbox, watch_backlog
from services.kit.outgoing import open_channel
from services.kit.server import ServiceBinding, ServiceHost, create_host
from services.kit.sqlite import StoreOptions
from services.kit.stores import UnitStore, store_for

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GamesService"].full_name


@dataclass(frozen=True, kw_only=True)
class GamesSettings(ServiceSettings):
    env_prefix: ClassVar[str] = "GAMES"
    # A file path (SQLite) or a postgresql:// URL (PostgreSQL, see pg_store.py).
    db_path: str = setting("var/games.db", "GAMES_DB")
    listen: str = GAMES_ADDRESS
    metrics_listen: str = GAMES_METRICS_ADDRESS
    ledger_target: str = LEDGER_ADDRESS
    ledger_timeout_seconds: float = 2.0
    # Transfers go over one PostTransfersStream (False: one unary call each).
    ledger_streaming: bool = True
    relay_interval_seconds: float = 1.0


def games_store(db: Path | str, **options: Unpack[StoreOptions]) -> UnitStore[GamesUnit]:
    """The games' store on the engine its db setting names (a path or a URL)."""
    return store_for(
        db,
        sqlite=lambda path: GamesStore(path, **options),
        postgres=lambda url: PgGamesStore(url, **options),
    )


def outbox_handlers(clock: Clock) -> dict:
    """One handler per kind of outbox entry the games record."""
    return {
        **SpinHandlers(clock).kinds(),
        **CatchHandlers(clock).kinds(),
        WHEEL_STOCKING: StockingHandler(clock),
    }


def watch_prize_stock(metrics: Metrics, wheels: Wheels) -> None:
    """The operator's gauge of what each wheel's prize pools can still pay."""

    def families(pools: list[PoolStock]):
        return [
            labelled_gauge(
                "loyalty_games_prize_pool_available",
                "What a wheel's prize pool can still pay (prize units, or points for a points"
                " pool), by wheel and unit: the pool's available balance in the ledger.",
                ("wheel", "unit"),
                [Figure((pool.wheel_id, pool.unit), pool.available) for pool in pools],
            )
        ]

    metrics.sample("prize_stock", wheels.prize_stock, families)


async def build_server(
    settings: GamesSettings,
    address: str | None = None,
    clock: Clock | None = None,
    seed_source: Callable[[], bytes] | None = None,
) -> ServiceHost:
    """The games service on `address` (port 0 picks a free port). start() opens
    the store and settles what a crash left pending before it serves; the relay
    then settles in the background what an unreachable ledger leaves."""
    clock = clock or SystemClock()
    commits = CommitSignal()
    metrics = Metrics.of(settings)
    store = games_store(settings.db_path, on_commit=commits.notify, metrics=metrics.store)
    channel = open_channel(settings.ledger_target)
    ledger = GamesLedger(
        ledger_grpc.LedgerServiceStub(channel),
        settings.ledger_timeout_seconds,
        connected=lambda: channel.get_state() == grpc.ChannelConnectivity.READY,
    )
    poster = poster_of(ledger.stub, streaming=settings.ledger_streaming)
    outbox = LedgerOutbox(
        store,
        poster,
        clock,
        outbox_handlers(clock),
        timeout=settings.ledger_timeout_seconds,
        metrics=metrics,
    )
    games = Games(
        store, ledger, outbox, clock, new_seed=seed_source or new_server_seed, commits=commits
    )
    wheels = Wheels(games)
    servicer = GamesServicer(wheels, Seeds(games), Spins(games), Plays(games), Catch(games))
    watch_backlog(metrics, store, clock)
    watch_prize_stock(metrics, wheels)
    host = create_host(
        [ServiceBinding(pb_grpc.add_GamesServiceServicer_to_server, servicer, SERVICE_NAME)],
        address or settings.listen,
        metrics=metrics,
    )
    relay: list[asyncio.Task] = []

    async def open_store() -> None:
        await store.open()
        await outbox.recover()
        relay.append(asyncio.create_task(outbox.run_relay(settings.relay_interval_seconds)))

    async def close_store() -> None:
        for task in relay:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await poster.close()
        await channel.close()
        await store.close()

    host.on_start.append(open_store)
    host.on_stop.append(close_store)
    return host
