"""A real campaigns server on port 0 beside the shared real ledger, one ManualClock for both."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest_asyncio
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as pb_grpc

from services.campaigns.server import CampaignsSettings, build_server
from services.kit.server import ServiceHost


@dataclass
class RunningCampaigns:
    host: ServiceHost
    stub: pb_grpc.CampaignsServiceStub
    ledger: object  # tests.conftest.RunningLedger
    settings: CampaignsSettings

    @property
    def clock(self):
        return self.ledger.clock


async def start_campaigns(ledger, db_path: Path) -> tuple[ServiceHost, grpc.aio.Channel]:
    settings = CampaignsSettings(db_path=db_path, ledger_target=ledger.target)
    host = await build_server(settings, "127.0.0.1:0", ledger.clock)
    await host.start()
    return host, grpc.aio.insecure_channel(f"127.0.0.1:{host.port}")


@pytest_asyncio.fixture
async def campaigns(ledger, tmp_path) -> RunningCampaigns:
    host, channel = await start_campaigns(ledger, tmp_path / "campaigns.db")
    settings = CampaignsSettings(db_path=tmp_path / "campaigns.db", ledger_target=ledger.target)
    async with channel:
        yield RunningCampaigns(host, pb_grpc.CampaignsServiceStub(channel), ledger, settings)
    await host.stop(None)
