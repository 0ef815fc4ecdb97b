"""TrackActivity throughput with 10 live campaigns against 10,000 defined.

Starts two environments side by side, each a ledger and a campaigns service as
separate processes over temporary SQLite files (tools.suite):
- "10": the base rule and 10 live bonus campaigns matching every purchase;
- "10000": the base rule, 50 live matching bonus campaigns (the same 10 groups,
  5 best-of contenders each, so the ledger chain has the same legs) and 9,949
  campaigns that cannot match a purchase now: rules for other activity types,
  purchase rules whose windows ended last year or start next year, and drafts.
The shared load-generator process (bench/load.py) then drives each in turns
(`--rounds`), so other work on the machine slows both alike, for `--seconds`
in all per environment, one member per lane. Writes
bench/results/campaigns.json with activity_tps_10, activity_tps_10000,
scale_ratio (the second over the first; target >= 0.7), activity_p99_ms (of the
10,000 run), each server's CPU per activity (steadier on a shared machine) and
campaigns_rss_mb, the 10,000-campaign process's peak resident memory.
A third environment, the same 50 matching campaigns without the idle ones, gives
idle_ratio: what the 9,949 campaigns that cannot match cost (1.0 is nothing).
Then: both at 1, 8, 64 and 256 in flight (scaling, also
bench/results/campaigns_scaling.md and .png), and a ledger of its own under the
ledger bench's unary load (ledger_unary_tps), which activity_tps_10 is read
against (activity_over_ledger_unary; target >= 0.5).

    python -m bench.campaigns [--seconds 10] [--clients 32] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as pb_grpc
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from bench.common import (
    SCALING,
    LoadResult,
    Target,
    peak_rss_mb,
    report,
    run_load,
    scaling_report,
)
from bench.ledger import POST_TRANSFERS, set_up
from bench.load import Call
from services.kit.clock import SystemClock
from tools.suite import Suite

MEMBERS = 64
GROUPS = 10
OTHER_TYPES = ("game_played", "product_review", "app_login", "profile_completed", "social_share")
TRACK = f"/{pb.DESCRIPTOR.services_by_name['CampaignsService'].full_name}/TrackActivity"
TARGETS = [
    Target("scale_ratio", 0.7),
    Target("activity_over_ledger_unary", 0.5),
    Target("campaigns_rss_mb", 150, at_least=False),
]


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
    for lane in range(MEMBERS):
        await stub.UpsertMember(pb.UpsertMemberRequest(member=pb.Member(member_id=f"m-{lane}")))


def activity_calls(params: dict, lane: int) -> Iterator[Call]:
    """The load generator's workload: lane i is member i making purchases in a loop."""
    clock = SystemClock()
    for n in itertools.count():
        micros = clock.now_us()
        activity = pb.Activity(
            activity_id=f"{params['label']}-{lane}-{n}",
            member_id=f"m-{lane % MEMBERS}",
            type="purchase",
            occur_time=timestamp_pb2.Timestamp(
                seconds=micros // 1_000_000, nanos=micros % 1_000_000 * 1000
            ),
            purchase=pb.Purchase(amount_minor=1000 + (lane * 7919 + n) % 5000, currency="EUR"),
        )
        yield pb.TrackActivityRequest(activity=activity).SerializeToString(), ()


async def _environment(work: Path, live: int, idle: int) -> Suite:
    suite = Suite(work, env={"LOG_LEVEL": "warning"}, log_dir=work)
    await suite.start("ledger")
    campaigns = await suite.start("campaigns")
    async with grpc.aio.insecure_channel(campaigns.target) as channel:
        await _define(pb_grpc.CampaignsServiceStub(channel), live, idle)
    return suite


async def _ledger_unary(work: Path, seconds: float) -> LoadResult:
    """The ledger's own unary PostTransfers (the ledger bench's workload, 64 in
    flight) on a ledger of its own: the baseline activity_tps_10 is read against."""
    suite = Suite(work, env={"LOG_LEVEL": "warning"}, log_dir=work)
    try:
        ledger = await suite.start("ledger")
        async with grpc.aio.insecure_channel(ledger.target) as channel:
            await set_up(ledger_grpc.LedgerServiceStub(channel), MEMBERS)
        return await run_load(
            ledger.target,
            POST_TRANSFERS,
            "bench.ledger:transfer_calls",
            {
                "prefix": "bench:unary",
                "seed": 1,
                "wallets": MEMBERS,
                "expires_at": SystemClock().now_us() + 365 * 86_400 * 1_000_000,
                "batch": 1,
            },
            seconds=seconds,
        )
    finally:
        await suite.stop_all()


async def run(seconds: float, clients: int, rounds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-campaigns-") as scratch:
        environments: dict[str, Suite] = {}
        try:
            environments["10"] = await _environment(Path(scratch, "10"), 10, 0)
            environments["10000"] = await _environment(Path(scratch, "10000"), 50, 9_949)
            # The control: the same 50 matching campaigns without the 9,949 idle ones.
            environments["50"] = await _environment(Path(scratch, "50"), 50, 0)
            results: dict[str, list[LoadResult]] = {name: [] for name in environments}
            for turn in range(rounds):
                for name, suite in environments.items():
                    campaigns = suite.running["campaigns"]
                    results[name].append(
                        await run_load(
                            campaigns.target,
                            TRACK,
                            "bench.campaigns:activity_calls",
                            {"label": f"{name}-{turn}-{time.time_ns()}"},
                            concurrency=clients,
                            seconds=seconds / rounds,
                            warmup=0.5,
                            server_pid=campaigns.process.pid,
                        )
                    )
            by_load: dict[str, dict[int, LoadResult]] = {"10": {}, "10000": {}}
            for in_flight in SCALING:
                for name, by_level in by_load.items():
                    campaigns = environments[name].running["campaigns"]
                    by_level[in_flight] = await run_load(
                        campaigns.target,
                        TRACK,
                        "bench.campaigns:activity_calls",
                        {"label": f"scaling-{name}-{in_flight}-{time.time_ns()}"},
                        concurrency=in_flight,
                        seconds=seconds / rounds,
                        warmup=0.5,
                    )
            # The 10,000-campaign process holds the most.
            rss = peak_rss_mb(environments["10000"].running["campaigns"].process.pid)
            unary = await _ledger_unary(Path(scratch, "ledger"), seconds / rounds)
        finally:
            for suite in environments.values():
                await suite.stop_all()
    scaling = scaling_report(
        "campaigns",
        "Campaigns: TrackActivity with 10 live campaigns and with 10,000 defined",
        "activities",
        {f"{name} campaigns": by_level for name, by_level in by_load.items()},
        [
            f"One member per lane up to {MEMBERS}; more lanes share members."
            f" Ledger unary at 64 in flight in the same run: {unary.rps:,.0f} transfers/s."
        ],
    )

    def tps(name: str) -> float:
        return sum(r.calls for r in results[name]) / sum(r.seconds for r in results[name])

    def cpu_us(name: str) -> float:
        measured = results[name]
        return sum(r.server_cpu_us_per_call for r in measured) / len(measured)

    return {
        "activity_tps_10": round(tps("10"), 1),
        "activity_tps_10000": round(tps("10000"), 1),
        "scale_ratio": round(tps("10000") / tps("10"), 3),
        "activity_p99_ms": round(max(r.p99_ms for r in results["10000"]), 2),
        "activity_p99_ms_10": round(max(r.p99_ms for r in results["10"]), 2),
        "server_cpu_us_per_activity_10": round(cpu_us("10"), 1),
        "server_cpu_us_per_activity_10000": round(cpu_us("10000"), 1),
        "activity_tps_50_live_only": round(tps("50"), 1),
        "server_cpu_us_per_activity_50_live_only": round(cpu_us("50"), 1),
        "idle_ratio": round(tps("10000") / tps("50"), 3),
        "campaigns_rss_mb": round(rss, 1),
        "ledger_unary_tps": round(unary.rps, 1),
        "activity_over_ledger_unary": round(tps("10") / unary.rps, 3),
        "scaling": scaling,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Campaigns TrackActivity benchmark")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    report("campaigns", asyncio.run(run(args.seconds, args.clients, args.rounds)), TARGETS)


if __name__ == "__main__":
    main()
