"""Wires the ledger: settings, store, service, servicer, background sweeper."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Unpack

from loyalty.ledger.v1 import ledger_service_pb2 as pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as pb_grpc

from services.kit.clock import Clock, SystemClock
from services.kit.config import LEDGER_ADDRESS, LEDGER_METRICS_ADDRESS, ServiceSettings, setting
from services.kit.feeds import CommitSignal
from services.kit.metrics import Metrics
from services.kit.server import ServiceBinding, ServiceHost, create_host
from services.kit.sqlite import StoreOptions
from services.kit.stores import UnitStore, store_for
from services.ledger.pg_store import PgLedgerStore
from services.ledger.service import LedgerService
from services.ledger.servicer import LedgerServicer
from services.ledger.store import LedgerStore, LedgerUnit

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LedgerService"].full_name


@dataclass(frozen=True, kw_only=True)
class LedgerSettings(ServiceSettings):
    env_prefix: ClassVar[str] = "LEDGER"
    # A file path (SQLite) or a postgresql:// URL (PostgreSQL, see pg_store.py).
    db_path: str = setting("var/ledger.db", "LEDGER_DB")
    listen: str = LEDGER_ADDRESS
    metrics_listen: str = LEDGER_METRICS_ADDRESS
    sweep_interval_seconds: float = 1.0


def ledger_store(db: Path | str, **options: Unpack[StoreOptions]) -> UnitStore[LedgerUnit]:
    """The ledger's store on the engine its db setting names (a path or a URL)."""
    return store_for(
        db,
        sqlite=lambda path: LedgerStore(path, **options),
        postgres=lambda url: PgLedgerStore(url, **options),
    )


async def build_server(
    settings: LedgerSettings, address: str | None = None, clock: Clock | None = None
) -> ServiceHost:
    """The ledger on `address` (port 0 picks a free port); start() opens the store."""
    clock = clock or SystemClock()
    commits = CommitSignal()
    metrics = Metrics.of(settings)
    store = ledger_store(settings.db_path, on_commit=commits.notify, metrics=metrics.store)
    service = LedgerService(store, clock, commits)
    host = create_host(
        [
            ServiceBinding(
                pb_grpc.add_LedgerServiceServicer_to_server, LedgerServicer(service), SERVICE_NAME
            )
        ],
        address or settings.listen,
        metrics=metrics,
    )
    sweeper: list[asyncio.Task] = []

    async def open_store() -> None:
        await store.open()
        sweeper.append(asyncio.create_task(service.run_sweeper(settings.sweep_interval_seconds)))

    async def close_store() -> None:
        for task in sweeper:
            task.cancel()
        await asyncio.gather(*sweeper, return_exceptions=True)
        await store.close()

    host.on_start.append(open_store)
    host.on_stop.append(close_store)
    return host
