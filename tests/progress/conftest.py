"""Fixtures for progress: a real ledger, fake campaigns and games feeds, and a
real progress server on port 0 following them, all on one ManualClock."""

from __future__ import annotations

from dataclasses import dataclass

import pytest_asyncio
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from loyalty.progress.v1 import progress_service_pb2_grpc as progress_grpc

from services.kit.clock import ManualClock
from services.kit.server import ServiceHost
from tests.support.ledger import open_program, start_ledger
from tests.support.progress import at, start_progress
from tests.support.upstream import FakeUpstream


@dataclass
class Running:
    clock: ManualClock
    ledger: ledger_grpc.LedgerServiceStub
    upstream: FakeUpstream
    host: ServiceHost
    progress: progress_grpc.ProgressServiceStub
    ledger_target: str


@pytest_asyncio.fixture
async def running(tmp_path):
    clock = ManualClock(at(2026, 3, 2, 9))
    ledger_host, ledger_channel, ledger = await start_ledger(tmp_path / "ledger.db", clock)
    await open_program(ledger)
    upstream = FakeUpstream()
    await upstream.start()
    target = f"127.0.0.1:{ledger_host.port}"
    host, channel, progress = await start_progress(
        tmp_path / "progress.db", clock, target, upstream.target
    )
    try:
        yield Running(clock, ledger, upstream, host, progress, target)
    finally:
        await channel.close()
        await host.stop(None)
        await upstream.stop()
        await ledger_channel.close()
        await ledger_host.stop(None)
