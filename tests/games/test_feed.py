"""WatchPlays: every spin and catch result, numbered without gaps in commit order,
resumable from any number (issue 11). Each read of the stream has a deadline."""

from __future__ import annotations

import grpc
from loyalty.games.v1 import games_service_pb2 as pb

from tests.support import deadlines
from tests.support.errors import expect_error
from tests.support.games import (
    ALWAYS_PAYS,
    STANDARD_WHEEL,
    create_stocked_wheel,
    games_settings,
    numbered_seeds,
    plays_of,
    spin,
    start_games,
    wheel_config,
)
from tests.support.ledger import fund

READ_SECONDS = 10.0


async def take(stub, after: int, count: int) -> list[pb.WatchPlaysResponse]:
    """The first `count` results after `after`; each must come within its deadline."""
    call = stub.WatchPlays(pb.WatchPlaysRequest(after_sequence=after))
    stream = call.__aiter__()
    try:
        return [await deadlines.within(stream.__anext__(), READ_SECONDS) for _ in range(count)]
    finally:
        call.cancel()


async def make_history(games, ledger_stub) -> int:
    """Settled, no-prize and refused spins of two members; how many results."""
    await create_stocked_wheel(
        games.stub, "w", wheel_config(*STANDARD_WHEEL.segments, spins_per_day=0)
    )
    await fund(ledger_stub, "a", 100)
    for n in range(4):
        await spin(games.stub, "w", "a", f"r-{n}")
        await spin(games.stub, "w", "a", f"r-{n}")  # a replay adds nothing
    await expect_error(
        games.stub.Spin(pb.SpinRequest(wheel_id="w", member_id="b", request_id="r")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "INSUFFICIENT_POINTS",
    )
    await fund(ledger_stub, "b", 30)
    for n in range(3):
        await spin(games.stub, "w", "b", f"r-{n}")
    return 4 + 1 + 3


async def test_every_result_is_numbered_without_gaps_in_commit_order(games, ledger_stub):
    count = await make_history(games, ledger_stub)
    results = await take(games.stub, 0, count)
    assert [r.sequence for r in results] == list(range(1, count + 1))
    assert pb.PLAY_STATUS_PENDING not in {r.play.status for r in results}
    # The same results, in the order the audit log appended them.
    audit = [p for m in ("a", "b") for p in await plays_of(games.stub, m)]
    audit = sorted(
        (p for p in audit if p.status != pb.PLAY_STATUS_PENDING), key=lambda p: p.sequence
    )
    assert [r.play.sequence for r in results] == [p.sequence for p in audit]
    refused = next(r.play for r in results if r.play.status == pb.PLAY_STATUS_REJECTED)
    assert (refused.member_id, refused.reason) == ("b", "INSUFFICIENT_POINTS")


async def test_resuming_from_any_number_gives_exactly_what_follows_it(games, ledger_stub):
    count = await make_history(games, ledger_stub)
    everything = await take(games.stub, 0, count)
    for cursor in range(count):
        resumed = await take(games.stub, cursor, count - cursor)
        # The first one after the cursor is cursor + 1: none skipped, none repeated.
        assert resumed[0].sequence == cursor + 1
        assert resumed == everything[cursor:]


async def test_a_live_reader_gets_each_result_as_it_settles(games, ledger_stub):
    await create_stocked_wheel(games.stub, "w", ALWAYS_PAYS)
    call = games.stub.WatchPlays(pb.WatchPlaysRequest())
    stream = call.__aiter__()
    try:
        for n in range(3):
            settled = await spin(games.stub, "w", "live", f"r-{n}")
            result = await deadlines.within(stream.__anext__(), READ_SECONDS)
            assert (result.sequence, result.play.play_id) == (n + 1, settled.spin_id)
            assert result.play.prize.points == 20
    finally:
        call.cancel()


async def test_a_result_is_numbered_when_it_settles_and_the_feed_survives_a_restart(
    games_db, ledger, ledger_stub
):
    settings = games_settings(games_db, ledger.target)
    seeds = numbered_seeds()
    games = await start_games(settings, ledger.clock, seeds)
    try:
        await create_stocked_wheel(games.stub, "w", ALWAYS_PAYS)
        await spin(games.stub, "w", "m", "r-0")
        await spin(games.stub, "w", "m", "r-1")
    finally:
        await games.stop()
    games = await start_games(settings, ledger.clock, seeds)
    try:
        before = await take(games.stub, 0, 2)
        await spin(games.stub, "w", "m", "r-2")
        (after,) = await take(games.stub, 2, 1)
        assert [r.sequence for r in before] + [after.sequence] == [1, 2, 3]
    finally:
        await games.stop()


async def test_a_negative_cursor_is_invalid(games):
    call = games.stub.WatchPlays(pb.WatchPlaysRequest(after_sequence=-1))
    await expect_error(call.read(), grpc.StatusCode.INVALID_ARGUMENT)
