"""Spins end to end against the ledger's own unary throughput, in one run on 127.0.0.1.

Starts the ledger and the games service as real processes (tools.suite) over
temporary SQLite files, opens and funds MEMBERS member wallets with the ledger
bench's set-up, creates a wheel (10 points a spin, points and an item prize, pools
stocked far beyond the run) and measures from a separate load-generator process:

- ledger_unary_tps: the ledger's PostTransfers with one transfer per call, the
  ledger bench's workload, at 64 concurrent calls;
- spin_tps, spin_p50_ms, spin_p99_ms: games.Spin, one member per lane (64 members
  spinning at once, each spin a fresh request id): balance check, draw, the
  outbox record, the ledger chain, settlement; spin_ratio = spin_tps / ledger_unary_tps;
- games_rss_mb: the games process's peak resident memory;
- scaling: spins/s and p99 at 1, 8, 64 and 256 in flight (256: four lanes a
  member), also as bench/results/games_scaling.md and .png.

Then checks that games revenue grew by exactly 10 points per spin sent, so every
measured spin was charged once. Writes bench/results/games.json.

    python -m bench.games [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
from loyalty.games.v1 import games_service_pb2 as pb
from loyalty.games.v1 import games_service_pb2_grpc as pb_grpc
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from bench.common import SCALING, LoadResult, Target, peak_rss_mb, report, run_load, scaling_report
from bench.ledger import POST_TRANSFERS, REVENUE, balance, set_up, wallet
from bench.load import Call
from services.games.server import SERVICE_NAME
from services.kit.clock import SystemClock
from services.kit.logs import configure_logging
from tools.suite import Suite

MEMBERS = 64
COST = 10
WHEEL = "bench-wheel"
SPIN = f"/{SERVICE_NAME}/Spin"
TARGETS = [Target("spin_ratio", 0.5), Target("games_rss_mb", 150, at_least=False)]


def spin_calls(params: dict, lane: int) -> Iterator[Call]:
    """The load generator's workload: lane i spins as member i, a new request id each time."""
    member = wallet(lane % params["members"])
    count = 0
    while True:
        count += 1
        request = pb.SpinRequest(
            wheel_id=WHEEL, member_id=member, request_id=f"{params['prefix']}-{lane}-{count}"
        )
        yield request.SerializeToString(), ()


async def create_wheel(games: pb_grpc.GamesServiceStub) -> None:
    config = pb.WheelConfig(
        display_name="Bench wheel",
        segments=[
            pb.Segment(label="Try again", weight=60),
            pb.Segment(label="5 points", weight=30, prize=pb.Prize(points=5)),
            pb.Segment(
                label="Coffee",
                weight=10,
                prize=pb.Prize(item=pb.PrizeItem(unit="prize:free-coffee", quantity=1)),
            ),
        ],
        fallback_segment_index=0,
        cost_points=COST,
        spins_per_day=0,
        time_zone="UTC",
    )
    await games.CreateWheel(pb.CreateWheelRequest(wheel_id=WHEEL, config=config), timeout=10)
    for unit in ("points", "prize:free-coffee"):
        await games.StockWheel(
            pb.StockWheelRequest(wheel_id=WHEEL, unit=unit, quantity=10**12, request_id="bench"),
            timeout=10,
        )


async def run(seconds: float) -> dict:
    expires_at = SystemClock().now_us() + 365 * 86_400 * 1_000_000
    unary_params = {
        "prefix": "bench:unary",
        "seed": 1,
        "wallets": MEMBERS,
        "expires_at": expires_at,
        "batch": 1,
    }
    with tempfile.TemporaryDirectory(prefix="bench-games-") as scratch:
        work = Path(scratch)
        suite = Suite(work / "data", log_dir=work / "logs")
        ledger_process = await suite.start("ledger")
        games_process = await suite.start("games")
        try:
            async with (
                grpc.aio.insecure_channel(ledger_process.target) as ledger_channel,
                grpc.aio.insecure_channel(games_process.target) as games_channel,
            ):
                ledger = ledger_grpc.LedgerServiceStub(ledger_channel)
                games = pb_grpc.GamesServiceStub(games_channel)
                await set_up(ledger, MEMBERS)
                await create_wheel(games)
                unary = await run_load(
                    ledger_process.target,
                    POST_TRANSFERS,
                    "bench.ledger:transfer_calls",
                    unary_params,
                    seconds=seconds,
                    server_pid=ledger_process.process.pid,
                )
                revenue_before = await balance(ledger, REVENUE)
                by_load: dict[int, LoadResult] = {}
                for in_flight in SCALING:
                    by_load[in_flight] = await run_load(
                        games_process.target,
                        SPIN,
                        "bench.games:spin_calls",
                        {"prefix": f"bench{in_flight}", "members": MEMBERS},
                        concurrency=in_flight,
                        # The headline's own length at 64; the other levels shorter.
                        seconds=seconds if in_flight == MEMBERS else seconds / 2,
                        server_pid=games_process.process.pid,
                    )
                spins = by_load[MEMBERS]
                charged = await balance(ledger, REVENUE) - revenue_before
                sent = sum(sum(result.lane_calls) for result in by_load.values())
                errors = [result.errors for result in by_load.values() if result.errors]
                verified = not errors and charged == COST * sent
                rss = peak_rss_mb(games_process.process.pid)
        finally:
            await suite.stop_all()
    if not verified:
        print(f"  games: revenue grew by {charged}, not {COST} per spin sent: {errors}")
    scaling = scaling_report(
        "games",
        f"Games: spins end to end ({MEMBERS} members; 256 in flight is 4 lanes a member)",
        "spins",
        {"spin": by_load},
        [f"Ledger unary at 64 in flight in the same run: {unary.rps:,.0f} transfers/s."],
    )
    return {
        "members": MEMBERS,
        "seconds": seconds,
        "ledger_unary_tps": unary.rps,
        "spin_tps": spins.rps,
        "spin_p50_ms": spins.p50_ms,
        "spin_p99_ms": spins.p99_ms,
        "spin_ratio": spins.rps / unary.rps,
        "spin_server_cpu_us": spins.server_cpu_us_per_call,
        "games_rss_mb": rss,
        "charged_once": verified,
        "scaling": scaling,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    configure_logging("bench", "warning")
    results = asyncio.run(run(args.seconds))
    report("games", results, TARGETS)


if __name__ == "__main__":
    main()
