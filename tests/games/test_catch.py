"""Catch-to-earn through real channels: server-authoritative scoring, caps, replays, leaderboard."""

from __future__ import annotations

import asyncio
import itertools

import grpc
import pytest
from loyalty.games.v1 import games_service_pb2 as pb

from services.kit.status import field_violations
from tests.support import deadlines
from tests.support.errors import expect_error
from tests.support.games import HonestPlay, honest_play, reveal_all, submission
from tests.support.ledger import balance

RULES = pb.CatchGameConfig(
    display_name="Coffee rain",
    duration_millis=20_000,
    spawn_interval_millis=1_000,
    field_width=1_000,
    basket_width=120,
    basket_top_speed=900,
    catch_window_millis=250,
    object_types=[
        pb.CatchObjectType(name="bean", points=5, spawn_weight=80, fall_millis=1_800),
        pb.CatchObjectType(name="golden-cup", points=50, spawn_weight=5, fall_millis=1_200),
        pb.CatchObjectType(name="rotten-bean", points=-10, spawn_weight=15, fall_millis=2_000),
    ],
    session_score_cap=60,
    daily_points_cap=100,
    time_zone="Europe/Paris",
    submit_grace_millis=5_000,
    reveal_lead_millis=250,
    min_reaction_millis=150,
)


@pytest.fixture
async def game(games):
    await games.stub.CreateCatchGame(pb.CreateCatchGameRequest(game_id="rain", config=RULES))
    return games


async def start(games, member: str, request_id: str) -> pb.CatchSession:
    response = await games.stub.StartCatch(
        pb.StartCatchRequest(game_id="rain", member_id=member, request_id=request_id)
    )
    return response.session


async def played(games, clock, member: str, request_id: str, keep: int | None = None):
    """A session started and played to its end: its objects and an honest play of them."""
    session = await start(games, member, request_id)
    objects = await reveal_all(games.stub, clock, session)
    return session, objects, honest_play(RULES, objects, keep)


def score_of(objects, play: HonestPlay) -> int:
    by_id = {o.object_id: o.points for o in objects}
    return sum(by_id[object_id] for object_id, _, _ in play.catches)


async def submit(games, session, play: HonestPlay, **changes) -> pb.CatchResult:
    return (await games.stub.SubmitCatch(submission(session, play, **changes))).result


async def test_a_session_reveals_nothing_ahead_and_each_object_on_time(game, ledger):
    session = await start(game, "m-1", "s1")
    assert await start(game, "m-1", "s1") == session  # a retry: the same session
    assert session.rules == RULES
    assert list(session.spawns) == []  # nothing of the schedule up front
    clock = ledger.clock
    begin = session.start_time.ToMicroseconds()
    received: list[tuple[pb.SpawnedObject, int]] = []
    call = game.stub.WatchCatchObjects(
        pb.WatchCatchObjectsRequest(session_id=session.session_id, member_id="m-1")
    )

    async def read() -> None:
        async for response in call:
            received.append((response.object, clock.now_us()))

    reader = asyncio.ensure_future(read())
    step_us = 20_000

    # The clock moves in 20 ms steps; each object must arrive once the clock is past
    # its reveal time, never before (and not long after: the bound is loose on purpose,
    # a busy machine may deliver a few steps late).
    async def all_received() -> bool:
        return reader.done()

    await deadlines.eventually(all_received, between=lambda: clock.advance(step_us / 1e6))
    await deadlines.within(reader)
    assert len(received) >= 15
    for spawned, at in received:
        assert spawned.reveal_millis == max(0, spawned.spawn_millis - RULES.reveal_lead_millis)
        due = begin + spawned.reveal_millis * 1_000
        assert due <= at <= due + 50 * step_us, (spawned.object_id, at - due)
    assert [o.object_id for o, _ in received] == sorted(o.object_id for o, _ in received)
    other = await start(game, "m-1", "s2")
    assert other.session_id != session.session_id
    await expect_error(
        reveal_all(game.stub, clock, pb.CatchSession(**{**_fields(other), "member_id": "m-2"})),
        grpc.StatusCode.PERMISSION_DENIED,
        "NOT_SESSION_OWNER",
    )


def _fields(session: pb.CatchSession) -> dict:
    return {field.name: value for field, value in session.ListFields()}


async def test_honest_play_is_scored_on_the_server_and_paid_once(game, ledger, ledger_stub):
    session, objects, play = await played(game, ledger.clock, "m-2", "s1")
    assert play.catches, "the honest player caught nothing"
    result = await submit(game, session, play)
    score = score_of(objects, play)
    assert list(result.findings) == []
    assert all(v.code == pb.CATCH_VERDICT_CODE_ACCEPTED for v in result.verdicts)
    assert result.score == result.awarded_points == min(score, RULES.session_score_cap)
    assert result.transfer_id == f"catch:{session.session_id}:award"
    assert await balance(ledger_stub, "m-2") == result.awarded_points
    assert await submit(game, session, play) == result
    assert await balance(ledger_stub, "m-2") == result.awarded_points


async def test_cheats_get_verdicts_and_score_nothing(game, ledger):
    session, objects, play = await played(game, ledger.clock, "m-3", "s1")
    object_id, millis, x = play.catches[0]
    later = next(o for o in objects if o.spawn_millis > millis + 4_000)
    cheating = HonestPlay(
        [
            (object_id, millis, x),
            (object_id, millis, x),
            (999, millis + 1, x),
            (later.object_id, later.spawn_millis, later.x),
        ],
        play.trace,
    )
    result = await submit(game, session, cheating)
    assert [v.code for v in result.verdicts] == [
        pb.CATCH_VERDICT_CODE_ACCEPTED,
        pb.CATCH_VERDICT_CODE_DUPLICATE_OBJECT,
        pb.CATCH_VERDICT_CODE_UNKNOWN_OBJECT,
        pb.CATCH_VERDICT_CODE_OUTSIDE_WINDOW,
    ]
    by_id = {o.object_id: o.points for o in objects}
    assert result.awarded_points == by_id[object_id]


async def test_a_bot_that_plays_the_revealed_objects_perfectly_is_paid_nothing(
    game, ledger, ledger_stub
):
    """It knows each object at its reveal and goes straight there at top speed: its
    trace jolts and its reactions come sooner than a person's."""
    session, objects, _ = await played(game, ledger.clock, "m-bot", "s1")
    catches, trace, at_x, at_millis = [], [(0, RULES.field_width // 2)], RULES.field_width // 2, 0
    for spawned in sorted(objects, key=lambda o: o.spawn_millis + o.fall_millis):
        land = spawned.spawn_millis + spawned.fall_millis
        start = max(at_millis, spawned.reveal_millis)
        travel = abs(spawned.x - at_x) * 1_000 // RULES.basket_top_speed + 1
        if spawned.points <= 0 or start + travel > land:
            continue
        trace += [(start, at_x), (start + travel, spawned.x), (land, spawned.x)]
        catches.append((spawned.object_id, land, spawned.x))
        at_x, at_millis = spawned.x, land
    trace += [(m, at_x) for m in range(at_millis + 200, RULES.duration_millis, 200)]
    filled = []
    for (m1, x1), (m2, x2) in itertools.pairwise(trace):
        filled += [(m, x1 + (x2 - x1) * (m - m1) // max(1, m2 - m1)) for m in range(m1, m2, 100)]
    result = await submit(game, session, HonestPlay(catches, [*filled, trace[-1]]))
    assert pb.TRACE_FINDING_INHUMAN_ACCELERATION in result.findings
    assert (result.score, result.awarded_points) == (0, 0)
    assert await balance(ledger_stub, "m-bot") == 0
    rejected = (await game.stub.ListPlays(pb.ListPlaysRequest(member_id="m-bot"))).plays[-1]
    assert (rejected.status, rejected.reason) == (pb.PLAY_STATUS_REJECTED, "IMPLAUSIBLE_TRACE")
    board = await game.stub.GetLeaderboard(
        pb.GetLeaderboardRequest(game_id="rain", member_id="m-bot")
    )
    assert board.member_entry.best_score == 0


async def test_a_submission_without_a_trace_is_paid_nothing(game, ledger):
    session, _, play = await played(game, ledger.clock, "m-9", "s1")
    result = await submit(game, session, HonestPlay(play.catches, []))
    assert list(result.findings) == [pb.TRACE_FINDING_TRACE_MISSING]
    assert result.awarded_points == 0


async def test_submissions_outside_the_games_real_time_are_refused(game, ledger, ledger_stub):
    session = await start(game, "m-4", "s1")
    nothing = HonestPlay([], [])
    ledger.clock.advance(RULES.duration_millis / 1000 - 1)
    await expect_error(
        submit(game, session, nothing), grpc.StatusCode.FAILED_PRECONDITION, "SUBMITTED_TOO_SOON"
    )
    ledger.clock.advance(1 + RULES.submit_grace_millis / 1000 + 0.001)
    await expect_error(
        submit(game, session, nothing), grpc.StatusCode.FAILED_PRECONDITION, "SESSION_EXPIRED"
    )
    assert await balance(ledger_stub, "m-4") == 0


async def test_only_the_owner_submits_and_only_once(game, ledger):
    session, _, play = await played(game, ledger.clock, "m-5", "s1")
    await expect_error(
        submit(game, session, play, member_id="m-6"),
        grpc.StatusCode.PERMISSION_DENIED,
        "NOT_SESSION_OWNER",
    )
    await submit(game, session, play)
    await expect_error(
        submit(game, session, HonestPlay([], play.trace)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "SESSION_ALREADY_SUBMITTED",
    )
    plays = (await game.stub.ListPlays(pb.ListPlaysRequest(game_id="rain"))).plays
    rejected = plays[0]
    assert (rejected.member_id, rejected.status, rejected.reason) == (
        "m-6",
        pb.PLAY_STATUS_REJECTED,
        "NOT_SESSION_OWNER",
    )


async def test_bad_submissions_are_invalid_and_change_nothing(game, ledger):
    session, _, play = await played(game, ledger.clock, "m-7", "s1")
    error = await expect_error(
        submit(game, session, play, claimed_score=RULES.session_score_cap + 1),
        grpc.StatusCode.INVALID_ARGUMENT,
        "SCORE_ABOVE_CAP",
    )
    assert "claimed_score" in field_violations(error)
    out_of_order = HonestPlay([(1, 5_000, 10), (2, 4_000, 10)], play.trace)
    error = await expect_error(
        submit(game, session, out_of_order), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "catches[1].catch_millis" in field_violations(error)
    backwards = HonestPlay(play.catches, [(100, 500), (50, 500)])
    error = await expect_error(submit(game, session, backwards), grpc.StatusCode.INVALID_ARGUMENT)
    assert "trace[1].millis" in field_violations(error)
    # Still open: the honest submission goes through afterwards.
    assert (await submit(game, session, play)).awarded_points > 0


async def test_the_daily_cap_clamps_awards_until_local_midnight(game, ledger, ledger_stub):
    awarded = []
    for n in range(3):
        session, _, play = await played(game, ledger.clock, "m-8", f"s{n}")
        awarded.append((await submit(game, session, play)).awarded_points)
    assert sum(awarded) == RULES.daily_points_cap
    assert await balance(ledger_stub, "m-8") == RULES.daily_points_cap


async def test_the_weekly_leaderboard_ranks_best_scores(game, ledger):
    scores = {}
    for member, keep in (("m-a", 1), ("m-b", 3), ("m-c", 2)):
        session, _, play = await played(game, ledger.clock, member, "s1", keep)
        scores[member] = (await submit(game, session, play)).score
    assert len(set(scores.values())) == 3
    board = await game.stub.GetLeaderboard(
        pb.GetLeaderboardRequest(game_id="rain", member_id="m-c", page_size=2)
    )
    ranked = sorted(scores, key=lambda m: -scores[m])
    assert [e.member_id for e in board.entries] == ranked[:2]
    assert board.member_entry.member_id == "m-c"
    assert board.member_entry.rank == ranked.index("m-c") + 1
    assert board.next_page_token
    rest = await game.stub.GetLeaderboard(
        pb.GetLeaderboardRequest(game_id="rain", page_size=2, page_token=board.next_page_token)
    )
    assert [e.rank for e in rest.entries] == [3]
    await expect_error(
        game.stub.GetLeaderboard(pb.GetLeaderboardRequest(game_id="rain", page_token="forged")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_PAGE_TOKEN",
    )
    week = board.week_end_time.ToSeconds() - board.week_start_time.ToSeconds()
    assert week in (7 * 86_400, 7 * 86_400 - 3_600, 7 * 86_400 + 3_600)


async def test_catch_game_configuration_is_validated(games):
    bad = pb.CatchGameConfig()
    bad.CopyFrom(RULES)
    bad.basket_width = 5_000
    error = await expect_error(
        games.stub.CreateCatchGame(pb.CreateCatchGameRequest(game_id="x", config=bad)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "config.basket_width" in field_violations(error)
    await expect_error(
        games.stub.GetCatchGame(pb.GetCatchGameRequest(game_id="x")),
        grpc.StatusCode.NOT_FOUND,
        "GAME_NOT_FOUND",
    )
