"""Fixtures shared by every test directory: a real ledger on port 0 over a temp SQLite file."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest_asyncio
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.kit.clock import ManualClock
from services.kit.server import ServiceHost
from services.ledger.server import LedgerSettings, build_server


@dataclass
class RunningLedger:
    host: ServiceHost
    clock: ManualClock
    stub: ledger_grpc.LedgerServiceStub
    target: str


@pytest_asyncio.fixture
async def ledger(tmp_path) -> RunningLedger:
    """A real ledger server on a free port, driven by a ManualClock."""
    clock = ManualClock()
    # Tests sweep explicitly (SweepExpired); the schedule is tested on its own.
    settings = LedgerSettings(db_path=tmp_path / "ledger.db", sweep_interval_seconds=10**9)
    host = await build_server(settings, "127.0.0.1:0", clock)
    await host.start()
    target = f"127.0.0.1:{host.port}"
    async with grpc.aio.insecure_channel(target) as channel:
        yield RunningLedger(host, clock, ledger_grpc.LedgerServiceStub(channel), target)
    await host.stop(None)
