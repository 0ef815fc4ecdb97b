"""Resumable feeds (`Watch...(after_sequence)`): serving one, and following
one exactly once.

Serving: `serve_pages` yields every row after a sequence in commit order,
page by page, then waits on a `CommitSignal` (notified after each group
commit) for more.

Following:
The follower reads the stream after the cursor the consumer stored and hands
what it read, in batches, to the consumer's `apply(batch)`, which must store
what it derives and the new cursor in ONE transaction (and skip what is at or
below the stored cursor, so two followers or an overlapping reconnect can
never apply an event twice). A restart, or a SIGKILL between any two
instructions, then neither misses nor double-counts an event: whatever
committed moved the cursor with it, whatever did not is read again.

Batches form by themselves: a reader task queues what the stream delivers
while the consumer commits the previous batch, so a consumer that is behind
commits up to `batch` events at a time and one that is caught up commits each
event as it comes.

Catching up: a consumer may also give a `CatchUp`, a cheaper way to apply a
batch that leaves part of the work for later (progress defers its members'
evaluation), and the `finish` that does that work. The follower applies the
cheap way from the moment it meets a backlog (events queued while it applied
the last batch, seconds old), and finishes as soon as nothing is waiting, so
a consumer keeping up never defers. It publishes a cursor (`state.cursor`,
`wait_for`) only once the work for what it applied is finished. A run starts
by finishing what an earlier run, killed while behind, left.

The stream is reopened after any failure, with exponential backoff, and
after `recycle_seconds` (every outgoing call has a deadline). A gap in the
sequence (which a gapless feed never has) reopens the stream from the stored
cursor instead of skipping anything.

Lag: how long the oldest event the follower has received but not yet applied
(nor finished the catch-up work for) has waited since its upstream committed
it (0 once everything received is applied). It keeps growing while applying
fails or the stream is being opened again, and `watch_feeds` serves it with
the follower's state at every scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import grpc
import structlog
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

from services.kit.errors import FieldViolation, InvalidArgument
from services.kit.metrics import Metrics

log = structlog.get_logger()

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FeedItem(Generic[T]):
    sequence: int
    value: T
    # When the upstream committed it (UTC microseconds; 0 when unknown), for the lag in logs.
    at_us: int = 0


class FeedGap(Exception):
    """The stream skipped a sequence number."""


@dataclass
class FeedState:
    """What the follower can say about itself (GetFeedStatus, logs)."""

    name: str
    cursor: int = 0
    connected: bool = False
    applied: int = 0
    last_error: str = ""
    # Times the stream failed and was opened again.
    reconnects: int = 0
    # Applying a backlog: the cursor moves once the work left for it is finished.
    catching_up: bool = False


@dataclass(frozen=True, slots=True)
class Backoff:
    first_seconds: float = 0.1
    max_seconds: float = 5.0

    def delay(self, failures: int) -> float:
        # Jitter spreads the reconnects of many consumers; it decides no outcome.
        base = min(self.max_seconds, self.first_seconds * 2 ** min(failures - 1, 16))
        return base * (0.5 + random.random() / 2)


class CommitSignal:
    """Wakes feed readers after each group commit (the store's on_commit)."""

    def __init__(self) -> None:
        self.version = 0
        self._changed = asyncio.Event()

    def notify(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_past(self, version: int) -> None:
        while self.version == version:
            await self._changed.wait()


FEED_PAGE = 500
# A follower's channel options: an upstream feed is found again within a second
# or two of coming back (gRPC's own reconnect backoff grows to two minutes).
FEED_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


def open_feed_channel(target: str) -> grpc.aio.Channel:
    """A channel for following feeds. It has no request-id interceptor: a follower
    runs outside any request, and a stream interceptor wraps every message the
    stream delivers (6% of a consumer catching up)."""
    return grpc.aio.insecure_channel(target, options=FEED_CHANNEL_OPTIONS)


async def serve_pages(
    read_page: Callable[[int], Awaitable[Sequence[T]]],
    after_sequence: int,
    commits: CommitSignal,
    page: int = FEED_PAGE,
) -> AsyncIterator[T]:
    """Every row (anything with a `sequence`) after `after_sequence`, in order,
    forever: `read_page(after)` returns at most `page` rows of one committed
    snapshot; a short page waits for the next commit."""
    if after_sequence < 0:
        raise InvalidArgument([FieldViolation("after_sequence", "must not be negative")])
    while True:
        version = commits.version
        rows = await read_page(after_sequence)
        for row in rows:
            yield row
            after_sequence = row.sequence
        if len(rows) < page:
            await commits.wait_past(version)


Opener = Callable[[int], AsyncIterator[FeedItem[T]]]
Apply = Callable[[Sequence[FeedItem[T]]], Awaitable[int]]
_END = object()


@dataclass(frozen=True, slots=True)
class CatchUp(Generic[T]):
    """How a consumer applies a backlog: `apply` stores the batch and its cursor in
    one transaction, as the follower's own apply does, but leaves work (durably
    recorded) for `finish`, which does all of it. A backlog is events that queued
    up while a batch was applied, the oldest committed upstream more than
    `lag_seconds` ago."""

    apply: Apply[T]
    finish: Callable[[], Awaitable[object]]
    lag_seconds: float = 5.0
    # How long a batch waits to fill while catching up (at a backlog's end).
    linger_seconds: float = 0.1


class FeedFollower(Generic[T]):
    """Follows one feed for as long as `run()` runs.

    `open_stream(after)` yields the feed's items after a sequence;
    `load_cursor()` reads the stored cursor; `apply(batch)` stores what the batch
    means together with its last sequence and returns the stored cursor."""

    def __init__(
        self,
        name: str,
        open_stream: Opener[T],
        load_cursor: Callable[[], Awaitable[int]],
        apply: Apply[T],
        *,
        now_us: Callable[[], int],
        batch: int = 500,
        backoff: Backoff = Backoff(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        gapless: bool = True,
        catch_up: CatchUp[T] | None = None,
    ) -> None:
        self.state = FeedState(name)
        self._open = open_stream
        self._load_cursor = load_cursor
        self._apply = apply
        self._now_us = now_us
        self._batch = batch
        self._backoff = backoff
        self._sleep = sleep
        self._gapless = gapless
        self._catch_up = catch_up
        self._progress = asyncio.Condition()
        self._last_log = 0.0
        # When the upstream committed the oldest event received and not yet
        # applied (nor its catch-up work finished).
        self._waiting_since_us: int | None = None

    def lag_seconds(self) -> float:
        """How far behind its upstream the consumer is, by the injected clock."""
        since = self._waiting_since_us
        return 0.0 if since is None else max(0, self._now_us() - since) / 1e6

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                stored = await self._load_cursor()
                if self._catch_up is None:
                    self.state.cursor = stored
                await self._follow(stored)
                failures = 0
            except asyncio.CancelledError:
                self.state.connected = False
                raise
            except Exception as error:
                failures += 1
                self.state.reconnects += 1
                self.state.connected = False
                self.state.last_error = f"{type(error).__name__}: {error}"[:300]
                delay = self._backoff.delay(failures)
                log.warning(
                    "feed_reconnecting",
                    feed=self.state.name,
                    cursor=self.state.cursor,
                    error=self.state.last_error,
                    failures=failures,
                    retry_in_seconds=round(delay, 3),
                )
                await self._sleep(delay)

    async def _follow(self, stored: int) -> None:
        queue: asyncio.Queue = asyncio.Queue(maxsize=self._batch * 4)
        full = asyncio.Event()
        reader = asyncio.create_task(self._read(queue, stored, full))
        behind = self._catch_up is not None
        try:
            while True:
                # Events that came while the last batch was being applied.
                waiting = not queue.empty()
                if behind and not waiting:
                    await self._finish_catch_up(stored)
                    behind = False
                first = await queue.get()
                if isinstance(first, FeedItem):
                    if self._waiting_since_us is None:
                        # Events arrive in commit order: the batch's first is the oldest
                        # unapplied (the same event again after a failed attempt).
                        self._waiting_since_us = first.at_us or None
                    behind = behind or (waiting and self._lagging(first))
                if behind and queue.qsize() < self._batch:
                    await self._fill(full)
                items = [first]
                while len(items) < self._batch and not queue.empty():
                    items.append(queue.get_nowait())
                batch = [item for item in items if isinstance(item, FeedItem)]
                if batch:
                    stored = await self._commit(batch, behind)
                ended = [item for item in items if not isinstance(item, FeedItem)]
                if ended:
                    if isinstance(ended[0], BaseException):
                        raise ended[0]
                    return
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _fill(self, full: asyncio.Event) -> None:
        """Catching up, let the reader queue a whole batch first (or whatever comes
        within the linger, at a backlog's end): the reader only reads while the
        consumer waits, and a backlog applied as it trickles in would pay a
        transaction for every few events."""
        assert self._catch_up is not None
        full.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(full.wait(), self._catch_up.linger_seconds)

    async def _read(self, queue: asyncio.Queue, after: int, full: asyncio.Event) -> None:
        expected = after + 1
        try:
            async for item in self._open(after):
                if not self.state.connected:
                    self.state.connected, self.state.last_error = True, ""
                    log.info("feed_connected", feed=self.state.name, after_sequence=after)
                if self._gapless and item.sequence != expected:
                    raise FeedGap(f"expected sequence {expected}, got {item.sequence}")
                expected = item.sequence + 1
                await queue.put(item)
                if queue.qsize() >= self._batch:
                    full.set()
            await queue.put(_END)
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            await queue.put(error)
        full.set()

    async def _commit(self, batch: list[FeedItem[T]], behind: bool) -> int:
        """Apply the batch (the catching-up way when behind); publish its cursor
        unless work for it is left to finish. Returns the stored cursor."""
        apply = self._catch_up.apply if behind and self._catch_up else self._apply
        cursor = await apply(batch)
        self.state.applied += len(batch)
        last = batch[-1]
        lag = (self._now_us() - last.at_us) / 1e6 if last.at_us else None
        fields = dict(feed=self.state.name, cursor=cursor, batch=len(batch), lag_seconds=lag)
        # A consumer catching up logs its progress every few seconds, not per batch.
        now = time.monotonic()
        if len(batch) > 1 and now - self._last_log >= 5:
            self._last_log = now
            log.info("feed_applied", behind=behind, **fields)
        else:
            log.debug("feed_applied", behind=behind, **fields)
        if behind:
            self.state.catching_up = True
        else:
            await self._publish(cursor)
        return cursor

    def _lagging(self, oldest: FeedItem[T]) -> bool:
        """Whether the batch's oldest event is a backlog's, by how long ago its
        upstream committed it."""
        if self._catch_up is None or not oldest.at_us:
            return False
        return self._now_us() - oldest.at_us > self._catch_up.lag_seconds * 1e6

    async def _finish_catch_up(self, stored: int) -> None:
        assert self._catch_up is not None
        await self._catch_up.finish()
        await self._publish(stored)

    async def _publish(self, cursor: int) -> None:
        self.state.cursor = cursor
        self.state.catching_up = False
        self._waiting_since_us = None
        async with self._progress:
            self._progress.notify_all()

    async def wait_for(self, sequence: int) -> None:
        """Return once the follower has applied the feed up to `sequence`."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.state.cursor >= sequence)


class _FeedFigures:
    """The followers' state, read at every scrape (nothing is counted per event)."""

    def __init__(self, followers: Sequence[FeedFollower]) -> None:
        self._followers = list(followers)

    def collect(self):
        lag = GaugeMetricFamily(
            "loyalty_feed_lag_seconds",
            "How long the oldest event received and not yet applied has waited since its"
            " upstream committed it (0 when caught up with what the stream delivered).",
            labels=["feed"],
        )
        connected = GaugeMetricFamily(
            "loyalty_feed_connected",
            "1 once the feed's stream has delivered since it was (re)opened, 0 while it is"
            " being reopened.",
            labels=["feed"],
        )
        applied = CounterMetricFamily(
            "loyalty_feed_events_applied",
            "Feed events applied (stored with the cursor) since the process started.",
            labels=["feed"],
        )
        reconnects = CounterMetricFamily(
            "loyalty_feed_reconnects",
            "Times the feed's stream failed and was opened again from the stored cursor.",
            labels=["feed"],
        )
        for follower in self._followers:
            state = follower.state
            lag.add_metric([state.name], follower.lag_seconds())
            connected.add_metric([state.name], 1 if state.connected else 0)
            applied.add_metric([state.name], state.applied)
            reconnects.add_metric([state.name], state.reconnects)
        return [lag, connected, applied, reconnects]


def watch_feeds(metrics: Metrics, followers: Sequence[FeedFollower]) -> None:
    """Serve each follower's lag, connection, events applied and reconnects."""
    metrics.register(_FeedFigures(followers))
