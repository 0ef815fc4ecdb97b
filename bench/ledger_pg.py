"""The ledger on PostgreSQL, beside its SQLite figures, in one run on 127.0.0.1.

Starts a local PostgreSQL 16 (tools.postgres, the pgserver wheel, in a temp
folder, synchronous commits as shipped) and the ledger as a real process over
it, opens and funds the same program and wallets as bench/ledger.py, and
drives the same workload (earns issuance -> wallet, spends wallet -> revenue)
from a separate load-generator process:

- pg_unary_tps, pg_unary_p99_ms: PostTransfers, one transfer per call, 64 in flight;
- pg_batch_tps: PostTransfers with 1,000 transfers per call, 2 calls in flight;
- pg_two_replicas_tps: a second ledger replica on the same database, 32 unary
  calls in flight on each at once (every earn debits the one issuance account);
- sqlite_unary_tps, sqlite_batch_tps: bench/results/ledger.json's unary_tps and
  batch_tps when `make bench` wrote it before (the ledger runs first).

Then checks the issuance and revenue balances against what was sent. Writes
bench/results/ledger_pg.json.

    python -m bench.ledger_pg [--seconds 5] [--wallets 4096]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

import grpc
from loyalty.ledger.v1 import ledger_service_pb2_grpc as pb_grpc

from bench.common import RESULTS_DIR, report, run_load
from bench.ledger import (
    BATCH,
    BATCH_CONCURRENCY,
    CONCURRENCY,
    FUNDING,
    ISSUANCE,
    POST_TRANSFERS,
    REVENUE,
    WALLETS,
    YEAR_US,
    balance,
    load_params,
    sent_totals,
    set_up,
)
from services.kit.clock import SystemClock
from services.kit.logs import configure_logging
from tools.postgres import LocalPostgres
from tools.suite import Suite

WORKLOAD = "bench.ledger:transfer_calls"


def sqlite_figures() -> dict:
    path = RESULTS_DIR / "ledger.json"
    if not path.exists():
        return {}
    figures = json.loads(path.read_text())
    return {"sqlite_unary_tps": figures["unary_tps"], "sqlite_batch_tps": figures["batch_tps"]}


async def run(seconds: float, wallets: int) -> dict:
    params = load_params(wallets, SystemClock().now_us() + YEAR_US)

    with tempfile.TemporaryDirectory(prefix="bench-ledger-pg-") as scratch:
        work = Path(scratch)
        postgres = LocalPostgres(work / "pg")
        db = postgres.database("ledger")
        suites = [
            Suite(work / f"data-{n}", log_dir=work / f"logs-{n}", databases={"ledger": db})
            for n in range(2)
        ]
        try:
            first = await suites[0].start("ledger")
            async with grpc.aio.insecure_channel(first.target) as channel:
                ledger = pb_grpc.LedgerServiceStub(channel)
                await set_up(ledger, wallets)
                sent = []
                unary = await run_load(
                    first.target,
                    POST_TRANSFERS,
                    WORKLOAD,
                    params("unary", 1),
                    concurrency=CONCURRENCY,
                    seconds=seconds,
                )
                sent.append((params("unary", 1), unary))
                batched = await run_load(
                    first.target,
                    POST_TRANSFERS,
                    WORKLOAD,
                    params("batch", BATCH),
                    concurrency=BATCH_CONCURRENCY,
                    seconds=seconds,
                )
                sent.append((params("batch", BATCH), batched))
                second = await suites[1].start("ledger")
                both = await asyncio.gather(
                    *(
                        run_load(
                            replica.target,
                            POST_TRANSFERS,
                            WORKLOAD,
                            params(f"replica{n}", 1),
                            concurrency=CONCURRENCY // 2,
                            seconds=seconds,
                        )
                        for n, replica in enumerate((first, second))
                    )
                )
                sent.extend((params(f"replica{n}", 1), result) for n, result in enumerate(both))
                earned = spent = 0
                for sent_params, result in sent:
                    more_earned, more_spent = sent_totals(sent_params, result.lane_calls)
                    earned, spent = earned + more_earned, spent + more_spent
                issued = -await balance(ledger, ISSUANCE) - FUNDING * wallets
                verified = issued == earned and await balance(ledger, REVENUE) == spent
        finally:
            for suite in suites:
                await suite.stop_all()
            postgres.stop()
    if not verified:
        print("  ledger_pg: the balances do not match what was sent: some transfers were refused")
    return {
        "wallets": wallets,
        "seconds": seconds,
        "pg_unary_tps": round(unary.rps, 1),
        "pg_unary_p99_ms": round(unary.p99_ms, 2),
        "pg_batch_tps": round(batched.rps * BATCH, 1),
        "pg_two_replicas_tps": round(sum(result.rps for result in both), 1),
        **sqlite_figures(),
        "verified": verified,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The ledger on PostgreSQL")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--wallets", type=int, default=WALLETS)
    args = parser.parse_args(argv)
    configure_logging("bench", "warning")
    report("ledger_pg", asyncio.run(run(args.seconds, args.wallets)))


if __name__ == "__main__":
    main()
