"""Spins per second through the gateway against calling the games service directly.

Starts a ledger, a games service and a gateway as separate processes on free
ports over temporary SQLite files (tools.suite), funds 64 members, then runs the
same bounded load twice over native gRPC (grpcio) from the load-generator process
(bench/load.py): straight to games, and through the gateway with each member's
token. Writes bench/results/gateway.json with gateway_spin_tps, direct_spin_tps,
gateway_ratio, gateway_p99_ms and gateway_cpu_us (the gateway process's CPU per
proxied spin, steadier than rates on a shared machine), gateway_rss_mb (its peak
resident memory), and both at 1, 8, 64 and 256 in flight as a
scaling table (also bench/results/gateway_scaling.md and .png; more lanes than
members share them).

    python -m bench.gateway [--seconds 5] [--members 64]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
from loyalty.games.v1 import games_service_pb2 as games_pb
from loyalty.games.v1 import games_service_pb2_grpc as games_grpc
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from bench.common import (
    SCALING,
    LoadResult,
    Target,
    peak_rss_mb,
    report,
    run_load,
    scaling_report,
    wait_connectable,
)
from bench.load import Call
from services.gateway.tokens import issue_token
from services.kit.clock import SystemClock
from tools.suite import Suite

ISSUER, AUDIENCE = "loyalty-arcade-bench", "loyalty-arcade"
WHEEL = "bench-wheel"
SPIN = f"/{games_pb.DESCRIPTOR.services_by_name['GamesService'].full_name}/Spin"
TARGETS = [Target("gateway_ratio", 0.7), Target("gateway_rss_mb", 150, at_least=False)]


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


def spin_calls(params: dict, lane: int) -> Iterator[Call]:
    """The load generator's workload: lane i is member i spinning in a loop, with
    their token when params["tokens"] has one."""
    member = params["members"][lane % len(params["members"])]
    token = (params.get("tokens") or {}).get(member)
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    while True:
        request = games_pb.SpinRequest(
            wheel_id=WHEEL, member_id=member, request_id=f"{member}:{secrets.token_hex(8)}"
        )
        yield request.SerializeToString(), metadata


async def _spins(
    target: str,
    members: list[str],
    seconds: float,
    tokens=None,
    in_flight: int = 0,
    server_pid: int | None = None,
) -> LoadResult:
    """Members spin in a loop for `seconds` after a 1 s warm-up, `in_flight` lanes
    (default one per member; more share members)."""
    return await run_load(
        target,
        SPIN,
        "bench.gateway:spin_calls",
        {"members": members, "tokens": tokens},
        concurrency=in_flight or len(members),
        seconds=seconds,
        warmup=1.0,
        timeout=10.0,
        server_pid=server_pid,
    )


async def run(seconds: float, member_count: int) -> dict[str, float]:
    members = [f"bench-m-{index}" for index in range(member_count)]
    secret = secrets.token_urlsafe(48)
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as scratch:
        work = Path(scratch)
        suite = Suite(
            work,
            env={
                "LOG_LEVEL": "warning",
                "GATEWAY_JWT_SECRET": secret,
                "GATEWAY_JWT_ISSUER": ISSUER,
                "GATEWAY_JWT_AUDIENCE": AUDIENCE,
                "GATEWAY_MEMBER_RATE": "1000000",
                "GATEWAY_MEMBER_BURST": "1000000",
                "GATEWAY_ADDRESS_RATE": "1000000",
                "GATEWAY_ADDRESS_BURST": "1000000",
            },
            log_dir=work,
        )
        try:
            ledger = await suite.start("ledger")
            games = await suite.start("games")
            # No campaigns service here, so the gateway never reports ready on
            # /readyz: a connection will do, as spins do not need campaigns.
            gateway = await suite.start("gateway", wait=False)
            await wait_connectable(gateway.target)
            await _set_up(ledger.target, games.target, members)
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
            series: dict[str, dict[int, LoadResult]] = {"direct": {}, "gateway": {}}
            for in_flight in sorted({*SCALING, member_count}):
                # The headline's own length at one lane a member; the other levels shorter.
                length = seconds if in_flight == member_count else seconds / 2
                series["direct"][in_flight] = await _spins(
                    games.target, members, length, in_flight=in_flight
                )
                series["gateway"][in_flight] = await _spins(
                    gateway.target,
                    members,
                    length,
                    tokens,
                    in_flight=in_flight,
                    server_pid=gateway.process.pid,
                )
            rss = peak_rss_mb(gateway.process.pid)
        finally:
            await suite.stop_all()
    direct, through = series["direct"][member_count], series["gateway"][member_count]
    direct_tps, direct_p99 = direct.rps, direct.p99_ms
    gateway_tps, gateway_p99 = through.rps, through.p99_ms
    scaling = scaling_report(
        "gateway",
        f"Spins straight to games and through the gateway ({member_count} members)",
        "spins",
        series,
        [f"{member_count} members; more lanes than members share them."],
    )
    return {
        "members": member_count,
        "seconds": seconds,
        "direct_spin_tps": round(direct_tps, 1),
        "direct_p99_ms": round(direct_p99, 2),
        "gateway_spin_tps": round(gateway_tps, 1),
        "gateway_p99_ms": round(gateway_p99, 2),
        "gateway_ratio": round(gateway_tps / direct_tps, 3) if direct_tps else 0.0,
        "gateway_cpu_us": round(through.server_cpu_us_per_call),
        "gateway_rss_mb": round(rss, 1),
        "scaling": scaling,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Gateway spin throughput benchmark")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--members", type=int, default=64)
    args = parser.parse_args(argv)
    report("gateway", asyncio.run(run(args.seconds, args.members)), TARGETS)


if __name__ == "__main__":
    main()
