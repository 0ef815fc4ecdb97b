"""The kit's metrics: the HTTP endpoint, figures read at scrape time, the
writer's group commits and a feed follower's lag (calls: test_server_kit.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import urllib.error
import urllib.request

import pytest
import structlog
from grpc_health.v1 import health_pb2

from services.kit.clock import ManualClock
from services.kit.feeds import FeedFollower, FeedItem, watch_feeds
from services.kit.metrics import Figure, Metrics, StoreMetrics, labelled_gauge
from services.kit.metrics_http import MetricsEndpoint
from services.kit.sqlite import GroupCommitWriter
from tests.support.metrics import ANY_PORT, scrape

Request, Response = health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
STREAMS = "kit.test.Streams"


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def _status(url: str, method: str = "GET") -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10):
            return 200
    except urllib.error.HTTPError as error:
        return error.code


async def test_the_endpoint_serves_the_registry_on_its_own_port():
    metrics = Metrics(ANY_PORT, cache_seconds=0)
    metrics.sample(
        "pools",
        _answer({"a": 3, "b": 0}),
        lambda figures: [
            labelled_gauge(
                "loyalty_test_left",
                "What is left.",
                ["pool"],
                [Figure((pool,), value) for pool, value in figures.items()],
            )
        ],
    )
    endpoint = MetricsEndpoint(metrics)
    await endpoint.start()
    try:
        scraped = await scrape(endpoint.port)
        assert scraped.value("loyalty_test_left", pool="a") == 3
        assert scraped.value("loyalty_test_left", pool="b") == 0
        base = f"http://127.0.0.1:{endpoint.port}"
        assert await asyncio.to_thread(_status, f"{base}/nothing") == 404
        assert await asyncio.to_thread(_status, f"{base}/metrics", "POST") == 405
    finally:
        await endpoint.stop()
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(_status, f"{base}/metrics")


@pytest.mark.parametrize("listen", ["", "0", " "])
async def test_an_empty_or_zero_address_serves_nothing(listen):
    endpoint = MetricsEndpoint(Metrics(listen))
    await endpoint.start()
    assert endpoint.port == 0
    await endpoint.stop()


def _answer(value):
    async def read():
        return value

    return read


async def test_figures_are_read_once_per_interval_whatever_the_scrapes():
    reads = []

    async def read():
        reads.append(1)
        return len(reads)

    def families(count: int):
        return [labelled_gauge("loyalty_test_reads", "Reads.", [], [Figure((), count)])]

    cached = Metrics(cache_seconds=3600)
    cached.sample("reads", read, families)
    await asyncio.gather(cached.refresh(), cached.refresh())
    await cached.refresh()
    assert len(reads) == 1
    assert _value(cached, "loyalty_test_reads") == 1

    every_time = Metrics(cache_seconds=0)
    every_time.sample("reads", read, families)
    await every_time.refresh()
    await every_time.refresh()
    assert _value(every_time, "loyalty_test_reads") == 3


async def test_a_figure_that_cannot_be_read_is_left_out_and_logged():
    async def broken():
        raise sqlite3.OperationalError("disk I/O error")

    metrics = Metrics(cache_seconds=0)
    metrics.sample("broken", broken, lambda value: [labelled_gauge("loyalty_test_x", "X.", [], [])])
    with structlog.testing.capture_logs() as logs:
        await metrics.refresh()
    assert not any(f.name == "loyalty_test_x" for f in metrics.registry.collect())
    (failed,) = [entry for entry in logs if entry["event"] == "metrics_read_failed"]
    assert failed["figures"] == "broken" and "disk I/O error" in failed["error"]


async def test_the_writer_counts_each_group_commit_and_each_failed_one(tmp_path):
    metrics = Metrics()
    writer = GroupCommitWriter(
        tmp_path / "kit.db",
        [
            "CREATE TABLE parent (id TEXT PRIMARY KEY);\n"
            "CREATE TABLE child (parent_id TEXT REFERENCES parent (id)"
            " DEFERRABLE INITIALLY DEFERRED);\n"
        ],
        metrics=StoreMetrics(metrics.registry),
    )
    await writer.start()
    try:
        await asyncio.gather(
            *(
                writer.submit(lambda db, n=n: db.execute("INSERT INTO parent VALUES (?)", (n,)))
                for n in ("a", "b", "c")
            )
        )
        groups = _value(metrics, "loyalty_store_commit_writes_count")
        assert _value(metrics, "loyalty_store_commit_writes_sum") == 3
        assert 1 <= groups <= 3
        assert _value(metrics, "loyalty_store_commit_duration_seconds_count") == groups
        # A deferred constraint fails at COMMIT: the whole group is refused.
        with pytest.raises(sqlite3.IntegrityError):
            await writer.submit(lambda db: db.execute("INSERT INTO child VALUES ('nobody')"))
        assert _value(metrics, "loyalty_store_commit_failures_total") == 1
        assert _value(metrics, "loyalty_store_commit_writes_count") == groups
    finally:
        await writer.close()


class GatedFeed:
    """A feed whose events the test appends, and a consumer whose applying waits
    for the test to open its gate."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.events: asyncio.Queue[FeedItem[str]] = asyncio.Queue()
        self.gate = asyncio.Event()
        self.applying = asyncio.Event()
        self.cursor = 0
        self.sequence = 0

    def append(self, value: str) -> None:
        self.sequence += 1
        self.events.put_nowait(FeedItem(self.sequence, value, self.clock.now_us()))

    async def open(self, after: int):
        while True:
            yield await self.events.get()

    async def load_cursor(self) -> int:
        return self.cursor

    async def apply(self, batch) -> int:
        self.applying.set()
        await self.gate.wait()
        self.cursor = batch[-1].sequence
        return self.cursor


async def test_a_consumer_behind_its_feed_shows_how_long_its_oldest_event_has_waited():
    clock = ManualClock()
    feed = GatedFeed(clock)
    follower = FeedFollower("orders", feed.open, feed.load_cursor, feed.apply, now_us=clock.now_us)
    metrics = Metrics()
    watch_feeds(metrics, [follower])
    running = asyncio.create_task(follower.run())
    try:
        assert _value(metrics, "loyalty_feed_lag_seconds", feed="orders") == 0
        feed.append("first")
        await asyncio.wait_for(feed.applying.wait(), 10)
        clock.advance(30)
        feed.append("second")
        clock.advance(15)
        # Received, not applied: the oldest has waited since its upstream committed it.
        assert _value(metrics, "loyalty_feed_lag_seconds", feed="orders") == 45
        assert _value(metrics, "loyalty_feed_connected", feed="orders") == 1
        feed.gate.set()
        await asyncio.wait_for(follower.wait_for(2), 10)
        assert _value(metrics, "loyalty_feed_lag_seconds", feed="orders") == 0
        assert _value(metrics, "loyalty_feed_events_applied_total", feed="orders") == 2
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
