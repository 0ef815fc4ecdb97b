"""Fixtures: a real campaigns server on a free port beside the shared real
ledger, one ManualClock for both; and the same use cases with no server at all,
over a temporary store and an in-memory ledger. Both run on each engine (a
SQLite file, a PostgreSQL schema), unless a test pins one."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import pytest_asyncio
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as pb_grpc
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.campaigns.server import Campaigns, CampaignsSettings, assemble
from services.kit.clock import ManualClock
from tests.support import deadlines
from tests.support.campaigns import RunningCampaigns, start_campaigns
from tests.support.fake_ledger import FakeLedger
from tests.support.metrics import NO_METRICS
from tests.support.postgres import both_engines, database_for  # noqa: F401 (a fixture)


@pytest.fixture
def campaigns_db(request, engine: str, tmp_path) -> str:
    """The campaigns db setting for this test: a SQLite file or a fresh PostgreSQL schema."""
    return database_for(request, engine, tmp_path, "campaigns")


@pytest_asyncio.fixture
async def campaigns(ledger, campaigns_db) -> RunningCampaigns:
    db_path = campaigns_db
    host, channel = await start_campaigns(ledger.target, ledger.clock, db_path)
    settings = CampaignsSettings(
        db_path=db_path, ledger_target=ledger.target, metrics_listen=NO_METRICS
    )
    async with channel, deadlines.channel(ledger.target) as ledger_channel:
        yield RunningCampaigns(
            host,
            pb_grpc.CampaignsServiceStub(channel),
            ledger_grpc.LedgerServiceStub(ledger_channel),
            ledger.clock,
            settings,
        )
    await host.stop(None)


@dataclass
class ServiceUnderTest:
    """The campaigns use cases over a temporary SQLite store and an in-memory
    ledger, with no gRPC in between (the service-test tier)."""

    campaigns: Campaigns
    ledger: FakeLedger
    clock: ManualClock
    settings: CampaignsSettings


@pytest_asyncio.fixture
async def service(campaigns_db) -> ServiceUnderTest:
    clock = ManualClock()
    fake = FakeLedger()
    # The relay runs by the injected clock; a test moves the clock to let it.
    settings = CampaignsSettings(db_path=campaigns_db, ledger_timeout_seconds=1.0)
    campaigns = assemble(settings, fake, clock)
    await campaigns.start()
    yield ServiceUnderTest(campaigns, fake, clock, settings)
    await campaigns.stop()
