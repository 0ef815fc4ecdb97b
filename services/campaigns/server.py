"""Wires the campaigns service: settings, store, ledger channel, outbox with one
handler per kind, the use cases and the servicer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Unpack

import structlog
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as pb_grpc
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from loyalty.progress.v1 import progress_service_pb2_grpc as progress_grpc

from services.campaigns import settlement
from services.campaigns.base import Context, Policy
from services.campaigns.catalog import Catalog
from services.campaigns.feed import ActivityFeed
from services.campaigns.ledger import LedgerClient
from services.campaigns.management import Management
from services.campaigns.members import Members
from services.campaigns.pg_store import PgCampaignsStore
from services.campaigns.public import PublicCampaigns
from services.campaigns.refunds import Refunds
from services.campaigns.servicer import CampaignsServicer
from services.campaigns.stats import CampaignStats
from services.campaigns.store import CampaignsStore, SqliteCampaignsStore
from services.campaigns.tiers import FEED, TierFeed, opener
from services.campaigns.tracking import Tracking
from services.campaigns.transitions import TransitionTracker
from services.kit.clock import Clock, SystemClock
from services.kit.config import (
    CAMPAIGNS_ADDRESS,
    CAMPAIGNS_METRICS_ADDRESS,
    LEDGER_ADDRESS,
    ServiceSettings,
    setting,
)
from services.kit.feeds import CommitSignal, FeedFollower, open_feed_channel, watch_feeds
from services.kit.ledger_stream import LedgerPoster, poster_of
from services.kit.metrics import Figure, Metrics, labelled_gauge
from services.kit.outbox import LedgerOutbox, watch_backlog
from services.kit.outgoing import open_channel
from services.kit.server import ServiceBinding, ServiceHost, create_host
from services.kit.sqlite import StoreOptions
from services.kit.stores import store_for

log = structlog.get_logger()

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CampaignsService"].full_name


@dataclass(frozen=True, kw_only=True)
class CampaignsSettings(ServiceSettings):
    env_prefix: ClassVar[str] = "CAMPAIGNS"
    # A file path (SQLite) or a postgresql:// URL (PostgreSQL, see pg_store.py).
    db_path: str = setting("var/campaigns.db", "CAMPAIGNS_DB")
    listen: str = CAMPAIGNS_ADDRESS
    metrics_listen: str = CAMPAIGNS_METRICS_ADDRESS
    ledger_target: str = LEDGER_ADDRESS
    # How late an activity may arrive, and how far ahead of the clock it may be.
    lateness_seconds: int = 72 * 3600
    max_future_seconds: int = 300
    # Earned points expire this long after the activity happened.
    points_ttl_days: int = 365
    # The HMAC key of surprise draws: set a secret one in production.
    surprise_key: str = "loyalty-arcade-dev-surprise-key"
    ledger_timeout_seconds: float = 2.0
    # Transfers go over one PostTransfersStream (False: one unary call each).
    ledger_streaming: bool = True
    # How often the outbox relay looks for entries their own request left behind.
    relay_interval_seconds: float = 1.0
    # Progress, whose WatchTierChanges gives the computed tiers conditions match.
    # Empty (the default; tools.suite sets it): the profile's manual tier only.
    progress_target: str = ""
    # The tier feed's deadline: it is reopened from the stored cursor after this.
    feed_recycle_seconds: float = 3600.0

    @property
    def policy(self) -> Policy:
        return Policy(
            lateness_seconds=self.lateness_seconds,
            max_future_seconds=self.max_future_seconds,
            points_ttl_days=self.points_ttl_days,
            surprise_key=self.surprise_key.encode(),
        )


@dataclass(frozen=True)
class Campaigns:
    """The service's use cases over its store and a ledger stub, without transport:
    build_server serves them over gRPC, the service tests call them directly."""

    store: CampaignsStore
    poster: LedgerPoster
    outbox: LedgerOutbox
    transitions: TransitionTracker
    members: Members
    management: Management
    tracking: Tracking
    stats: CampaignStats
    public: PublicCampaigns
    feed: ActivityFeed
    tiers: TierFeed
    relay_interval_seconds: float
    relay: list[asyncio.Task] = field(default_factory=list)

    async def start(self) -> None:
        await self.store.open()
        await self.transitions.start()
        # What a crash left recorded but not applied is finished before serving.
        await self.outbox.recover()
        self.relay.append(asyncio.create_task(self.outbox.run_relay(self.relay_interval_seconds)))

    async def stop(self) -> None:
        for task in self.relay:
            task.cancel()
        await asyncio.gather(*self.relay, return_exceptions=True)
        self.relay.clear()
        await self.transitions.stop()
        await self.poster.close()
        await self.store.close()


def campaigns_store(db: Path | str, **options: Unpack[StoreOptions]) -> CampaignsStore:
    """The service's store on the engine its db setting names (a path or a URL)."""
    return store_for(
        db,
        sqlite=lambda path: SqliteCampaignsStore(path, **options),
        postgres=lambda url: PgCampaignsStore(url, **options),
    )


def watch_budgets(metrics: Metrics, store: CampaignsStore) -> None:
    """The operator's gauges of each campaign's budget, by this service's bookkeeping."""

    async def read():
        return await store.read(lambda unit: unit.open_budgets())

    def families(budgets):
        return [
            labelled_gauge(
                "loyalty_campaigns_budget_funded_points",
                "Points funded into each campaign's budget (cancelled and archived aside).",
                ("campaign",),
                [Figure((campaign,), b.funded) for campaign, b in budgets.items()],
            ),
            labelled_gauge(
                "loyalty_campaigns_budget_remaining_points",
                "Points left in each campaign's budget (cancelled and archived aside).",
                ("campaign",),
                [Figure((campaign,), b.remaining) for campaign, b in budgets.items()],
            ),
        ]

    metrics.sample("budgets", read, families)


def assemble(
    settings: CampaignsSettings,
    ledger_stub: ledger_grpc.LedgerServiceStub,
    clock: Clock,
    metrics: Metrics | None = None,
) -> Campaigns:
    """`metrics` (default: a registry of its own, served nowhere) counts what the
    store, the outbox and the budgets do."""
    metrics = metrics or Metrics()
    commits = CommitSignal()
    store = campaigns_store(settings.db_path, on_commit=commits.notify, metrics=metrics.store)
    catalog = Catalog()
    transitions = TransitionTracker(store, catalog, clock, commits)
    poster = poster_of(ledger_stub, streaming=settings.ledger_streaming)
    outbox = LedgerOutbox(
        settlement.SettlingStore(store, transitions),
        poster,
        clock,
        settlement.handlers(catalog, clock),
        timeout=settings.ledger_timeout_seconds,
        metrics=metrics,
    )
    watch_backlog(metrics, store, clock)
    watch_budgets(metrics, store)
    context = Context(
        store=store,
        ledger=LedgerClient(ledger_stub, settings.ledger_timeout_seconds),
        outbox=outbox,
        clock=clock,
        policy=settings.policy,
        catalog=catalog,
        transitions=transitions,
    )
    return Campaigns(
        store=store,
        poster=poster,
        outbox=outbox,
        transitions=transitions,
        members=Members(context),
        management=Management(context),
        tracking=Tracking(context, Refunds(context)),
        stats=CampaignStats(context),
        public=PublicCampaigns(context),
        feed=ActivityFeed(store, commits),
        tiers=TierFeed(store),
        relay_interval_seconds=settings.relay_interval_seconds,
    )


async def build_server(
    settings: CampaignsSettings, address: str | None = None, clock: Clock | None = None
) -> ServiceHost:
    """Campaigns on `address` (port 0 picks a free port); start() opens the store,
    settles what a crash left pending and starts the transition tracker and the relay."""
    clock = clock or SystemClock()
    channel = open_channel(settings.ledger_target)
    metrics = Metrics.of(settings)
    campaigns = assemble(settings, ledger_grpc.LedgerServiceStub(channel), clock, metrics)
    progress_channel = (
        open_feed_channel(settings.progress_target) if settings.progress_target else None
    )
    followers = []
    if progress_channel is not None:
        stub = progress_grpc.ProgressServiceStub(progress_channel)
        followers.append(
            FeedFollower(
                FEED,
                opener(stub, settings.feed_recycle_seconds),
                campaigns.tiers.cursor,
                campaigns.tiers.apply,
                now_us=clock.now_us,
            )
        )
    else:
        log.warning("tier_feed_not_followed", reason="CAMPAIGNS_PROGRESS_TARGET is empty")
    watch_feeds(metrics, followers)
    host = create_host(
        [
            ServiceBinding(
                pb_grpc.add_CampaignsServiceServicer_to_server,
                CampaignsServicer(campaigns),
                SERVICE_NAME,
            )
        ],
        address or settings.listen,
        metrics=metrics,
    )

    host.followers = followers  # type: ignore[attr-defined]  # tests wait on them
    tasks: list[asyncio.Task] = []

    async def start() -> None:
        await campaigns.start()
        tasks.extend(asyncio.create_task(f.run(), name=f"feed:{f.state.name}") for f in followers)

    async def close() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await campaigns.stop()
        await channel.close()
        if progress_channel is not None:
            await progress_channel.close()

    host.on_start.append(start)
    host.on_stop.append(close)
    return host
