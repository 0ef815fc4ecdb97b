"""Progress behind the gateway: a player reads only their own progress and
cannot define anything; a manager can."""

from __future__ import annotations

import grpc
import pytest
from loyalty.progress.v1 import progress_service_pb2 as pb
from loyalty.progress.v1 import progress_service_pb2_grpc as progress_grpc

from services.gateway.server import GatewaySettings, build_server
from services.gateway.tokens import issue_token
from tests.progress.test_api import CLUB, TIMEOUT, definition

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def token(running, subject: str, role: str) -> tuple[tuple[str, str], ...]:
    signed = issue_token(
        SECRET.encode(),
        subject=subject,
        roles=[role],
        issuer="test",
        audience="test",
        now_us=running.clock.now_us(),
        ttl_seconds=3600,
    )
    return (("authorization", f"Bearer {signed}"),)


async def test_players_see_their_own_progress_and_managers_define(running) -> None:
    settings = GatewaySettings(
        ledger_target=running.ledger_target,
        games_target=None,
        campaigns_target=None,
        progress_target=f"127.0.0.1:{running.host.port}",
        jwt_issuer="test",
        jwt_audience="test",
        jwt_secret=SECRET,
    )
    gateway = await build_server(settings, "127.0.0.1:0", running.clock)
    await gateway.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = progress_grpc.ProgressServiceStub(channel)
            manager = token(running, "ops", "campaign-manager")
            player = token(running, "m-1", "player")
            applied = await stub.ApplyDefinition(
                pb.ApplyDefinitionRequest(definition=definition(CLUB)),
                metadata=manager,
                timeout=TIMEOUT,
            )
            assert applied.definition.version == 1
            mine = await stub.GetMemberProgress(
                pb.GetMemberProgressRequest(), metadata=player, timeout=TIMEOUT
            )
            assert (mine.member_id, [t.tier_id for t in mine.tiers]) == ("m-1", ["member"])
            for call, request in (
                (stub.GetMemberProgress, pb.GetMemberProgressRequest(member_id="m-2")),
                (stub.ApplyDefinition, pb.ApplyDefinitionRequest(definition=definition(CLUB))),
                (stub.SetTierFloor, pb.SetTierFloorRequest(program_id="club", member_id="m-1")),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await call(request, metadata=player, timeout=TIMEOUT)
                assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await gateway.stop(1.0)
