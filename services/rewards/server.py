"""Wires the rewards service: settings, store, ledger and campaigns channels,
the outbox with one handler per kind, use cases, servicer and the relay."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Unpack

from loyalty.rewards.v1 import rewards_service_pb2 as pb
from loyalty.rewards.v1 import rewards_service_pb2_grpc as pb_grpc

from services.kit.clock import Clock, SystemClock
from services.kit.config import (
    CAMPAIGNS_ADDRESS,
    LEDGER_ADDRESS,
    REWARDS_ADDRESS,
    REWARDS_METRICS_ADDRESS,
    ServiceSettings,
    setting,
)
from services.kit.ledger_stream import poster_of
from services.kit.metrics import Figure, Metrics, labelled_gauge
from services.kit.outbox import LedgerOutbox, watch_backlog
from services.kit.outgoing import open_channel
from services.kit.server import ServiceBinding, ServiceHost, create_host
from services.kit.sqlite import StoreOptions
from services.kit.stores import UnitStore, store_for
from services.rewards.base import Context
from services.rewards.catalog import Catalog, StockHandlers
from services.rewards.codes import Codes
from services.rewards.ledger import RewardsLedger
from services.rewards.offers import OfferHandlers, Offers
from services.rewards.pg_store import PgRewardsStore
from services.rewards.profiles import CampaignsProfiles, MemberProfiles
from services.rewards.redemptions import RedemptionHandlers, Redemptions
from services.rewards.reports import Reports
from services.rewards.servicer import RewardsServicer
from services.rewards.store import RewardsStore, RewardsUnit

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RewardsService"].full_name


@dataclass(frozen=True, kw_only=True)
class RewardsSettings(ServiceSettings):
    env_prefix: ClassVar[str] = "REWARDS"
    # A file path (SQLite) or a postgresql:// URL (PostgreSQL, see pg_store.py).
    db_path: str = setting("var/rewards.db", "REWARDS_DB")
    listen: str = REWARDS_ADDRESS
    metrics_listen: str = REWARDS_METRICS_ADDRESS
    ledger_target: str = LEDGER_ADDRESS
    # Member tiers, segments and zones (the campaigns member profile, until progress lands).
    campaigns_target: str = CAMPAIGNS_ADDRESS
    ledger_timeout_seconds: float = 2.0
    # Transfers go over one PostTransfersStream (False: one unary call each).
    ledger_streaming: bool = True
    profile_timeout_seconds: float = 1.0
    profile_cache_seconds: float = 30.0
    relay_interval_seconds: float = 1.0


def rewards_store(db: Path | str, **options: Unpack[StoreOptions]) -> UnitStore[RewardsUnit]:
    """The rewards' store on the engine its db setting names (a path or a URL)."""
    return store_for(
        db,
        sqlite=lambda path: RewardsStore(path, **options),
        postgres=lambda url: PgRewardsStore(url, **options),
    )


def watch_codes(metrics: Metrics, codes: Codes) -> None:
    """The operator's gauge of the codes each code pool has left to hand out."""

    def families(left: dict[str, int]):
        return [
            labelled_gauge(
                "loyalty_rewards_codes_available",
                "Codes not yet handed out, by code-pool reward (archived rewards aside).",
                ("reward",),
                [Figure((reward_id,), free) for reward_id, free in left.items()],
            )
        ]

    metrics.sample("codes_left", codes.left, families)


async def build_server(
    settings: RewardsSettings,
    address: str | None = None,
    clock: Clock | None = None,
    profiles: MemberProfiles | None = None,
) -> ServiceHost:
    """The rewards service on `address` (port 0 picks a free port). start() opens
    the store, settles what a crash left pending, then relays in the background."""
    clock = clock or SystemClock()
    metrics = Metrics.of(settings)
    store = rewards_store(settings.db_path, metrics=metrics.store)
    ledger_channel = open_channel(settings.ledger_target)
    campaigns_channel = open_channel(settings.campaigns_target)
    ledger = RewardsLedger(ledger_channel, settings.ledger_timeout_seconds)
    handlers = {
        **RedemptionHandlers(clock).handlers(),
        **StockHandlers(clock).handlers(),
        **OfferHandlers(clock).handlers(),
    }
    # Redemptions post two small chains each, many at once: over one stream they
    # join the ledger's group commits without a call each.
    poster = poster_of(ledger.stub, streaming=settings.ledger_streaming)
    outbox = LedgerOutbox(
        store,
        poster,
        clock,
        handlers,
        timeout=settings.ledger_timeout_seconds,
        metrics=metrics,
    )
    context = Context(
        store=store,
        clock=clock,
        ledger=ledger,
        outbox=outbox,
        profiles=profiles
        or CampaignsProfiles(
            campaigns_channel,
            clock,
            settings.profile_timeout_seconds,
            settings.profile_cache_seconds,
        ),
    )
    redemptions = Redemptions(context)
    codes = Codes(context)
    servicer = RewardsServicer(
        Catalog(context),
        codes,
        redemptions,
        Offers(context, redemptions),
        Reports(context),
    )
    watch_backlog(metrics, store, clock)
    watch_codes(metrics, codes)
    host = create_host(
        [ServiceBinding(pb_grpc.add_RewardsServiceServicer_to_server, servicer, SERVICE_NAME)],
        address or settings.listen,
        metrics=metrics,
    )
    relay: list[asyncio.Task] = []

    async def open_store() -> None:
        await store.open()
        relay.append(asyncio.create_task(_recover_then_relay(outbox, settings)))

    async def close_store() -> None:
        for task in relay:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await poster.close()
        await ledger_channel.close()
        await campaigns_channel.close()
        await store.close()

    host.on_start.append(open_store)
    host.on_stop.append(close_store)
    return host


async def _recover_then_relay(outbox: LedgerOutbox, settings: RewardsSettings) -> None:
    """What a crash left pending first (without waiting for the ledger to be up
    before serving), then the relay on its schedule."""
    with contextlib.suppress(Exception):
        await outbox.recover()
    await outbox.run_relay(settings.relay_interval_seconds)
