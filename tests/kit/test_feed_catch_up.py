"""A follower with a CatchUp: a backlog is applied the consumer's cheaper way
and finished once it has been read, the cursor published only then; events
that come as they happen, or a burst of fresh ones, are applied the plain way."""

from __future__ import annotations

import asyncio
import contextlib

from services.kit.clock import ManualClock
from services.kit.feeds import CatchUp, FeedFollower, FeedItem

BATCH = 10
SECOND_US = 1_000_000


class Consumer:
    """Records how each batch was applied, and what was published when finishing."""

    def __init__(self) -> None:
        self.cursor = 0
        self.applied: list[tuple[str, int, int]] = []
        self.published_at_finish: list[int] = []
        self.follower: FeedFollower | None = None
        self.finished = asyncio.Event()

    async def load_cursor(self) -> int:
        return self.cursor

    async def apply(self, batch) -> int:
        return self._store("plain", batch)

    async def apply_behind(self, batch) -> int:
        return self._store("behind", batch)

    def _store(self, way: str, batch) -> int:
        self.applied.append((way, batch[0].sequence, batch[-1].sequence))
        self.cursor = batch[-1].sequence
        return self.cursor

    async def finish(self) -> None:
        assert self.follower is not None
        self.published_at_finish.append(self.follower.state.cursor)
        self.finished.set()


class Upstream:
    def __init__(self) -> None:
        self.items: asyncio.Queue[FeedItem[str]] = asyncio.Queue()
        self.sequence = 0

    def append(self, count: int, at_us: int) -> int:
        for _ in range(count):
            self.sequence += 1
            self.items.put_nowait(FeedItem(self.sequence, f"event {self.sequence}", at_us))
        return self.sequence

    async def open(self, after: int):
        while True:
            yield await self.items.get()


def following(
    clock: ManualClock, upstream: Upstream, consumer: Consumer, catch_up: bool = True
) -> FeedFollower:
    follower = FeedFollower(
        "orders",
        upstream.open,
        consumer.load_cursor,
        consumer.apply,
        now_us=clock.now_us,
        batch=BATCH,
        # No linger: what a batch holds then depends on nothing but the queue.
        catch_up=CatchUp(consumer.apply_behind, consumer.finish, lag_seconds=5, linger_seconds=0)
        if catch_up
        else None,
    )
    consumer.follower = follower
    return follower


@contextlib.asynccontextmanager
async def running(follower: FeedFollower):
    task = asyncio.create_task(follower.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_backlog_is_applied_the_catching_up_way_and_finished_before_its_cursor_shows():
    clock = ManualClock()
    upstream, consumer = Upstream(), Consumer()
    follower = following(clock, upstream, consumer)
    # 35 events committed upstream a minute before the follower starts.
    last = upstream.append(35, clock.now_us())
    clock.advance(60)
    async with running(follower):
        await asyncio.wait_for(follower.wait_for(last), 10)
        # The first batch is taken with nothing queued behind it yet: applied the
        # plain way. The rest queued up meanwhile: behind, then finished once.
        assert consumer.applied == [
            ("plain", 1, 10),
            ("behind", 11, 20),
            ("behind", 21, 30),
            ("behind", 31, 35),
        ]
        # Finished at the start (whatever a killed run left) and after the backlog,
        # when only the plain batch's cursor had been published.
        assert consumer.published_at_finish == [0, 10]
        assert follower.state.cursor == last
        assert follower.state.applied == 35
        assert not follower.state.catching_up
        assert follower.lag_seconds() == 0


async def test_fresh_events_are_applied_the_plain_way_even_in_a_burst():
    clock = ManualClock()
    upstream, consumer = Upstream(), Consumer()
    follower = following(clock, upstream, consumer)
    async with running(follower):
        await asyncio.wait_for(consumer.finished.wait(), 10)
        # Committed upstream a second ago: a burst of 25, not a backlog.
        clock.advance(10)
        last = upstream.append(25, clock.now_us() - SECOND_US)
        await asyncio.wait_for(follower.wait_for(last), 10)
        assert [way for way, _, _ in consumer.applied] == ["plain"] * 3
        assert consumer.published_at_finish == [0]


async def test_a_follower_without_catch_up_applies_a_backlog_the_plain_way():
    clock = ManualClock()
    upstream, consumer = Upstream(), Consumer()
    follower = following(clock, upstream, consumer, catch_up=False)
    last = upstream.append(35, clock.now_us())
    clock.advance(60)
    async with running(follower):
        await asyncio.wait_for(follower.wait_for(last), 10)
        assert [way for way, _, _ in consumer.applied] == ["plain"] * 4
