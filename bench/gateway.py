"""Spins per second through the gateway against calling the games service directly.

Starts a ledger, a games service and a gateway as separate processes on free
ports over temporary SQLite files, funds 64 members, then runs the same
bounded load twice over native gRPC (grpcio): straight to games, and through
the gateway with each member's token. Writes bench/results/gateway.json with
gateway_spin_tps, direct_spin_tps, gateway_ratio and gateway_p99_ms.

    python -m bench.gateway [--seconds 5] [--members 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loyalty.games.v1 import games_service_pb2 as games_pb
from loyalty.games.v1 import games_service_pb2_grpc as games_grpc
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.gateway.tokens import issue_token
from services.kit.clock import SystemClock

RESULTS = Path(__file__).resolve().parent / "results" / "gateway.json"
ISSUER, AUDIENCE = "loyalty-arcade-bench", "loyalty-arcade"
WHEEL = "bench-wheel"
STARTUP_SECONDS = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _start(module: str, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        env={**os.environ, "LOG_LEVEL": "warning", **env},
        stdout=log.open("wb"),
        stderr=asyncio.subprocess.STDOUT,
    )


async def _wait_serving(target: str, *, has_health: bool = True) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), STARTUP_SECONDS)
        if not has_health:
            return
        health = health_pb2_grpc.HealthStub(channel)
        response = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            raise RuntimeError(f"{target} is not serving")


def _account(account_id: str, kind: int, **fields) -> ledger_pb.OpenAccountRequest:
    return ledger_pb.OpenAccountRequest(
        account=ledger_pb.Account(id=account_id, unit="points", kind=kind, **fields)
    )


async def _set_up(ledger_target: str, games_target: str, members: list[str]) -> None:
    """Members with points to spend, a cheap wheel with a stocked points pool."""
    async with grpc.aio.insecure_channel(ledger_target) as channel:
        ledger = ledger_grpc.LedgerServiceStub(channel)
        await ledger.OpenAccount(
            _account("program:issuance", ledger_pb.ACCOUNT_KIND_PROGRAM_ISSUANCE)
        )
        await ledger.OpenAccount(_account("program:breakage", ledger_pb.ACCOUNT_KIND_BREAKAGE))
        wallet = ledger_pb.AccountFlags(debits_must_not_exceed_credits=True, expiring_lots=True)
        transfers = []
        for member in members:
            await ledger.OpenAccount(
                _account(
                    member,
                    ledger_pb.ACCOUNT_KIND_MEMBER_WALLET,
                    flags=wallet,
                    expiry_account_id="program:breakage",
                )
            )
            transfers.append(
                ledger_pb.Transfer(
                    id=f"bench:fund:{member}",
                    debit_account_id="program:issuance",
                    credit_account_id=member,
                    amount=10_000_000,
                    code=ledger_pb.TRANSFER_CODE_EARN,
                    kind=ledger_pb.TRANSFER_KIND_POSTED,
                )
            )
        await ledger.PostTransfers(ledger_pb.PostTransfersRequest(transfers=transfers))
    async with grpc.aio.insecure_channel(games_target) as channel:
        games = games_grpc.GamesServiceStub(channel)
        config = games_pb.WheelConfig(
            display_name="Bench wheel",
            segments=[
                games_pb.Segment(label="Nothing", weight=9),
                games_pb.Segment(label="5 points", weight=1, prize=games_pb.Prize(points=5)),
            ],
            fallback_segment_index=0,
            cost_points=1,
            spins_per_day=0,
            time_zone="UTC",
        )
        await games.CreateWheel(games_pb.CreateWheelRequest(wheel_id=WHEEL, config=config))
        await games.StockWheel(
            games_pb.StockWheelRequest(
                wheel_id=WHEEL, unit="points", quantity=100_000_000, request_id="bench:stock"
            )
        )


async def _load(
    target: str, members: list[str], seconds: float, metadata_for: Callable[[str], tuple]
) -> tuple[float, float]:
    """Every member spins in a loop for `seconds`; returns (spins per second, p99 ms)."""
    latencies: list[float] = []
    failures: list[str] = []
    async with grpc.aio.insecure_channel(target) as channel:
        games = games_grpc.GamesServiceStub(channel)
        started = time.perf_counter()
        stop_at = started + seconds

        async def spin_loop(member: str) -> None:
            metadata = metadata_for(member)
            count = 0
            while time.perf_counter() < stop_at:
                count += 1
                request = games_pb.SpinRequest(
                    wheel_id=WHEEL, member_id=member, request_id=f"{member}:{secrets.token_hex(8)}"
                )
                began = time.perf_counter()
                try:
                    await games.Spin(request, metadata=metadata, timeout=10)
                except grpc.aio.AioRpcError as error:
                    failures.append(error.code().name)
                    continue
                latencies.append(time.perf_counter() - began)

        await asyncio.gather(*(spin_loop(member) for member in members))
        elapsed = time.perf_counter() - started
    if failures:
        print(f"  {len(failures)} failed spins, e.g. {failures[0]}", file=sys.stderr)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan")
    return len(latencies) / elapsed, p99


async def run(seconds: float, member_count: int) -> dict[str, float]:
    members = [f"bench-m-{index}" for index in range(member_count)]
    ledger_port, games_port, gateway_port = _free_port(), _free_port(), _free_port()
    ledger_target, games_target = f"127.0.0.1:{ledger_port}", f"127.0.0.1:{games_port}"
    gateway_target = f"127.0.0.1:{gateway_port}"
    secret = secrets.token_urlsafe(48)
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as scratch:
        work = Path(scratch)
        processes = [
            await _start(
                "services.ledger",
                {"LEDGER_LISTEN": ledger_target, "LEDGER_DB": str(work / "ledger.db")},
                work / "ledger.log",
            ),
            await _start(
                "services.games",
                {
                    "GAMES_LISTEN": games_target,
                    "GAMES_DB": str(work / "games.db"),
                    "GAMES_LEDGER_TARGET": ledger_target,
                },
                work / "games.log",
            ),
            await _start(
                "services.gateway",
                {
                    "GATEWAY_LISTEN": gateway_target,
                    "GATEWAY_LEDGER_TARGET": ledger_target,
                    "GATEWAY_GAMES_TARGET": games_target,
                    "GATEWAY_CAMPAIGNS_TARGET": "",
                    "GATEWAY_JWT_SECRET": secret,
                    "GATEWAY_JWT_ISSUER": ISSUER,
                    "GATEWAY_JWT_AUDIENCE": AUDIENCE,
                    "GATEWAY_MEMBER_RATE": "1000000",
                    "GATEWAY_MEMBER_BURST": "1000000",
                    "GATEWAY_ADDRESS_RATE": "1000000",
                    "GATEWAY_ADDRESS_BURST": "1000000",
                },
                work / "gateway.log",
            ),
        ]
        try:
            await _wait_serving(ledger_target)
            await _wait_serving(games_target)
            # The gateway serves HTTP health, not gRPC health: a connection will do.
            await _wait_serving(gateway_target, has_health=False)
            await _set_up(ledger_target, games_target, members)
            now_us = SystemClock().now_us()
            tokens = {
                member: issue_token(
                    secret.encode(),
                    subject=member,
                    roles=["player"],
                    issuer=ISSUER,
                    audience=AUDIENCE,
                    now_us=now_us,
                    ttl_seconds=3600,
                )
                for member in members
            }
            # Warm both paths (connections, caches) before measuring.
            await _load(games_target, members, 1.0, lambda _member: ())
            direct_tps, direct_p99 = await _load(games_target, members, seconds, lambda _m: ())

            def bearer(member: str) -> tuple:
                return (("authorization", f"Bearer {tokens[member]}"),)

            await _load(gateway_target, members, 1.0, bearer)
            gateway_tps, gateway_p99 = await _load(gateway_target, members, seconds, bearer)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                await process.wait()
    return {
        "members": member_count,
        "seconds": seconds,
        "direct_spin_tps": round(direct_tps, 1),
        "direct_p99_ms": round(direct_p99, 2),
        "gateway_spin_tps": round(gateway_tps, 1),
        "gateway_p99_ms": round(gateway_p99, 2),
        "gateway_ratio": round(gateway_tps / direct_tps, 3) if direct_tps else 0.0,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Gateway spin throughput benchmark")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--members", type=int, default=64)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.seconds, args.members))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
