"""Redemptions end to end against the ledger's own unary throughput, in one run on
127.0.0.1, and a large code import in bounded memory.

Starts the ledger and the rewards service as real processes (tools.suite) over
temporary SQLite files, opens and funds MEMBERS member wallets with the ledger
bench's set-up, then:

- import_codes, import_seconds, import_rss_before_mb, import_rss_after_mb,
  admin_rss_mb: `loyalty-admin rewards import` (a separate process, straight to
  the rewards service) of a generated CSV of IMPORT_CODES codes; the rewards
  process's peak resident memory before and after, and the tool's own peak:
  the same whatever the file's size, since both sides hold one chunk at a time;
- ledger_unary_tps, ledger_unary_cpu_us: the ledger's PostTransfers with one
  transfer per call, the ledger bench's workload, at 64 concurrent calls, and
  the ledger's CPU per call;
- the two phases alternate in ROUNDS rounds of SECONDS / ROUNDS each (fresh
  transfer and request ids in every round), so other work on the machine that
  rises or falls during the run weighs on both alike; each phase's rate is its
  calls over its seconds, summed over the rounds, its p50 the rounds' median
  and its p99 the highest round's (`--rounds 1`: one phase after the other);
- redeem_tps, redeem_p50_ms, redeem_p99_ms: rewards.Redeem of a code-pool reward
  (10 points, stock far beyond the run), one member per lane, a fresh request id
  each time: limits checked, the code assigned and the redemption recorded,
  one linked chain holding and posting (one ledger call, two local commits);
  redeem_ratio = redeem_tps / ledger_unary_tps; redeem_server_cpu_us and
  redeem_ledger_cpu_us, the rewards and ledger processes' CPU per redemption
  (when other work holds the cores, each process gets its share of them and
  the ratio tends to ledger_unary_cpu_us / redeem_server_cpu_us);
- unary_load_cpu_us, redeem_load_cpu_us: the load generator's own CPU per call
  in each phase (it is not the bound while it stays well under a core);
- rewards_rss_mb: the rewards process's peak resident memory.

Then checks that rewards:redeemed grew by exactly 10 points per redemption sent
and that each got a code. Writes bench/results/rewards.json.

    python -m bench.rewards [--seconds 10] [--rounds 4] [--import-codes 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from loyalty.rewards.v1 import rewards_service_pb2 as pb
from loyalty.rewards.v1 import rewards_service_pb2_grpc as pb_grpc

from bench.common import LoadResult, Target, cpu_seconds, peak_rss_mb, report, run_load
from bench.ledger import POST_TRANSFERS, balance, load_params, set_up, wallet
from bench.load import Call
from services.kit.clock import SystemClock
from services.kit.logs import configure_logging
from services.rewards.server import SERVICE_NAME
from tools.suite import REPO, Suite

MEMBERS = 64
PRICE = 10
REWARD = "bench-coffee"
POOL = 60_000
IMPORT_CODES = 200_000
REDEEM = f"/{SERVICE_NAME}/Redeem"
ROUNDS = 4
TARGETS = [Target("redeem_ratio", 0.4), Target("rewards_rss_mb", 150, at_least=False)]


def redeem_calls(params: dict, lane: int) -> Iterator[Call]:
    """The load generator's workload: lane i redeems as member i, a new request id each time."""
    member = wallet(lane % params["members"])
    count = 0
    while True:
        count += 1
        request = pb.RedeemRequest(
            member_id=member, reward_id=REWARD, request_id=f"{params['prefix']}-{lane}-{count}"
        )
        yield request.SerializeToString(), ()


async def create_reward(rewards: pb_grpc.RewardsServiceStub, reward_id: str, codes: int) -> None:
    spec = pb.RewardSpec(title="Bench coffee", kind=pb.REWARD_KIND_CODE_POOL, price=PRICE)
    await rewards.CreateReward(pb.CreateRewardRequest(reward_id=reward_id, spec=spec), timeout=10)
    await rewards.StockReward(
        pb.StockRewardRequest(reward_id=reward_id, quantity=10**9, request_id="bench"), timeout=10
    )
    for first in range(0, codes, 5000):
        lines = [f"{reward_id.upper()}-{n:08d}" for n in range(first, min(first + 5000, codes))]
        await rewards.ImportCodes(
            pb.ImportCodesRequest(
                reward_id=reward_id, import_id="bench", first_line=first + 1, lines=lines
            ),
            timeout=30,
        )


async def import_with_the_tool(target: str, reward_id: str, path: Path) -> float:
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.admin",
        "--gateway",
        target,
        "--token",
        "bench",
        "rewards",
        "import",
        reward_id,
        str(path),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the import failed ({process.returncode}): {out.decode()[-500:]}")
    return time.perf_counter() - started


@dataclass(frozen=True)
class Phase:
    """One phase's rounds taken together."""

    rounds: list[LoadResult]

    @property
    def sent(self) -> int:
        return sum(sum(result.lane_calls) for result in self.rounds)

    @property
    def rps(self) -> float:
        return sum(r.calls for r in self.rounds) / sum(r.seconds for r in self.rounds)

    @property
    def p50_ms(self) -> float:
        return statistics.median(r.p50_ms for r in self.rounds)

    @property
    def p99_ms(self) -> float:
        return max(r.p99_ms for r in self.rounds)

    @property
    def server_cpu_us_per_call(self) -> float:
        used = sum(r.server_cpu_us_per_call * sum(r.lane_calls) for r in self.rounds)
        return used / self.sent

    @property
    def errors(self) -> dict[str, int]:
        return dict(sum((Counter(r.errors) for r in self.rounds), Counter()))


def _children_cpu() -> float:
    """CPU seconds of this process's finished children: the load generators'."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def run(seconds: float, import_codes: int, rounds: int) -> dict:
    expires_at = SystemClock().now_us() + 365 * 86_400 * 1_000_000
    unary_params = load_params(MEMBERS, expires_at)
    with tempfile.TemporaryDirectory(prefix="bench-rewards-") as scratch:
        work = Path(scratch)
        suite = Suite(work / "data", log_dir=work / "logs", env={"LOG_LEVEL": "warning"})
        ledger_process = await suite.start("ledger")
        rewards_process = await suite.start("rewards")
        try:
            async with (
                grpc.aio.insecure_channel(ledger_process.target) as ledger_channel,
                grpc.aio.insecure_channel(rewards_process.target) as rewards_channel,
            ):
                ledger = ledger_grpc.LedgerServiceStub(ledger_channel)
                rewards = pb_grpc.RewardsServiceStub(rewards_channel)
                await set_up(ledger, MEMBERS)

                await create_reward(rewards, "bench-import", 0)
                csv = work / "codes.csv"
                with csv.open("w") as file:
                    file.write("code\n")
                    file.writelines(f"IMPORTED-{n:09d}\n" for n in range(import_codes))
                rss_before = peak_rss_mb(rewards_process.process.pid)
                import_seconds = await import_with_the_tool(
                    rewards_process.target, "bench-import", csv
                )
                rss_after = peak_rss_mb(rewards_process.process.pid)
                admin_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

                await create_reward(rewards, REWARD, POOL)
                redeemed_before = await balance(ledger, "rewards:redeemed")
                unary_rounds, redeem_rounds = [], []
                unary_load_cpu = redeem_load_cpu = ledger_cpu = 0.0
                for round_ in range(rounds):
                    load_cpu = _children_cpu()
                    unary_rounds.append(
                        await run_load(
                            ledger_process.target,
                            POST_TRANSFERS,
                            "bench.ledger:transfer_calls",
                            unary_params(f"unary-{round_}", 1),
                            seconds=seconds / rounds,
                            server_pid=ledger_process.process.pid,
                        )
                    )
                    unary_load_cpu += _children_cpu() - load_cpu
                    load_cpu = _children_cpu()
                    ledger_cpu_before = cpu_seconds(ledger_process.process.pid)
                    redeem_rounds.append(
                        await run_load(
                            rewards_process.target,
                            REDEEM,
                            "bench.rewards:redeem_calls",
                            {"prefix": f"bench-{round_}", "members": MEMBERS},
                            concurrency=MEMBERS,
                            seconds=seconds / rounds,
                            server_pid=rewards_process.process.pid,
                        )
                    )
                    ledger_cpu += cpu_seconds(ledger_process.process.pid) - ledger_cpu_before
                    redeem_load_cpu += _children_cpu() - load_cpu
                unary, redeems = Phase(unary_rounds), Phase(redeem_rounds)
                sent = redeems.sent
                charged = await balance(ledger, "rewards:redeemed") - redeemed_before
                codes = await rewards.GetRewardReport(
                    pb.GetRewardReportRequest(reward_id=REWARD), timeout=10
                )
                verified = (
                    not redeems.errors
                    and charged == PRICE * sent
                    and codes.report.codes_left == POOL - sent
                )
                rss = peak_rss_mb(rewards_process.process.pid)
        finally:
            await suite.stop_all()
    if not verified:
        print(f"  rewards: redeemed grew by {charged}, not {PRICE} per call sent: {redeems.errors}")
    return {
        "members": MEMBERS,
        "seconds": seconds,
        "rounds": rounds,
        "import_codes": import_codes,
        "import_seconds": import_seconds,
        "import_rss_before_mb": rss_before,
        "import_rss_after_mb": rss_after,
        "admin_rss_mb": admin_rss,
        "ledger_unary_tps": unary.rps,
        "ledger_unary_cpu_us": unary.server_cpu_us_per_call,
        "unary_load_cpu_us": unary_load_cpu * 1e6 / unary.sent,
        "redeem_tps": redeems.rps,
        "redeem_p50_ms": redeems.p50_ms,
        "redeem_p99_ms": redeems.p99_ms,
        "redeem_ratio": redeems.rps / unary.rps,
        "redeem_server_cpu_us": redeems.server_cpu_us_per_call,
        "redeem_ledger_cpu_us": ledger_cpu * 1e6 / sent,
        "redeem_load_cpu_us": redeem_load_cpu * 1e6 / sent,
        "rewards_rss_mb": rss,
        "charged_once": verified,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="each phase's, all rounds")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--import-codes", type=int, default=IMPORT_CODES)
    args = parser.parse_args(argv)
    configure_logging("bench", "warning")
    results = asyncio.run(run(args.seconds, args.import_codes, args.rounds))
    report("rewards", results, TARGETS)


if __name__ == "__main__":
    main()
