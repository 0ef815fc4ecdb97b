"""Wires the games service: settings, store, ledger channel, outbox relay, servicer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loyalty.games.v1 import games_service_pb2 as pb
from loyalty.games.v1 import games_service_pb2_grpc as pb_grpc

from services.games.catch import CatchService
from services.games.ledger import GamesLedger
from services.games.service import GamesService, KeyedLocks
from services.games.servicer import GamesServicer
from services.games.store import GamesStore
from services.kit.clock import Clock, SystemClock
from services.kit.config import env_float, env_path, env_str
from services.kit.outbox import LedgerOutbox
from services.kit.outgoing import open_channel
from services.kit.server import ServiceBinding, ServiceHost, create_host

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GamesService"].full_name


@dataclass(frozen=True)
class GamesSettings:
    db_path: Path
    listen: str = "127.0.0.1:50052"
    ledger_target: str = "127.0.0.1:50051"
    ledger_timeout_seconds: float = 2.0
    relay_interval_seconds: float = 1.0
    log_level: str = "info"
    shutdown_grace_seconds: float = 5.0

    @classmethod
    def from_env(cls) -> GamesSettings:
        return cls(
            db_path=env_path("GAMES_DB", "var/games.db"),
            listen=env_str("GAMES_LISTEN", "127.0.0.1:50052"),
            ledger_target=env_str("GAMES_LEDGER_TARGET", "127.0.0.1:50051"),
            ledger_timeout_seconds=env_float("GAMES_LEDGER_TIMEOUT_SECONDS", 2.0),
            relay_interval_seconds=env_float("GAMES_RELAY_INTERVAL_SECONDS", 1.0),
            log_level=env_str("LOG_LEVEL", "info"),
            shutdown_grace_seconds=env_float("SHUTDOWN_GRACE_SECONDS", 5.0),
        )


async def build_server(
    settings: GamesSettings,
    address: str | None = None,
    clock: Clock | None = None,
    seed_source: Callable[[], bytes] | None = None,
) -> ServiceHost:
    """The games service on `address` (port 0 picks a free port). start()
    opens the store, settles what a crash left pending, then relays in the background."""
    clock = clock or SystemClock()
    store = GamesStore(settings.db_path)
    channel = open_channel(settings.ledger_target)
    accounts = GamesLedger(channel, settings.ledger_timeout_seconds)
    outbox = LedgerOutbox(
        store.writer, accounts.stub, clock, timeout=settings.ledger_timeout_seconds
    )
    extra = {"seed_source": seed_source} if seed_source else {}
    members = KeyedLocks()
    catch = CatchService(store, accounts, outbox, clock, members, **extra)
    service = GamesService(store, accounts, outbox, clock, members, catch=catch, **extra)
    host = create_host(
        [
            ServiceBinding(
                pb_grpc.add_GamesServiceServicer_to_server,
                GamesServicer(service, catch),
                SERVICE_NAME,
            )
        ],
        address or settings.listen,
    )
    relay: list[asyncio.Task] = []

    async def open_store() -> None:
        await store.open()
        relay.append(asyncio.create_task(service.relay(settings.relay_interval_seconds)))

    async def close_store() -> None:
        for task in relay:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await channel.close()
        await store.close()

    host.on_start.append(open_store)
    host.on_stop.append(close_store)
    return host
