"""TrackActivity throughput with 10 live campaigns against 10,000 defined.

Starts a ledger and a campaigns service as separate processes on free ports
over temporary SQLite files, twice:
- "10": the base rule and 10 live bonus campaigns matching every purchase;
- "10000": the base rule, 50 live matching bonus campaigns (the same 10 groups,
  5 best-of contenders each, so the ledger chain has the same legs) and 9,949
  campaigns that cannot match a purchase now: rules for other activity types,
  purchase rules whose windows ended last year or start next year, and drafts.
Each run drives `--clients` concurrent callers tracking purchases for
`--seconds`, then writes bench/results/campaigns.json with activity_tps_10,
activity_tps_10000, scale_ratio (the second over the first; target >= 0.7) and
activity_p99_ms (of the 10,000 run).

    python -m bench.campaigns [--seconds 5] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as pb_grpc

from services.kit.clock import SystemClock

RESULTS = Path(__file__).resolve().parent / "results" / "campaigns.json"
STARTUP_SECONDS = 60
MEMBERS = 64
GROUPS = 10
OTHER_TYPES = ("game_played", "product_review", "app_login", "profile_completed", "social_share")


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


async def _wait_serving(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        response = await health.Check(
            health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=STARTUP_SECONDS
        )
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            raise RuntimeError(f"{target} is not serving")


def _always() -> pb.Schedule:
    return pb.Schedule(time_zone="Europe/Paris")


def _window(year: int) -> pb.Schedule:
    return pb.Schedule(
        start=pb.LocalDateTime(year=year, month=6, day=1),
        duration=duration_pb2.Duration(seconds=7 * 86_400),
        time_zone="Europe/Paris",
    )


def _bonus(group: int, points: int) -> pb.CampaignSpec:
    return pb.CampaignSpec(
        display_name=f"bonus in group {group}",
        kind=pb.CAMPAIGN_KIND_FIXED_BONUS,
        reward=pb.Reward(points=points),
        conditions=pb.Conditions(activity_types=["purchase"]),
        schedule=_always(),
        budget_points=10**11,
        stacking=pb.Stacking(group=f"g{group}", mode=pb.STACKING_MODE_BEST_OF_GROUP),
    )


def _idle(n: int, this_year: int) -> tuple[pb.CampaignSpec, bool]:
    """A campaign that cannot match a purchase now, and whether to schedule it."""
    kind = n % 4
    if kind == 0:
        spec = pb.CampaignSpec(
            display_name="points for another activity",
            kind=pb.CAMPAIGN_KIND_BASE_RULE,
            reward=pb.Reward(points=5),
            conditions=pb.Conditions(activity_types=[OTHER_TYPES[n % len(OTHER_TYPES)]]),
            schedule=_always(),
        )
        return spec, True
    if kind in (1, 2):
        year = this_year - 1 if kind == 1 else this_year + 1
        spec = pb.CampaignSpec(
            display_name="purchase rule of another year",
            kind=pb.CAMPAIGN_KIND_BASE_RULE,
            reward=pb.Reward(points_per_unit=2),
            schedule=_window(year),
        )
        return spec, True
    return _bonus(n % GROUPS, 1), False


async def _define(stub, live: int, idle: int) -> None:
    this_year = time.gmtime().tm_year
    specs: list[tuple[str, pb.CampaignSpec, bool]] = [
        (
            "base",
            pb.CampaignSpec(
                display_name="1 point per euro",
                kind=pb.CAMPAIGN_KIND_BASE_RULE,
                reward=pb.Reward(points_per_unit=1),
                schedule=_always(),
            ),
            True,
        )
    ]
    specs += [(f"live-{n}", _bonus(n % GROUPS, 10 + n), True) for n in range(live)]
    specs += [(f"idle-{n}", *_idle(n, this_year)) for n in range(idle)]
    queue = iter(specs)

    async def worker() -> None:
        for campaign_id, spec, schedule in queue:
            await stub.CreateCampaign(pb.CreateCampaignRequest(campaign_id=campaign_id, spec=spec))
            if schedule:
                await stub.ScheduleCampaign(pb.ScheduleCampaignRequest(campaign_id=campaign_id))

    await asyncio.gather(*(worker() for _ in range(16)))
    for n in range(MEMBERS):
        await stub.UpsertMember(pb.UpsertMemberRequest(member=pb.Member(member_id=f"m-{n}")))


async def _load(stub, seconds: float, clients: int, label: str) -> tuple[float, float]:
    """Clients track purchases in a loop for `seconds`; (activities per second, p99 ms)."""
    counter = itertools.count()
    clock = SystemClock()
    latencies: list[float] = []
    failures: list[str] = []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < deadline:
            n = next(counter)
            micros = clock.now_us()
            activity = pb.Activity(
                activity_id=f"{label}-{n}",
                member_id=f"m-{n % MEMBERS}",
                type="purchase",
                occur_time=timestamp_pb2.Timestamp(
                    seconds=micros // 1_000_000, nanos=micros % 1_000_000 * 1000
                ),
                purchase=pb.Purchase(amount_minor=1000 + n % 5000, currency="EUR"),
            )
            started = time.perf_counter()
            try:
                await stub.TrackActivity(pb.TrackActivityRequest(activity=activity), timeout=30)
            except grpc.aio.AioRpcError as error:
                failures.append(error.code().name)
                continue
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - began
    if failures:
        print(f"  {len(failures)} failed activities, e.g. {failures[0]}", file=sys.stderr)
    latencies.sort()
    p99 = latencies[max(int(len(latencies) * 0.99) - 1, 0)] * 1000 if latencies else float("nan")
    return len(latencies) / elapsed, p99


async def _scenario(
    workdir: Path, live: int, idle: int, seconds: float, clients: int
) -> tuple[float, float]:
    ledger_target = f"127.0.0.1:{_free_port()}"
    campaigns_target = f"127.0.0.1:{_free_port()}"
    name = f"campaigns-{live + idle}"
    ledger = await _start(
        "services.ledger",
        {"LEDGER_LISTEN": ledger_target, "LEDGER_DB": str(workdir / f"ledger-{name}.db")},
        workdir / f"ledger-{name}.log",
    )
    campaigns = await _start(
        "services.campaigns",
        {
            "CAMPAIGNS_LISTEN": campaigns_target,
            "CAMPAIGNS_DB": str(workdir / f"{name}.db"),
            "CAMPAIGNS_LEDGER_TARGET": ledger_target,
        },
        workdir / f"{name}.log",
    )
    try:
        await _wait_serving(ledger_target)
        await _wait_serving(campaigns_target)
        async with grpc.aio.insecure_channel(campaigns_target) as channel:
            stub = pb_grpc.CampaignsServiceStub(channel)
            print(f"defining {1 + live + idle} campaigns ...", file=sys.stderr)
            await _define(stub, live, idle)
            await _load(stub, min(seconds, 1.0), clients, f"warm-{name}")
            return await _load(stub, seconds, clients, name)
    finally:
        for process in (campaigns, ledger):
            process.terminate()
            await process.wait()


async def run(seconds: float, clients: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-campaigns-") as workdir:
        tps_10, p99_10 = await _scenario(Path(workdir), 10, 0, seconds, clients)
        tps_10000, p99_10000 = await _scenario(Path(workdir), 50, 9_949, seconds, clients)
    return {
        "activity_tps_10": round(tps_10, 1),
        "activity_tps_10000": round(tps_10000, 1),
        "scale_ratio": round(tps_10000 / tps_10, 3),
        "activity_p99_ms": round(p99_10000, 2),
        "activity_p99_ms_10": round(p99_10, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.seconds, args.clients))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    width = max(len(key) for key in results)
    for key, value in results.items():
        print(f"{key.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
