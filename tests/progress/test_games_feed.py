"""Progress follows the real games feed: a real ledger, games and progress on
port 0 over temporary files, a badge "3 spins", and a member spinning through
the games API. A refused spin is in the feed but is not a spin."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from loyalty.games.v1 import games_service_pb2 as games_pb
from loyalty.games.v1 import games_service_pb2_grpc as games_grpc
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from loyalty.progress.v1 import progress_service_pb2 as pb
from loyalty.progress.v1 import progress_service_pb2_grpc as progress_grpc

from services.kit.clock import ManualClock
from services.kit.server import ServiceHost
from tests.support.errors import expect_error
from tests.support.games import (
    create_stocked_wheel,
    games_settings,
    numbered_seeds,
    points,
    spin,
    start_games,
    wheel_config,
)
from tests.support.ledger import fund, start_ledger
from tests.support.progress import TIMEOUT, apply, at, caught_up, start_progress

THREE_SPINS = {
    "id": "three-spins",
    "badge": {
        "displayName": "Three spins",
        "rule": {"measure": "MEASURE_SPIN_COUNT"},
        "levels": [{"levelId": "done", "threshold": "3"}],
    },
}
# Ten points a spin, twenty won every time: a member with no points is refused.
PAYING_WHEEL = wheel_config(
    games_pb.Segment(label="Try again", weight=0),
    games_pb.Segment(label="20 points", weight=1, prize=points(20)),
    cost_points=10,
    spins_per_day=0,
)


@dataclass
class Suite:
    ledger: ledger_grpc.LedgerServiceStub
    games: games_grpc.GamesServiceStub
    progress: progress_grpc.ProgressServiceStub
    progress_host: ServiceHost


@contextlib.asynccontextmanager
async def ledger_games_progress(tmp_path, progress_db) -> AsyncIterator[Suite]:
    """The real ledger and games, and progress following both (campaigns: not followed)."""
    clock = ManualClock(at(2026, 3, 2, 9))
    async with contextlib.AsyncExitStack() as stack:
        ledger_host, ledger_channel, ledger = await start_ledger(tmp_path / "ledger.db", clock)
        stack.push_async_callback(ledger_host.stop, None)
        stack.push_async_callback(ledger_channel.close)
        ledger_target = f"127.0.0.1:{ledger_host.port}"
        games = await start_games(
            games_settings(tmp_path / "games.db", ledger_target), clock, numbered_seeds()
        )
        stack.push_async_callback(games.stop)
        host, channel, progress = await start_progress(
            progress_db, clock, ledger_target, games_target=f"127.0.0.1:{games.host.port}"
        )
        stack.push_async_callback(host.stop, None)
        stack.push_async_callback(channel.close)
        yield Suite(ledger, games.stub, progress, host)


async def spins_seen(suite: Suite, results: int) -> pb.BadgeProgress:
    """The badge once progress has applied the games feed's first `results`."""
    await caught_up(suite.progress_host, "games", results)
    status = await suite.progress.GetFeedStatus(pb.GetFeedStatusRequest(), timeout=TIMEOUT)
    assert {(f.feed, f.cursor) for f in status.feeds} >= {("games", results)}
    member = await suite.progress.GetMemberProgress(
        pb.GetMemberProgressRequest(member_id="m-1"), timeout=TIMEOUT
    )
    (badge,) = member.badges
    return badge


async def test_three_spins_through_the_real_games_earn_the_three_spins_badge(
    tmp_path, progress_db
) -> None:
    async with ledger_games_progress(tmp_path, progress_db) as suite:
        await apply(suite.progress, THREE_SPINS)
        await create_stocked_wheel(suite.games, "daily", PAYING_WHEEL)
        await expect_error(
            suite.games.Spin(
                games_pb.SpinRequest(wheel_id="daily", member_id="m-1", request_id="broke")
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "INSUFFICIENT_POINTS",
        )
        await fund(suite.ledger, "m-1", 10)
        for n in range(2):
            assert (await spin(suite.games, "daily", "m-1", f"spin-{n}")).prize.points == 20
        # The refusal and two settled spins: two spins, the badge not earned yet.
        badge = await spins_seen(suite, 3)
        assert (badge.value, badge.next_level_id, badge.progress_text) == (2, "done", "2 of 3")
        await spin(suite.games, "daily", "m-1", "spin-2")
        badge = await spins_seen(suite, 4)
        assert (badge.value, badge.next_level_id) == (3, "")
        assert [(level.level_id, level.earned) for level in badge.levels] == [("done", True)]
