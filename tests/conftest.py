"""Fixtures shared by every test directory: a real ledger on port 0 over a temp
SQLite file (or a PostgreSQL schema where a directory parametrises `engine`),
the session's PostgreSQL server, and the Node client packages."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.kit.clock import ManualClock
from services.kit.server import ServiceHost
from services.ledger.server import LedgerSettings, build_server
from tests.support.gateway import node_packages
from tests.support.metrics import NO_METRICS
from tests.support.postgres import database_for, shared_server, stop_shared_server
from tools.postgres import LocalPostgres


@dataclass
class RunningLedger:
    host: ServiceHost
    clock: ManualClock
    stub: ledger_grpc.LedgerServiceStub
    target: str


@pytest.fixture(scope="session")
def postgres() -> LocalPostgres:
    """A real PostgreSQL 16 for the session, started on first use (never skipped)."""
    yield shared_server()
    stop_shared_server()


@pytest.fixture
def engine() -> str:
    """The storage engine of the services a test starts; tests/ledger runs both."""
    return "sqlite"


@pytest.fixture
def ledger_db(request, engine: str, tmp_path) -> str:
    """The ledger's db setting for this test: a SQLite file or a fresh PostgreSQL schema."""
    return database_for(request, engine, tmp_path, "ledger")


@pytest_asyncio.fixture
async def ledger(ledger_db: str) -> RunningLedger:
    """A real ledger server on a free port, driven by a ManualClock."""
    clock = ManualClock()
    # Tests sweep explicitly (SweepExpired); the schedule is tested on its own.
    settings = LedgerSettings(
        db_path=ledger_db, sweep_interval_seconds=10**9, metrics_listen=NO_METRICS
    )
    host = await build_server(settings, "127.0.0.1:0", clock)
    await host.start()
    target = f"127.0.0.1:{host.port}"
    async with grpc.aio.insecure_channel(target) as channel:
        yield RunningLedger(host, clock, ledger_grpc.LedgerServiceStub(channel), target)
    await host.stop(None)


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """The Node packages the project pins, installed by `make setup` (npm ci)."""
    installed = node_packages()
    if shutil.which("node") is None or installed is None:
        pytest.fail("Node 20+ and the client packages are required: run `make setup`")
    return installed
