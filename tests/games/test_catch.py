"""Catch-to-earn through real channels: server-authoritative scoring, caps, replays, leaderboard."""

from __future__ import annotations

import grpc
import pytest
from loyalty.games.v1 import games_service_pb2 as pb

from services.kit.status import field_violations
from tests.support.errors import expect_error
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


def honest_catches(session: pb.CatchSession) -> list[pb.Catch]:
    """Every good object a basket moving at most at top speed can reach."""
    catches, at_millis, at_x = [], 0, RULES.field_width // 2
    for spawned in session.spawns:
        land = spawned.spawn_millis + spawned.fall_millis
        if spawned.points <= 0:
            continue
        if abs(spawned.x - at_x) * 1_000 <= RULES.basket_top_speed * (land - at_millis):
            catches.append(
                pb.Catch(object_id=spawned.object_id, catch_millis=land, basket_x=spawned.x)
            )
            at_millis, at_x = land, spawned.x
    return catches


def expected_score(session: pb.CatchSession, catches: list[pb.Catch]) -> int:
    by_id = {s.object_id: s.points for s in session.spawns}
    return sum(by_id[c.object_id] for c in catches)


async def submit(games, session, member=None, catches=None, claimed=0):
    return await games.stub.SubmitCatch(
        pb.SubmitCatchRequest(
            session_id=session.session_id,
            member_id=member or session.member_id,
            catches=honest_catches(session) if catches is None else catches,
            claimed_score=claimed,
        )
    )


async def test_a_session_is_deterministic_and_replayable(game, ledger, ledger_stub):
    session = await start(game, "m-1", "s1")
    again = await start(game, "m-1", "s1")
    assert again == session
    assert len(session.spawns) >= 15
    assert session.rules == RULES
    other = await start(game, "m-1", "s2")
    assert other.session_id != session.session_id


async def test_honest_play_is_scored_on_the_server_and_paid_once(game, ledger, ledger_stub):
    session = await start(game, "m-2", "s1")
    catches = honest_catches(session)
    ledger.clock.advance(RULES.duration_millis / 1000)
    result = (await submit(game, session, catches=catches)).result
    score = expected_score(session, catches)
    assert result.score == min(score, RULES.session_score_cap)
    assert result.awarded_points == min(score, RULES.session_score_cap)
    assert all(v.code == pb.CATCH_VERDICT_CODE_ACCEPTED for v in result.verdicts)
    assert result.transfer_id == f"catch:{session.session_id}:award"
    assert await balance(ledger_stub, "m-2") == result.awarded_points
    replay = (await submit(game, session, catches=catches)).result
    assert replay == result
    assert await balance(ledger_stub, "m-2") == result.awarded_points


async def test_cheats_get_verdicts_and_score_nothing(game, ledger, ledger_stub):
    session = await start(game, "m-3", "s1")
    first = honest_catches(session)[0]
    later = next(s for s in session.spawns if s.spawn_millis > first.catch_millis + 4_000)
    catches = [
        first,
        pb.Catch(
            object_id=first.object_id, catch_millis=first.catch_millis, basket_x=first.basket_x
        ),
        pb.Catch(object_id=999, catch_millis=first.catch_millis + 1, basket_x=first.basket_x),
        pb.Catch(object_id=later.object_id, catch_millis=later.spawn_millis, basket_x=later.x),
    ]
    ledger.clock.advance(RULES.duration_millis / 1000)
    result = (await submit(game, session, catches=catches)).result
    assert [v.code for v in result.verdicts] == [
        pb.CATCH_VERDICT_CODE_ACCEPTED,
        pb.CATCH_VERDICT_CODE_DUPLICATE_OBJECT,
        pb.CATCH_VERDICT_CODE_UNKNOWN_OBJECT,
        pb.CATCH_VERDICT_CODE_OUTSIDE_WINDOW,
    ]
    by_id = {s.object_id: s.points for s in session.spawns}
    assert result.awarded_points == by_id[first.object_id]


async def test_submissions_outside_the_games_real_time_are_refused(game, ledger, ledger_stub):
    session = await start(game, "m-4", "s1")
    ledger.clock.advance(RULES.duration_millis / 1000 - 1)
    await expect_error(
        submit(game, session), grpc.StatusCode.FAILED_PRECONDITION, "SUBMITTED_TOO_SOON"
    )
    ledger.clock.advance(1 + RULES.submit_grace_millis / 1000 + 0.001)
    await expect_error(
        submit(game, session), grpc.StatusCode.FAILED_PRECONDITION, "SESSION_EXPIRED"
    )
    assert await balance(ledger_stub, "m-4") == 0


async def test_only_the_owner_submits_and_only_once(game, ledger, ledger_stub):
    session = await start(game, "m-5", "s1")
    ledger.clock.advance(RULES.duration_millis / 1000)
    await expect_error(
        submit(game, session, member="m-6"), grpc.StatusCode.PERMISSION_DENIED, "NOT_SESSION_OWNER"
    )
    await submit(game, session)
    await expect_error(
        submit(game, session, catches=[]),
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


async def test_bad_submissions_are_invalid_and_change_nothing(game, ledger, ledger_stub):
    session = await start(game, "m-7", "s1")
    ledger.clock.advance(RULES.duration_millis / 1000)
    error = await expect_error(
        submit(game, session, claimed=RULES.session_score_cap + 1),
        grpc.StatusCode.INVALID_ARGUMENT,
        "SCORE_ABOVE_CAP",
    )
    assert "claimed_score" in field_violations(error)
    out_of_order = [
        pb.Catch(object_id=1, catch_millis=5_000, basket_x=10),
        pb.Catch(object_id=2, catch_millis=4_000, basket_x=10),
    ]
    error = await expect_error(
        submit(game, session, catches=out_of_order), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "catches[1].catch_millis" in field_violations(error)
    # Still open: the honest submission goes through afterwards.
    assert (await submit(game, session)).result.awarded_points > 0


async def test_the_daily_cap_clamps_awards_until_local_midnight(game, ledger, ledger_stub):
    awarded = []
    for n in range(3):
        session = await start(game, "m-8", f"s{n}")
        ledger.clock.advance(RULES.duration_millis / 1000)
        awarded.append((await submit(game, session)).result.awarded_points)
    assert sum(awarded) == RULES.daily_points_cap
    assert await balance(ledger_stub, "m-8") == RULES.daily_points_cap


async def test_the_weekly_leaderboard_ranks_best_scores(game, ledger, ledger_stub):
    scores = {}
    for member, keep in (("m-a", 1), ("m-b", 3), ("m-c", 2)):
        session = await start(game, member, "s1")
        ledger.clock.advance(RULES.duration_millis / 1000)
        catches = honest_catches(session)[:keep]
        scores[member] = (await submit(game, session, catches=catches)).result.score
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
