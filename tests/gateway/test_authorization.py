"""Who may do what, checked at the gateway before any upstream sees the call.

The games and campaigns targets point at a server that lacks their services,
so an admitted call comes back UNIMPLEMENTED from upstream while a refused one
is PERMISSION_DENIED from the gateway itself."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import pytest_asyncio
from loyalty.campaigns.v1 import campaigns_service_pb2 as campaigns_pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as campaigns_grpc
from loyalty.games.v1 import games_service_pb2 as games_pb
from loyalty.games.v1 import games_service_pb2_grpc as games_grpc
from loyalty.gateway.v1 import gateway_service_pb2 as gateway_pb
from loyalty.gateway.v1 import gateway_service_pb2_grpc as gateway_grpc

from services.kit.status import error_info
from tests.support.gateway import bearer, gateway_settings, node_call

WALLET = "loyalty.gateway.v1.WalletService"
# A bound on every wait for the gateway, so a bug fails the test instead of hanging it.
CALL_SECONDS = 10


@pytest_asyncio.fixture
async def channel(start_gateway, health_upstream):
    target = health_upstream.target
    gateway = await start_gateway(
        gateway_settings(ledger_target=target, games_target=target, campaigns_target=target)
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        yield channel


async def outcome(call) -> tuple[grpc.StatusCode, str | None]:
    try:
        await asyncio.wait_for(call, CALL_SECONDS)
    except grpc.aio.AioRpcError as error:
        info = error_info(error)
        return error.code(), info.reason if info else None
    return grpc.StatusCode.OK, None


ADMITTED = (grpc.StatusCode.UNIMPLEMENTED, "UPSTREAM_UNIMPLEMENTED")


async def test_a_player_acts_only_as_themselves(channel, tokens):
    games = games_grpc.GamesServiceStub(channel)
    player = bearer(tokens.issue("m-1"))
    mine = games_pb.SpinRequest(wheel_id="w", member_id="m-1", request_id="r-1")
    theirs = games_pb.SpinRequest(wheel_id="w", member_id="m-2", request_id="r-2")
    implied = games_pb.SpinRequest(wheel_id="w", request_id="r-3")
    assert await outcome(games.Spin(mine, metadata=player)) == ADMITTED
    assert await outcome(games.Spin(implied, metadata=player)) == ADMITTED
    assert await outcome(games.Spin(theirs, metadata=player)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "MEMBER_MISMATCH",
    )
    admin = bearer(tokens.issue("root", ["admin"]))
    assert await outcome(games.Spin(theirs, metadata=admin)) == ADMITTED


async def test_streams_are_guarded_like_unary_calls(channel, tokens):
    wallet = gateway_grpc.WalletServiceStub(channel)
    stream = wallet.WatchWallet(
        gateway_pb.WatchWalletRequest(member_id="m-2"), metadata=bearer(tokens.issue("m-1"))
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await asyncio.wait_for(stream.read(), CALL_SECONDS)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(refused.value).reason == "MEMBER_MISMATCH"


async def test_nested_member_ids_and_player_activity_types(channel, tokens):
    campaigns = campaigns_grpc.CampaignsServiceStub(channel)
    player = bearer(tokens.issue("m-1"))

    def track(member_id: str, kind: str) -> campaigns_pb.TrackActivityRequest:
        return campaigns_pb.TrackActivityRequest(
            activity=campaigns_pb.Activity(activity_id="a-1", member_id=member_id, type=kind)
        )

    assert await outcome(
        campaigns.TrackActivity(track("m-1", "social_share"), metadata=player)
    ) == (ADMITTED)
    assert await outcome(
        campaigns.TrackActivity(track("m-2", "social_share"), metadata=player)
    ) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "MEMBER_MISMATCH",
    )
    assert await outcome(campaigns.TrackActivity(track("m-1", "purchase"), metadata=player)) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "CHOICE_NOT_ALLOWED",
    )
    backend = bearer(tokens.issue("pos-system", ["admin"]))
    assert await outcome(campaigns.TrackActivity(track("m-1", "purchase"), metadata=backend)) == (
        ADMITTED
    )


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (["player"], (grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED")),
        (["campaign-manager"], ADMITTED),
        (["admin"], ADMITTED),
    ],
)
async def test_manager_calls_need_a_manager_role(channel, tokens, roles, expected):
    campaigns = campaigns_grpc.CampaignsServiceStub(channel)
    games = games_grpc.GamesServiceStub(channel)
    token = bearer(tokens.issue("alice", roles))
    pause = campaigns.PauseCampaign(
        campaigns_pb.PauseCampaignRequest(campaign_id="c-1"), metadata=token
    )
    stock = games.StockWheel(games_pb.StockWheelRequest(wheel_id="w"), metadata=token)
    assert await outcome(pause) == expected
    assert await outcome(stock) == expected


async def test_methods_not_listed_are_not_reachable(channel, tokens):
    ledger_post = channel.unary_unary("/loyalty.ledger.v1.LedgerService/PostTransfers")
    code, _ = await outcome(ledger_post(b"", metadata=bearer(tokens.issue("root", ["admin"]))))
    assert code == grpc.StatusCode.UNIMPLEMENTED


async def test_authorization_cases_through_node_clients(
    start_gateway, health_upstream, node, tokens
):
    target = health_upstream.target
    gateway = await start_gateway(gateway_settings(ledger_target=target))
    calls = []
    for transport in ("connect-json", "grpc-web", "grpc"):
        common = node_call(transport, gateway.port, WALLET, token=tokens.issue("m-1"))
        calls += [
            {**common, "method": "GetWallet", "request": {"memberId": "m-2"}},
            {**common, "method": "WatchWallet", "request": {"memberId": "m-2"}, "maxMessages": 1},
            {**common, "method": "GetWallet", "request": {}, "token": tokens.issue(ttl=-60)},
            {**common, "method": "GetWallet", "request": {}, "token": None},
        ]
    results = await node(calls)
    observed = [(r["error"]["code"], r["error"]["reason"]) for r in results]
    assert (
        observed
        == [
            ("permission_denied", "MEMBER_MISMATCH"),
            ("permission_denied", "MEMBER_MISMATCH"),
            ("unauthenticated", "TOKEN_EXPIRED"),
            ("unauthenticated", "TOKEN_MISSING"),
        ]
        * 3
    )


class SpinsOfAnyone(games_grpc.GamesServiceServicer):
    """A games upstream that verifies any spin it is asked about: `s-<member>`
    is that member's spin, with their balance."""

    async def VerifySpin(self, request, context):
        spin = games_pb.Spin(
            spin_id=request.spin_id,
            member_id=request.spin_id.removeprefix("s-"),
            points_balance_after=1234,
        )
        return games_pb.VerifySpinResponse(spin=spin, verified=True)


@pytest_asyncio.fixture
async def games(start_gateway, health_upstream):
    server = grpc.aio.server()
    games_grpc.add_GamesServiceServicer_to_server(SpinsOfAnyone(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    gateway = await start_gateway(
        gateway_settings(ledger_target=health_upstream.target, games_target=f"127.0.0.1:{port}")
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        yield games_grpc.GamesServiceStub(channel)
    await server.stop(None)


async def test_a_player_sees_only_their_own_spin(games, tokens):
    player = bearer(tokens.issue("m-1"))
    mine = await games.VerifySpin(
        games_pb.VerifySpinRequest(spin_id="s-m-1"), metadata=player, timeout=5
    )
    assert (mine.spin.member_id, mine.verified) == ("m-1", True)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await games.VerifySpin(
            games_pb.VerifySpinRequest(spin_id="s-m-2"), metadata=player, timeout=5
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(refused.value).reason == "MEMBER_MISMATCH"
    # Nothing of the other member's spin reaches the player, not even whose it is.
    assert "m-2" not in str(refused.value.trailing_metadata())
    admin = bearer(tokens.issue("root", ["admin"]))
    theirs = await games.VerifySpin(
        games_pb.VerifySpinRequest(spin_id="s-m-2"), metadata=admin, timeout=5
    )
    assert theirs.spin.points_balance_after == 1234
