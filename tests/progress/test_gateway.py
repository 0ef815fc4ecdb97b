"""Progress behind the gateway: a player reads only their own progress and
cannot define anything; a manager can."""

from __future__ import annotations

import grpc
import pytest
from loyalty.progress.v1 import progress_service_pb2 as pb
from loyalty.progress.v1 import progress_service_pb2_grpc as progress_grpc

from tests.support.progress import CLUB, TIMEOUT, definition, gateway_in_front, gateway_token


def bearer(running, subject: str, role: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {gateway_token(running.clock.now_us(), subject, role)}"),)


async def test_players_see_their_own_progress_and_managers_define(running) -> None:
    async with (
        gateway_in_front(running) as target,
        grpc.aio.insecure_channel(target) as channel,
    ):
        stub = progress_grpc.ProgressServiceStub(channel)
        manager = bearer(running, "ops", "campaign-manager")
        player = bearer(running, "m-1", "player")
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
