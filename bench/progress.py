"""Catch-up speed: progress starting behind a backlog of ledger transfers and
campaigns activities, against the rate at which the raw feeds can be read, in
one run on 127.0.0.1.

Starts the ledger (tools.suite) and posts EVENTS earn credits for MEMBERS
members, each credit naming its activity; serves EVENTS matching activities
(purchases, reviews, logins) from campaigns' WatchActivities, served from
memory by a process of its own (a real campaigns would first have to earn
them all through the ledger, which is not what this measures); then measures:

- feed_read_eps: both feeds read from sequence 0 to the end at once, by one
  client process that only decodes them (what any consumer must pay);
- catchup_eps: progress (the real server, in its own process, with a tier
  program, two badges, a streak and a challenge defined) started from an empty
  database, events applied per second until both cursors reach the end;
  catchup_ratio = catchup_eps / feed_read_eps;
- read_cpu_us, catchup_cpu_us: the reader's and progress's CPU per event in
  those two phases (what the ratio tends to when other work holds the cores).

Then checks that progress counted every point exactly once (the members'
qualifying points add up to the credits posted). Writes bench/results/progress.json.

    python -m bench.progress [--events 100000] [--members 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import grpc
from google.protobuf import json_format
from loyalty.campaigns.v1 import campaigns_service_pb2 as campaigns_pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as campaigns_grpc
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from loyalty.progress.v1 import progress_service_pb2 as pb
from loyalty.progress.v1 import progress_service_pb2_grpc as progress_grpc

from bench.common import Target, cpu_seconds, peak_rss_mb, report, wait_connectable
from services.kit.clock import SystemClock
from services.kit.logs import configure_logging
from tools.suite import REPO, Suite, free_port, wait_serving

TARGETS = [Target("catchup_ratio", 0.5), Target("progress_rss_mb", 150, at_least=False)]
POINTS = 10
KINDS = ("purchase", "product_review", "app_login")
BATCH = 1000
DAY_US = 86_400 * 1_000_000

DEFINITIONS = [
    {
        "id": "club",
        "tierProgram": {
            "displayName": "Club",
            "timeZone": "Europe/Paris",
            "window": "QUALIFYING_WINDOW_CALENDAR_YEAR",
            "tiers": [
                {"tierId": "member"},
                {"tierId": "silver", "minPoints": "200"},
                {"tierId": "gold", "minPoints": "400", "minActivities": "10"},
            ],
        },
    },
    {
        "id": "reviewer",
        "badge": {
            "displayName": "Reviewer",
            "rule": {"measure": "MEASURE_ACTIVITY_COUNT", "activityType": "product_review"},
            "levels": [
                {"levelId": "bronze", "threshold": "1"},
                {"levelId": "gold", "threshold": "10"},
            ],
        },
    },
    {
        "id": "spender",
        "badge": {
            "displayName": "Spender",
            "rule": {"measure": "MEASURE_POINTS_EARNED"},
            "levels": [
                {"levelId": "one", "threshold": "100"},
                {"levelId": "two", "threshold": "300"},
            ],
        },
    },
    {
        "id": "login",
        "streak": {
            "displayName": "Login",
            "rule": {"measure": "MEASURE_ACTIVITY_COUNT", "activityType": "app_login"},
            "period": "STREAK_PERIOD_DAY",
            "defaultTimeZone": "Europe/Paris",
            "milestones": [{"length": 3}, {"length": 7}],
        },
    },
    {
        "id": "weekly",
        "challenge": {
            "displayName": "Weekly",
            "schedule": {
                "timeZone": "Europe/Paris",
                "start": {"year": 2020, "month": 1, "day": 6},
                "duration": "604800s",
                "rrule": "FREQ=WEEKLY",
            },
            "steps": [
                {
                    "stepId": "reviews",
                    "rule": {"measure": "MEASURE_ACTIVITY_COUNT", "activityType": "product_review"},
                    "target": "2",
                }
            ],
        },
    },
]


def member_of(n: int, members: int) -> str:
    return f"bench-{n % members}"


def moment_of(n: int, start_us: int, events: int) -> int:
    """Events spread over the 30 days before the run."""
    return start_us - 30 * DAY_US + n * (30 * DAY_US // events)


# ------------------------------------------------------------------ the stand-in feed


def serve_activities(port: int, events: int, members: int, start_us: int) -> None:
    """`python -m bench.progress serve-activities`: campaigns' WatchActivities,
    from memory."""
    items = []
    for n in range(events):
        message = campaigns_pb.WatchActivitiesResponse(sequence=n + 1, points=POINTS)
        activity = message.activity
        activity.activity_id = f"a{n}"
        activity.member_id = member_of(n, members)
        activity.type = KINDS[n % len(KINDS)]
        activity.occur_time.FromMicroseconds(moment_of(n, start_us, events))
        message.record_time.CopyFrom(activity.occur_time)
        items.append(message)

    class Campaigns(campaigns_grpc.CampaignsServiceServicer):
        async def WatchActivities(self, request, context):
            for item in items[request.after_sequence :]:
                yield item
            await asyncio.Event().wait()

    async def main() -> None:
        server = grpc.aio.server()
        campaigns_grpc.add_CampaignsServiceServicer_to_server(Campaigns(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())


def serve_progress(port: int, db: str, ledger: str, feeds: str) -> None:
    """`python -m bench.progress serve-progress`: the real server, following the
    ledger and the activities served from memory."""
    from services.kit.server import serve
    from services.progress.server import ProgressSettings, build_server

    configure_logging("progress", "warning")
    settings = ProgressSettings(
        db_path=Path(db),
        ledger_target=ledger,
        campaigns_target=feeds,
        games_target="",
        metrics_listen="",
    )

    async def main() -> None:
        host = await build_server(settings, f"127.0.0.1:{port}")
        await serve(host, 1.0)

    asyncio.run(main())


async def _spawn(*arguments: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.progress", *arguments, cwd=REPO
    )


# ------------------------------------------------------------------ the run


async def post_credits(ledger, events: int, members: int, start_us: int) -> None:
    for n in range(members):
        await ledger.OpenAccount(
            ledger_pb.OpenAccountRequest(
                account=ledger_pb.Account(
                    id=member_of(n, members),
                    unit="points",
                    kind=ledger_pb.ACCOUNT_KIND_MEMBER_WALLET,
                    flags=ledger_pb.AccountFlags(debits_must_not_exceed_credits=True),
                )
            ),
            timeout=30,
        )
    for first in range(0, events, BATCH):
        request = ledger_pb.PostTransfersRequest(
            transfers=[
                ledger_pb.Transfer(
                    id=f"activity:a{n}:base",
                    debit_account_id="program:issuance",
                    credit_account_id=member_of(n, members),
                    amount=POINTS,
                    code=ledger_pb.TRANSFER_CODE_EARN,
                    kind=ledger_pb.TRANSFER_KIND_POSTED,
                    metadata={"activity_id": f"a{n}"},
                )
                for n in range(first, min(first + BATCH, events))
            ]
        )
        response = await ledger.PostTransfers(request, timeout=60)
        assert all(r.code == ledger_pb.TRANSFER_RESULT_CODE_OK for r in response.results)


async def read_feeds(ledger_target: str, feeds_target: str, events: int) -> tuple[float, float]:
    """Seconds to read both feeds to the end at once, decoding every message, and
    this process's CPU seconds meanwhile."""

    async def ledger_feed() -> None:
        async with grpc.aio.insecure_channel(ledger_target) as channel:
            stream = ledger_grpc.LedgerServiceStub(channel).WatchTransfers(
                ledger_pb.WatchTransfersRequest(), timeout=600
            )
            async for response in stream:
                if response.transfer.sequence >= events:
                    break
            stream.cancel()

    async def activity_feed() -> None:
        async with grpc.aio.insecure_channel(feeds_target) as channel:
            stream = campaigns_grpc.CampaignsServiceStub(channel).WatchActivities(
                campaigns_pb.WatchActivitiesRequest(), timeout=600
            )
            async for response in stream:
                if response.sequence >= events:
                    break
            stream.cancel()

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(ledger_feed(), activity_feed())
    return time.perf_counter() - began, time.process_time() - cpu


async def run(events: int, members: int) -> dict:
    start_us = SystemClock().now_us()
    with tempfile.TemporaryDirectory(prefix="bench-progress-") as directory:
        work = Path(directory)
        suite = Suite(work / "data", log_dir=work / "logs")
        feeds_port, progress_port = free_port(), free_port()
        feeds_target, progress_target = f"127.0.0.1:{feeds_port}", f"127.0.0.1:{progress_port}"
        processes = []
        try:
            ledger_process = await suite.start("ledger")
            processes.append(
                await _spawn(
                    "serve-activities",
                    f"--port={feeds_port}",
                    f"--events={events}",
                    f"--members={members}",
                    f"--start-us={start_us}",
                )
            )
            async with grpc.aio.insecure_channel(ledger_process.target) as channel:
                ledger = ledger_grpc.LedgerServiceStub(channel)
                await ledger.OpenAccount(
                    ledger_pb.OpenAccountRequest(
                        account=ledger_pb.Account(
                            id="program:issuance",
                            unit="points",
                            kind=ledger_pb.ACCOUNT_KIND_PROGRAM_ISSUANCE,
                        )
                    ),
                    timeout=30,
                )
                # Progress is set up first, then stopped: it starts behind the whole backlog.
                progress_db = str(work / "progress.db")
                progress = await _spawn(
                    "serve-progress",
                    f"--port={progress_port}",
                    f"--db={progress_db}",
                    f"--ledger={ledger_process.target}",
                    "--feeds=",
                )
                await wait_serving(progress_target)
                async with grpc.aio.insecure_channel(progress_target) as progress_channel:
                    stub = progress_grpc.ProgressServiceStub(progress_channel)
                    for data in DEFINITIONS:
                        definition = json_format.ParseDict(data, pb.Definition())
                        await stub.ApplyDefinition(
                            pb.ApplyDefinitionRequest(definition=definition), timeout=30
                        )
                progress.terminate()
                await progress.wait()
                await post_credits(ledger, events, members, start_us)
            await wait_connectable(feeds_target)
            read_seconds, read_cpu = await read_feeds(ledger_process.target, feeds_target, events)
            progress = await _spawn(
                "serve-progress",
                f"--port={progress_port}",
                f"--db={progress_db}",
                f"--ledger={ledger_process.target}",
                f"--feeds={feeds_target}",
            )
            processes.append(progress)
            # Timed from the server's start (its followers start with it), not the
            # interpreter's: what a restart costs in Python start-up is not catching up.
            await wait_serving(progress_target)
            began, cpu = time.perf_counter(), cpu_seconds(progress.pid)
            async with grpc.aio.insecure_channel(progress_target) as progress_channel:
                stub = progress_grpc.ProgressServiceStub(progress_channel)
                while True:
                    status = await stub.GetFeedStatus(pb.GetFeedStatusRequest(), timeout=30)
                    cursors = {feed.feed: feed.cursor for feed in status.feeds}
                    if cursors.get("ledger", 0) >= events and cursors.get("campaigns", 0) >= events:
                        break
                    await asyncio.sleep(0.05)
                catchup_seconds = time.perf_counter() - began
                catchup_cpu = cpu_seconds(progress.pid) - cpu
                rss = peak_rss_mb(progress.pid)
                counted = 0
                for n in range(members):
                    found = await stub.GetMemberProgress(
                        pb.GetMemberProgressRequest(member_id=member_of(n, members)), timeout=30
                    )
                    counted += sum(tier.qualifying_points for tier in found.tiers)
        finally:
            for process in processes:
                if process.returncode is None:
                    process.terminate()
                    await process.wait()
            await suite.stop_all()
    total = 2 * events
    feed_read_eps = total / read_seconds
    catchup_eps = total / catchup_seconds
    return {
        "events": total,
        "members": members,
        "feed_read_eps": feed_read_eps,
        "catchup_eps": catchup_eps,
        "catchup_ratio": catchup_eps / feed_read_eps,
        "catchup_seconds": catchup_seconds,
        # CPU per event of the reader and of progress: what the ratio tends to when
        # other work holds the cores (read_cpu_us / catchup_cpu_us).
        "read_cpu_us": read_cpu / total * 1e6,
        "catchup_cpu_us": catchup_cpu / total * 1e6,
        "progress_rss_mb": rss,
        "counted_once": counted == events * POINTS,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="run")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--start-us", type=int, default=0)
    parser.add_argument("--db", default="")
    parser.add_argument("--ledger", default="")
    parser.add_argument("--feeds", default="")
    args = parser.parse_args(argv)
    if args.command == "serve-activities":
        serve_activities(args.port, args.events, args.members, args.start_us)
        return
    if args.command == "serve-progress":
        serve_progress(args.port, args.db, args.ledger, args.feeds)
        return
    configure_logging("bench", "warning")
    results = asyncio.run(run(args.events, args.members))
    report("progress", results, TARGETS)
    print(json.dumps({"counted_once": results["counted_once"]}))


if __name__ == "__main__":
    main(sys.argv[1:])
