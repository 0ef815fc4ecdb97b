"""Wires the campaigns service: settings, store, ledger channel, outbox, servicer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loyalty.campaigns.v1 import campaigns_service_pb2 as pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as pb_grpc
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.campaigns.ledger_client import LedgerClient
from services.campaigns.service import CampaignsService
from services.campaigns.servicer import CampaignsServicer
from services.campaigns.store import CampaignsStore
from services.campaigns.tracking import Policy
from services.kit.clock import Clock, SystemClock
from services.kit.config import env_float, env_int, env_path, env_str
from services.kit.outbox import LedgerOutbox
from services.kit.outgoing import open_channel
from services.kit.server import ServiceBinding, ServiceHost, create_host

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CampaignsService"].full_name


@dataclass(frozen=True)
class CampaignsSettings:
    db_path: Path
    ledger_target: str = "127.0.0.1:50051"
    listen: str = "127.0.0.1:50053"
    lateness_seconds: int = 72 * 3600
    max_future_seconds: int = 300
    points_ttl_days: int = 365
    surprise_key: str = "loyalty-arcade-dev-surprise-key"
    ledger_timeout_seconds: float = 2.0
    log_level: str = "info"
    shutdown_grace_seconds: float = 5.0

    @classmethod
    def from_env(cls) -> CampaignsSettings:
        return cls(
            db_path=env_path("CAMPAIGNS_DB", "var/campaigns.db"),
            ledger_target=env_str("CAMPAIGNS_LEDGER_TARGET", "127.0.0.1:50051"),
            listen=env_str("CAMPAIGNS_LISTEN", "127.0.0.1:50053"),
            lateness_seconds=env_int("CAMPAIGNS_LATENESS_SECONDS", 72 * 3600),
            max_future_seconds=env_int("CAMPAIGNS_MAX_FUTURE_SECONDS", 300),
            points_ttl_days=env_int("CAMPAIGNS_POINTS_TTL_DAYS", 365),
            surprise_key=env_str("CAMPAIGNS_SURPRISE_KEY", "loyalty-arcade-dev-surprise-key"),
            ledger_timeout_seconds=env_float("CAMPAIGNS_LEDGER_TIMEOUT_SECONDS", 2.0),
            log_level=env_str("LOG_LEVEL", "info"),
            shutdown_grace_seconds=env_float("SHUTDOWN_GRACE_SECONDS", 5.0),
        )

    @property
    def policy(self) -> Policy:
        return Policy(
            lateness_seconds=self.lateness_seconds,
            max_future_seconds=self.max_future_seconds,
            points_ttl_days=self.points_ttl_days,
            surprise_key=self.surprise_key.encode(),
        )


async def build_server(
    settings: CampaignsSettings, address: str | None = None, clock: Clock | None = None
) -> ServiceHost:
    """Campaigns on `address` (port 0 picks a free port); start() opens the store,
    settles what a crash left pending and starts the transition tracker."""
    clock = clock or SystemClock()
    store = CampaignsStore(settings.db_path)
    channel = open_channel(settings.ledger_target)
    stub = ledger_grpc.LedgerServiceStub(channel)
    outbox = LedgerOutbox(store.writer, stub, clock, timeout=settings.ledger_timeout_seconds)
    service = CampaignsService(
        store, LedgerClient(stub, settings.ledger_timeout_seconds), outbox, clock, settings.policy
    )
    host = create_host(
        [
            ServiceBinding(
                pb_grpc.add_CampaignsServiceServicer_to_server,
                CampaignsServicer(service),
                SERVICE_NAME,
            )
        ],
        address or settings.listen,
    )

    async def open_store() -> None:
        Path(settings.db_path).parent.mkdir(parents=True, exist_ok=True)
        await store.open()
        await service.start()

    async def close_store() -> None:
        await service.stop()
        await channel.close()
        await store.close()

    host.on_start.append(open_store)
    host.on_stop.append(close_store)
    return host
