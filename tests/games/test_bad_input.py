"""Bad input on every RPC: INVALID_ARGUMENT (or the precise code), and nothing changes."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import timestamp_pb2
from loyalty.games.v1 import games_service_pb2 as pb

from services.kit.status import error_info
from tests.support.games import STANDARD_WHEEL, create_stocked_wheel

INVALID = grpc.StatusCode.INVALID_ARGUMENT
FAR_FUTURE = timestamp_pb2.Timestamp(seconds=10**15)  # beyond year 9999: not a valid Timestamp


def wheel_starting(moment: timestamp_pb2.Timestamp) -> pb.WheelConfig:
    config = pb.WheelConfig()
    config.CopyFrom(STANDARD_WHEEL)
    config.start_time.CopyFrom(moment)
    return config


CASES = [
    (
        "UpdateWheel",
        pb.UpdateWheelRequest(wheel_id="daily", config=wheel_starting(FAR_FUTURE)),
        INVALID,
    ),
    ("GetLeaderboard", pb.GetLeaderboardRequest(game_id="g", week_time=FAR_FUTURE), INVALID),
    ("ListPlays", pb.ListPlaysRequest(member_id="m-1", start_time=FAR_FUTURE), INVALID),
    ("GetWheel", pb.GetWheelRequest(wheel_id=""), INVALID),
    ("GetWheel", pb.GetWheelRequest(wheel_id="daily", member_id="a/b"), INVALID),
    ("GetWheel", pb.GetWheelRequest(wheel_id="daily", odds_version=-1), INVALID),
    ("GetWheel", pb.GetWheelRequest(wheel_id="daily", odds_version=99), grpc.StatusCode.NOT_FOUND),
    ("UpdateWheel", pb.UpdateWheelRequest(wheel_id="daily", config=pb.WheelConfig()), INVALID),
    (
        "UpdateWheel",
        pb.UpdateWheelRequest(wheel_id="nope", config=STANDARD_WHEEL),
        grpc.StatusCode.NOT_FOUND,
    ),
    ("ListWheels", pb.ListWheelsRequest(page_size=-1), INVALID),
    (
        "StockWheel",
        pb.StockWheelRequest(wheel_id="daily", unit="points", quantity=0, request_id="r"),
        INVALID,
    ),
    (
        "StockWheel",
        pb.StockWheelRequest(wheel_id="daily", unit="prize:nope", quantity=1, request_id="r"),
        INVALID,
    ),
    (
        "StockWheel",
        pb.StockWheelRequest(wheel_id="daily", unit="points", quantity=1, request_id=""),
        INVALID,
    ),
    ("GetSeedPair", pb.GetSeedPairRequest(member_id=""), INVALID),
    ("SetClientSeed", pb.SetClientSeedRequest(member_id="m-1", client_seed="a:b"), INVALID),
    ("RotateSeed", pb.RotateSeedRequest(member_id="m 1"), INVALID),
    ("Spin", pb.SpinRequest(wheel_id="daily", member_id="m-1", request_id="x" * 65), INVALID),
    ("VerifySpin", pb.VerifySpinRequest(spin_id=""), INVALID),
    ("VerifySpin", pb.VerifySpinRequest(spin_id="s-unknown"), grpc.StatusCode.NOT_FOUND),
    (
        "CreateCatchGame",
        pb.CreateCatchGameRequest(game_id="g", config=pb.CatchGameConfig()),
        INVALID,
    ),
    ("GetCatchGame", pb.GetCatchGameRequest(game_id="no spaces"), INVALID),
    ("StartCatch", pb.StartCatchRequest(game_id="g", member_id="m-1", request_id=""), INVALID),
    (
        "StartCatch",
        pb.StartCatchRequest(game_id="g", member_id="m-1", request_id="r"),
        grpc.StatusCode.NOT_FOUND,
    ),
    (
        "SubmitCatch",
        pb.SubmitCatchRequest(session_id="c-x", member_id="m-1", claimed_score=-1),
        INVALID,
    ),
    (
        "SubmitCatch",
        pb.SubmitCatchRequest(session_id="c-x", member_id="m-1"),
        grpc.StatusCode.NOT_FOUND,
    ),
    # A page token is bound to its game and week, so it is read once the game is found.
    (
        "GetLeaderboard",
        pb.GetLeaderboardRequest(game_id="g", page_token="not-a-token"),
        grpc.StatusCode.NOT_FOUND,
    ),
    ("GetLeaderboard", pb.GetLeaderboardRequest(game_id="g", page_size=-5), INVALID),
    ("ListPlays", pb.ListPlaysRequest(member_id="m-1", page_token="zz"), INVALID),
    ("GetWheelStats", pb.GetWheelStatsRequest(wheel_id="daily", odds_version=-1), INVALID),
]


@pytest.mark.parametrize(
    ("method", "request_message", "code"), CASES, ids=lambda v: v if isinstance(v, str) else None
)
async def test_bad_input_is_refused_and_changes_nothing(games, method, request_message, code):
    await create_stocked_wheel(games.stub, "daily", STANDARD_WHEEL)
    before = await games.stub.GetWheel(pb.GetWheelRequest(wheel_id="daily"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await getattr(games.stub, method)(request_message)
    assert raised.value.code() == code, raised.value.details()
    assert error_info(raised.value).reason
    after = await games.stub.GetWheel(pb.GetWheelRequest(wheel_id="daily"))
    assert after == before
    plays = await games.stub.ListPlays(pb.ListPlaysRequest(member_id="m-1"))
    assert list(plays.plays) == []


async def test_an_unparsable_request_is_invalid_not_internal(games):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{games.host.port}") as channel:
        raw = channel.unary_unary("/loyalty.games.v1.GamesService/Spin")
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await raw(b"\xff\xff\xff")  # bytes that are not a SpinRequest
    assert raised.value.code() == INVALID


async def test_updates_create_odds_versions_and_guard_against_lost_updates(games):
    await create_stocked_wheel(games.stub, "daily", STANDARD_WHEEL)
    changed = pb.WheelConfig()
    changed.CopyFrom(STANDARD_WHEEL)
    changed.segments[0].weight = 150
    updated = await games.stub.UpdateWheel(
        pb.UpdateWheelRequest(wheel_id="daily", config=changed, expected_odds_version=1)
    )
    assert updated.wheel.odds_version == 2
    assert updated.wheel.odds[0].percent == "75.00"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await games.stub.UpdateWheel(
            pb.UpdateWheelRequest(wheel_id="daily", config=STANDARD_WHEEL, expected_odds_version=1)
        )
    assert error_info(raised.value).reason == "ODDS_VERSION_CHANGED"
    old = await games.stub.GetWheel(pb.GetWheelRequest(wheel_id="daily", odds_version=1))
    assert old.wheel.odds[0].percent == "50.00"
    listed = await games.stub.ListWheels(pb.ListWheelsRequest(page_size=1))
    assert [w.id for w in listed.wheels] == ["daily"] and listed.wheels[0].odds_version == 2
