"""Wires member progress: settings, store, use cases, servicer, the feed
followers, the rewards relay and the tier reviews."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Unpack

import grpc
import structlog
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from loyalty.progress.v1 import progress_service_pb2 as pb
from loyalty.progress.v1 import progress_service_pb2_grpc as pb_grpc

from services.kit.clock import Clock, SystemClock
from services.kit.config import (
    CAMPAIGNS_ADDRESS,
    GAMES_ADDRESS,
    LEDGER_ADDRESS,
    PROGRESS_ADDRESS,
    PROGRESS_METRICS_ADDRESS,
    ServiceSettings,
    setting,
)
from services.kit.feeds import (
    FEED_CHANNEL_OPTIONS,
    CatchUp,
    CommitSignal,
    FeedFollower,
    open_feed_channel,
    watch_feeds,
)
from services.kit.ledger_accounts import LedgerAccounts
from services.kit.metrics import Figure, Metrics, labelled_gauge
from services.kit.outbox import watch_backlog
from services.kit.outgoing import open_channel
from services.kit.server import ServiceBinding, ServiceHost, create_host
from services.kit.sqlite import StoreOptions
from services.kit.stores import UnitStore, store_for
from services.progress.adapters import campaigns, games, ledger
from services.progress.adapters.contract import streaming
from services.progress.catalog import CatalogUseCases
from services.progress.feeding import FeedUseCases
from services.progress.members import MemberUseCases, TierMembers
from services.progress.pg_store import PgProgressStore
from services.progress.rewards import Rewards
from services.progress.servicer import ProgressServicer, UseCases
from services.progress.store import ProgressStore, ProgressUnit
from services.progress.watching import WatchUseCases

log = structlog.get_logger()

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ProgressService"].full_name


@dataclass(frozen=True, kw_only=True)
class ProgressSettings(ServiceSettings):
    env_prefix: ClassVar[str] = "PROGRESS"
    # A file path (SQLite) or a postgresql:// URL (PostgreSQL, see pg_store.py).
    db_path: str = setting("var/progress.db", "PROGRESS_DB")
    listen: str = PROGRESS_ADDRESS
    metrics_listen: str = PROGRESS_METRICS_ADDRESS
    ledger_target: str = LEDGER_ADDRESS
    # Empty: that feed is not followed.
    campaigns_target: str = CAMPAIGNS_ADDRESS
    games_target: str = GAMES_ADDRESS
    ledger_timeout_seconds: float = 2.0
    # Transfers go over one PostTransfersStream (False: one unary call each).
    ledger_streaming: bool = True
    relay_interval_seconds: float = 1.0
    # How often tiers that may have run out, and definitions new to members, are looked at.
    review_interval_seconds: float = 5.0
    # Events applied per transaction at most, when catching up.
    feed_batch: int = 500
    # A feed whose events queue up, committed upstream longer ago than this, is
    # caught up with its members' evaluation deferred until it is done.
    catch_up_lag_seconds: float = 5.0
    # Each Watch stream's deadline: it is reopened from the cursor after this.
    feed_recycle_seconds: float = 3600.0


def progress_store(db: Path | str, **options: Unpack[StoreOptions]) -> UnitStore[ProgressUnit]:
    """Progress's store on the engine its db setting names (a path or a URL)."""
    return store_for(
        db,
        sqlite=lambda path: ProgressStore(path, **options),
        postgres=lambda url: PgProgressStore(url, **options),
    )


def watch_tiers(metrics: Metrics, members: MemberUseCases) -> None:
    """The operator's gauge of how many members each tier holds."""

    def families(tiers: list[TierMembers]):
        return [
            labelled_gauge(
                "loyalty_progress_tier_members",
                "Members in each tier of every active tier program.",
                ("program", "tier"),
                [Figure((t.program_id, t.tier_id), t.members) for t in tiers],
            )
        ]

    metrics.sample("tier_members", members.tier_members, families)


async def build_server(
    settings: ProgressSettings,
    address: str | None = None,
    clock: Clock | None = None,
) -> ServiceHost:
    """Progress on `address` (port 0 picks a free port); start() opens the store
    and starts following the feeds."""
    clock = clock or SystemClock()
    contracts = {campaigns.FEED: campaigns.CONTRACT, games.FEED: games.CONTRACT}
    commits = CommitSignal()
    metrics = Metrics.of(settings)
    store = progress_store(settings.db_path, on_commit=commits.notify, metrics=metrics.store)
    # The feeds on channels of their own; the ledger's calls on one that forwards
    # request ids (and finds a restarted ledger as fast as the feeds do).
    channels: dict[str, grpc.aio.Channel] = {}

    def feed_channel(target: str) -> grpc.aio.Channel:
        if target not in channels:
            channels[target] = open_feed_channel(target)
        return channels[target]

    ledger_channel = open_channel(settings.ledger_target, FEED_CHANNEL_OPTIONS)
    ledger_stub = ledger_grpc.LedgerServiceStub(ledger_channel)
    accounts = LedgerAccounts(ledger_stub, settings.ledger_timeout_seconds)
    rewards = Rewards(
        store,
        accounts,
        clock,
        settings.ledger_timeout_seconds,
        metrics,
        streaming=settings.ledger_streaming,
    )
    shared = (store, clock, rewards, commits)
    feeding = FeedUseCases(*shared)

    def follower(name: str, open_stream) -> FeedFollower:
        async def load_cursor() -> int:
            return await feeding.cursor(name)

        async def apply(batch) -> int:
            return await feeding.apply(name, batch)

        async def apply_behind(batch) -> int:
            return await feeding.apply(name, batch, defer=True)

        return FeedFollower(
            name,
            open_stream,
            load_cursor,
            apply,
            now_us=clock.now_us,
            batch=settings.feed_batch,
            catch_up=CatchUp(
                apply_behind, feeding.finish_catch_up, lag_seconds=settings.catch_up_lag_seconds
            ),
        )

    followers = [
        follower(
            ledger.FEED,
            ledger.opener(
                ledger_grpc.LedgerServiceStub(feed_channel(settings.ledger_target)),
                settings.feed_recycle_seconds,
            ),
        )
    ]
    for name, target, translate in (
        (campaigns.FEED, settings.campaigns_target, campaigns.item_of),
        (games.FEED, settings.games_target, games.item_of),
    ):
        contract = contracts.get(name)
        if not target or contract is None:
            log.warning("feed_not_followed", feed=name, target=target, has_rpc=contract is not None)
            continue
        followers.append(
            follower(
                name,
                streaming(contract, feed_channel(target), settings.feed_recycle_seconds, translate),
            )
        )
    members = MemberUseCases(*shared)
    cases = UseCases(
        catalog=CatalogUseCases(*shared),
        members=members,
        feeds=feeding,
        watch=WatchUseCases(*shared),
        rewards=rewards,
        feed_states=[f.state for f in followers],
    )
    host = create_host(
        [
            ServiceBinding(
                pb_grpc.add_ProgressServiceServicer_to_server,
                ProgressServicer(cases),
                SERVICE_NAME,
            )
        ],
        address or settings.listen,
        metrics=metrics,
    )
    watch_backlog(metrics, store, clock)
    watch_feeds(metrics, followers)
    watch_tiers(metrics, members)
    host.followers = followers  # type: ignore[attr-defined]  # tests wait on them
    host.cases = cases  # type: ignore[attr-defined]
    tasks: list[asyncio.Task] = []

    async def start() -> None:
        await store.open()
        tasks.append(asyncio.create_task(_recover_then_relay(rewards, settings)))
        tasks.append(asyncio.create_task(feeding.run_reviews(settings.review_interval_seconds)))
        tasks.extend(asyncio.create_task(f.run(), name=f"feed:{f.state.name}") for f in followers)

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await rewards.ledger.close()
        for open_one in (ledger_channel, *channels.values()):
            await open_one.close()
        await store.close()

    host.on_start.append(start)
    host.on_stop.append(stop)
    return host


async def _recover_then_relay(rewards: Rewards, settings: ProgressSettings) -> None:
    """Finish what a crash left recorded but not settled, then relay on schedule;
    in the background, so an unreachable ledger never holds up the start."""
    try:
        await rewards.outbox.recover()
    except Exception:
        log.exception("outbox_recovery_failed")
    await rewards.outbox.run_relay(settings.relay_interval_seconds)
