"""Kill the campaigns process mid-load and restart it: every acknowledged
activity is awarded exactly once, and retried ones never twice."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as pb_grpc

from services.kit.clock import SystemClock
from tests.campaigns.helpers import balance, program
from tests.campaigns.messages import purchase

REPO = Path(__file__).resolve().parents[2]
ACTIVITIES = 150
KILL_AFTER = 40
STARTUP_GUARD_SECONDS = 30


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def spawn(db: Path, ledger_target: str, port: int) -> asyncio.subprocess.Process:
    env = os.environ | {
        "CAMPAIGNS_DB": str(db),
        "CAMPAIGNS_LISTEN": f"127.0.0.1:{port}",
        "CAMPAIGNS_LEDGER_TARGET": ledger_target,
        "LOG_LEVEL": "warning",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.campaigns",
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        response = await health.Check(
            health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=STARTUP_GUARD_SECONDS
        )
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    return process


@pytest.mark.slow
async def test_kill_mid_load_then_restart_awards_each_activity_once(ledger, tmp_path):
    port = free_port()
    target = f"127.0.0.1:{port}"
    process = await spawn(tmp_path / "campaigns.db", ledger.target, port)
    now = SystemClock().now_us()
    amounts = {f"a-{n}": 100 * (n % 7 + 1) for n in range(ACTIVITIES)}
    acknowledged: dict[str, pb.Breakdown] = {}
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.CampaignsServiceStub(channel)
            await program(stub)

            async def deliver(activity_id: str) -> None:
                request = pb.TrackActivityRequest(
                    activity=purchase(activity_id, amounts[activity_id], now)
                )
                response = await stub.TrackActivity(request, timeout=20)
                acknowledged[activity_id] = response.breakdown
                if len(acknowledged) == KILL_AFTER:
                    process.kill()

            results = await asyncio.gather(
                *(deliver(activity_id) for activity_id in amounts), return_exceptions=True
            )
        await process.wait()
        failures = [r for r in results if isinstance(r, BaseException)]
        assert failures, "the kill came after every activity was answered"
        assert all(isinstance(f, grpc.aio.AioRpcError) for f in failures)

        process = await spawn(tmp_path / "campaigns.db", ledger.target, port)
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.CampaignsServiceStub(channel)
            # Clients retry what was not acknowledged; acknowledged ones replay.
            for activity_id, amount in amounts.items():
                request = pb.TrackActivityRequest(activity=purchase(activity_id, amount, now))
                response = await stub.TrackActivity(request, timeout=20)
                if activity_id in acknowledged:
                    assert response.replayed
                    assert response.breakdown == acknowledged[activity_id]
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
    assert await balance(ledger, "m-1") == sum(amount // 100 for amount in amounts.values())
