"""The ledger against its ceilings, in one run on 127.0.0.1.

Starts the ledger as a real process (tools.suite) over a temporary SQLite file,
opens a program's accounts and WALLETS member wallets (expiring lots, as the
suite opens them) and funds them, then measures from a separate load-generator
process (bench/load.py):

- echo_rps: a bare grpc.aio echo server answering the same message sizes (a
  PostTransfersRequest with one transfer in, a PostTransfersResponse's bytes out);
- unary_tps, unary_p50_ms, unary_p99_ms: PostTransfers with one transfer per call
  at 64 concurrent calls (earns issuance -> wallet, spends wallet -> revenue, spread
  over the wallets); unary_ratio = unary_tps / echo_rps;
- stream_tps, stream_p99_ms: the same transfers over one PostTransfersStream, one
  transfer per message, 64 messages in flight; stream_over_unary = stream_tps /
  unary_tps;
- poster_tps, poster_p99_ms: the same transfers posted by 64 tasks of the bench
  process through the kit's StreamPoster, the client the services post through,
  which merges what queues while it writes; poster_over_unary = poster_tps / unary_tps;
- the scaling table and chart, bench/results/ledger_scaling.md and .png: unary and
  stream transfers/s and p99 at 1, 8, 64 and 256 in flight (the 64 rows are the
  figures above);
- batch_tps: PostTransfers with 1,000 such transfers per call, against
  sqlite_batch_tps: plain sqlite3 on a fresh file with the ledger's own migrations,
  one transaction per 1,000 transfers doing the statements the ledger must do (the
  idempotency lookup, INSERT the transfers, UPDATE each account touched, INSERT
  and UPDATE the wallets' lots; WAL, synchronous=FULL; no gRPC, no service layer);
  batch_ratio = their quotient; batch_cpu_us_per_transfer beside
  sqlite_cpu_us_per_transfer, the same CPU figure for that plain-sqlite3 loop;
- ledger_rss_mb: the ledger process's peak resident memory over the run;
- *_cpu_us_per_*: the ledger process's CPU time per call, message or transfer
  (warm-up included): a figure other work on the machine disturbs less than rates.

Then checks the program's balances against what was sent, so every measured
transfer is known to have committed. Writes bench/results/ledger.json.

    python -m bench.ledger [--seconds 5] [--wallets 4096]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from loyalty.ledger.v1 import ledger_service_pb2 as pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as pb_grpc

from bench.common import (
    SCALING,
    LoadResult,
    Target,
    peak_rss_mb,
    report,
    run_load,
    scaling_report,
    start_echo,
)
from bench.load import ECHO_METHOD, Call, percentile
from services.kit.clock import MICROS_PER_SECOND, SystemClock
from services.kit.ledger_stream import StreamPoster
from services.kit.logs import configure_logging
from services.kit.sqlite import connect, migrate
from services.ledger.server import SERVICE_NAME
from services.ledger.store import CHUNK, MIGRATIONS, TRANSFER_COLUMNS
from tools.suite import Suite

WALLETS = 4096
FUNDING = 1_000_000
ISSUANCE, BREAKAGE, REVENUE = "program:issuance", "program:breakage", "games:revenue"
CONCURRENCY = 64
BATCH = 1000
BATCH_CONCURRENCY = 2
POST_TRANSFERS = f"/{SERVICE_NAME}/PostTransfers"
POST_TRANSFERS_STREAM = f"/{SERVICE_NAME}/PostTransfersStream"
YEAR_US = 365 * 86_400 * MICROS_PER_SECOND
# Issue 13's targets.
TARGETS = [
    Target("unary_ratio", 0.7),
    Target("unary_p99_ms", 25, at_least=False),
    Target("batch_ratio", 0.6),
    Target("batch_cpu_us_per_transfer", 25, at_least=False),
    Target("ledger_rss_mb", 150, at_least=False),
    Target("stream_over_unary", 2.5),
]


def wallet(index: int) -> str:
    return f"bench-m-{index:05d}"


# ---------------------------------------------------------------- the workload


def transfer_specs(params: dict, lane: int) -> Iterator[tuple[str, str, str, int, int | None]]:
    """(id, debit, credit, amount, expires_at) forever: half earns (issuance -> a
    wallet, expiring in a year), half small spends (a wallet -> revenue), over
    random wallets; deterministic per (seed, lane) so the caller can replay it."""
    rng = random.Random(f"{params['seed']}:{lane}")
    wallets, expires_at = params["wallets"], params["expires_at"]
    count = 0
    while True:
        count += 1
        member = wallet(rng.randrange(wallets))
        transfer_id = f"{params['prefix']}:{lane}:{count}"
        if rng.random() < 0.5:
            yield transfer_id, ISSUANCE, member, rng.randint(10, 100), expires_at
        else:
            yield transfer_id, member, REVENUE, rng.randint(1, 10), None


def _transfer(spec: tuple[str, str, str, int, int | None]) -> pb.Transfer:
    transfer_id, debit, credit, amount, expires_at = spec
    transfer = pb.Transfer(
        id=transfer_id,
        kind=pb.TRANSFER_KIND_POSTED,
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        code=pb.TRANSFER_CODE_EARN if debit == ISSUANCE else pb.TRANSFER_CODE_GAME_COST,
    )
    if expires_at is not None:
        transfer.expire_time.FromMicroseconds(expires_at)
    return transfer


def transfer_calls(params: dict, lane: int) -> Iterator[Call]:
    """The load generator's workload: PostTransfersRequest of params["batch"] transfers."""
    specs = transfer_specs(params, lane)
    batch = params["batch"]
    while True:
        request = pb.PostTransfersRequest(transfers=[_transfer(next(specs)) for _ in range(batch)])
        yield request.SerializeToString(), ()


def stream_calls(params: dict, lane: int) -> Iterator[Call]:
    """The same workload as PostTransfersStream messages, each with its correlation id."""
    specs = transfer_specs(params, lane)
    batch = params["batch"]
    for count in itertools.count(1):
        message = pb.PostTransfersStreamRequest(
            correlation_id=f"{lane}:{count}",
            request=pb.PostTransfersRequest(
                transfers=[_transfer(next(specs)) for _ in range(batch)]
            ),
        )
        yield message.SerializeToString(), ()
    raise AssertionError("unreachable")


def sent_totals(params: dict, lane_calls: list[int]) -> tuple[int, int]:
    """(points earned, points spent) by the calls each lane sent."""
    earned = spent = 0
    for lane, calls in enumerate(lane_calls):
        specs = transfer_specs(params, lane)
        for _ in range(calls * params["batch"]):
            _id, debit, _credit, amount, _expires = next(specs)
            if debit == ISSUANCE:
                earned += amount
            else:
                spent += amount
    return earned, spent


# ---------------------------------------------------------------- set-up


def _open(account_id: str, kind: int, **fields) -> pb.OpenAccountRequest:
    return pb.OpenAccountRequest(
        account=pb.Account(id=account_id, unit="points", kind=kind, **fields)
    )


async def set_up(ledger: pb_grpc.LedgerServiceStub, wallets: int) -> None:
    """The program's accounts, then every wallet opened (64 at a time) and funded."""
    for account_id, kind in (
        (ISSUANCE, pb.ACCOUNT_KIND_PROGRAM_ISSUANCE),
        (BREAKAGE, pb.ACCOUNT_KIND_BREAKAGE),
        (REVENUE, pb.ACCOUNT_KIND_GAME_REVENUE),
    ):
        await ledger.OpenAccount(_open(account_id, kind), timeout=10)
    flags = pb.AccountFlags(debits_must_not_exceed_credits=True, expiring_lots=True)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def open_wallet(index: int) -> None:
        async with gate:
            await ledger.OpenAccount(
                _open(
                    wallet(index),
                    pb.ACCOUNT_KIND_MEMBER_WALLET,
                    flags=flags,
                    expiry_account_id=BREAKAGE,
                ),
                timeout=30,
            )

    await asyncio.gather(*(open_wallet(index) for index in range(wallets)))
    for start in range(0, wallets, BATCH):
        funding = [
            pb.Transfer(
                id=f"bench:fund:{wallet(index)}",
                kind=pb.TRANSFER_KIND_POSTED,
                debit_account_id=ISSUANCE,
                credit_account_id=wallet(index),
                amount=FUNDING,
                code=pb.TRANSFER_CODE_FUNDING,
            )
            for index in range(start, min(start + BATCH, wallets))
        ]
        response = await ledger.PostTransfers(
            pb.PostTransfersRequest(transfers=funding), timeout=30
        )
        if any(result.code != pb.TRANSFER_RESULT_CODE_OK for result in response.results):
            raise RuntimeError("funding the wallets failed")


async def balance(ledger: pb_grpc.LedgerServiceStub, account_id: str) -> int:
    response = await ledger.GetAccount(pb.GetAccountRequest(account_id=account_id), timeout=10)
    return response.account.balance.balance


# ---------------------------------------------------------------- the sqlite ceiling


@dataclass(frozen=True)
class Ceiling:
    tps: float
    cpu_us_per_transfer: float


def sqlite_batch_tps(path: Path, params: dict, seconds: float) -> Ceiling:
    """Plain sqlite3 on the ledger's schema doing the statements the ledger must do
    for the same batches, one transaction each: the idempotency lookup of the
    batch's ids, INSERT the transfers, UPDATE each touched account once, INSERT a
    lot per earn into a wallet, UPDATE the lot each spend takes from. No gRPC, no
    rules beyond the arithmetic, no service layer."""
    db = connect(path)
    migrate(db, MIGRATIONS)
    now = SystemClock().now_us()
    wallets = [wallet(index) for index in range(params["wallets"])]
    # [debits_posted, credits_posted] per account, as the UPDATEs write them.
    posted = {ISSUANCE: [FUNDING * len(wallets), 0], BREAKAGE: [0, 0], REVENUE: [0, 0]}
    posted.update({member: [0, FUNDING] for member in wallets})
    # Each wallet's open lots, soonest-expiring first: [sequence, remaining].
    lots: dict[str, list[list[int]]] = {}
    db.execute("BEGIN IMMEDIATE")
    db.executemany(
        "INSERT INTO accounts (id, unit, kind, flags, expiry_account_id, metadata, created_at,"
        " debits_posted, credits_posted) VALUES (?, 'points', ?, ?, ?, '{}', ?, ?, ?)",
        [
            (ISSUANCE, 2, 0, None, now, FUNDING * len(wallets), 0),
            (BREAKAGE, 6, 0, None, now, 0, 0),
            (REVENUE, 5, 0, None, now, 0, 0),
            *((member, 1, 5, BREAKAGE, now, 0, FUNDING) for member in wallets),
        ],
    )
    # The funding transfers and their lots (which never expire, so they come last).
    db.executemany(
        f"INSERT INTO transfers ({TRANSFER_COLUMNS})"
        " VALUES (?,?,1,9,?,?,?,?,0,?,'{}','',0,NULL,'')",
        [
            (sequence, f"fund:{member}", ISSUANCE, member, FUNDING, now, FUNDING)
            for sequence, member in enumerate(wallets, start=1)
        ],
    )
    db.executemany(
        "INSERT INTO lots (sequence, account_id, remaining, expires_at) VALUES (?, ?, ?, NULL)",
        [(sequence, member, FUNDING) for sequence, member in enumerate(wallets, start=1)],
    )
    for sequence, member in enumerate(wallets, start=1):
        lots[member] = [[sequence, FUNDING]]
    db.execute("COMMIT")
    specs = transfer_specs(params, 0)
    sequence, transferred = len(wallets), 0
    cpu_started, started = time.process_time(), time.perf_counter()
    while time.perf_counter() - started < seconds:
        batch = [next(specs) for _ in range(params["batch"])]
        rows, new_lots, taken, touched = [], [], {}, {}
        db.execute("BEGIN IMMEDIATE")
        ids = [spec[0] for spec in batch]
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            found = db.execute(
                f"SELECT id FROM transfers WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            if found:
                raise RuntimeError(f"{len(found)} transfer ids exist already")
        for transfer_id, debit, credit, amount, expires_at in batch:
            sequence += 1
            posted[debit][0] += amount
            posted[credit][1] += amount
            touched[debit] = touched[credit] = None
            if debit in lots:
                left = amount
                for lot in lots[debit]:
                    take = min(lot[1], left)
                    if take:
                        lot[1] -= take
                        left -= take
                        taken[lot[0]] = lot
                    if not left:
                        break
                lots[debit] = [lot for lot in lots[debit] if lot[1]] or lots[debit][-1:]
            if credit in lots:
                lots[credit].insert(len(lots[credit]) - 1, [sequence, amount])
                new_lots.append((sequence, credit, amount, expires_at))
            rows.append(
                (
                    sequence,
                    transfer_id,
                    1,
                    1 if debit == ISSUANCE else 5,
                    debit,
                    credit,
                    amount,
                    now,
                    posted[debit][1] - posted[debit][0],
                    posted[credit][1] - posted[credit][0],
                    "{}",
                    "",
                    0,
                    expires_at,
                    "",
                )
            )
        db.executemany(
            f"INSERT INTO transfers ({TRANSFER_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        db.executemany(
            "UPDATE accounts SET debits_posted = ?, credits_posted = ? WHERE id = ?",
            [(*posted[account_id], account_id) for account_id in touched],
        )
        db.executemany(
            "INSERT INTO lots (sequence, account_id, remaining, expires_at) VALUES (?,?,?,?)",
            new_lots,
        )
        db.executemany(
            "UPDATE lots SET remaining = ? WHERE sequence = ?",
            [(lot[1], lot[0]) for lot in taken.values()],
        )
        db.execute("COMMIT")
        transferred += len(rows)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    db.close()
    return Ceiling(transferred / elapsed, cpu * 1e6 / transferred)


# ---------------------------------------------------------------- the run


async def poster_load(
    ledger: pb_grpc.LedgerServiceStub, params: dict, seconds: float
) -> LoadResult:
    """64 tasks of this process posting one transfer at a time through the kit's
    StreamPoster (what the services post through), after a 1 s warm-up: the
    shared client merges what queues while it writes into one message."""
    poster = StreamPoster(ledger)
    lanes = [transfer_calls(params, lane) for lane in range(CONCURRENCY)]
    lane_calls = [0] * CONCURRENCY
    latencies: list[float] = []
    measuring = False
    clock = time.perf_counter
    stop_at = clock() + 1.0 + seconds

    async def lane(number: int) -> None:
        while clock() < stop_at:
            request = pb.PostTransfersRequest.FromString(next(lanes[number])[0])
            lane_calls[number] += 1
            started = clock()
            await poster.post(request, timeout=30)
            if measuring:
                latencies.append(clock() - started)

    tasks = [asyncio.ensure_future(lane(number)) for number in range(CONCURRENCY)]
    try:
        await asyncio.sleep(1.0)
        measuring = True
        began = clock()
        await asyncio.gather(*tasks)
        elapsed = clock() - began
    finally:
        await poster.close()
    latencies.sort()
    return LoadResult(
        calls=len(latencies),
        seconds=elapsed,
        rps=len(latencies) / elapsed,
        p50_ms=percentile(latencies, 0.5) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        lane_calls=lane_calls,
    )


def load_params(wallets: int, expires_at: int):
    """The load generator's parameters of one phase, by its id prefix and batch size."""

    def params(prefix: str, batch: int) -> dict:
        return {
            "prefix": f"bench:{prefix}",
            "seed": 1,
            "wallets": wallets,
            "expires_at": expires_at,
            "batch": batch,
        }

    return params


async def run(seconds: float, wallets: int, batch_concurrency: int) -> dict:
    params = load_params(wallets, SystemClock().now_us() + YEAR_US)

    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as scratch:
        work = Path(scratch)
        # The ledger logs at its default level, as deployed.
        suite = Suite(work / "data", log_dir=work / "logs")
        ledger_process = await suite.start("ledger")
        echo = None
        try:
            async with grpc.aio.insecure_channel(ledger_process.target) as channel:
                ledger = pb_grpc.LedgerServiceStub(channel)
                await set_up(ledger, wallets)
                # One real answer gives the echo its response size.
                sample, _ = next(transfer_calls(params("sample", 1), 0))
                answer = await ledger.PostTransfers(pb.PostTransfersRequest.FromString(sample))
                echo = await start_echo(len(answer.SerializeToString()))
                workload = "bench.ledger:transfer_calls"
                echoed = await run_load(
                    echo.target,
                    ECHO_METHOD,
                    workload,
                    params("echo", 1),
                    seconds=seconds,
                    server_pid=echo.process.pid,
                )
                phases: dict[tuple[str, int], LoadResult] = {}
                for concurrency in SCALING:
                    for mode, method, calls in (
                        ("unary", POST_TRANSFERS, workload),
                        ("stream", POST_TRANSFERS_STREAM, "bench.ledger:stream_calls"),
                    ):
                        phases[mode, concurrency] = await run_load(
                            ledger_process.target,
                            method,
                            calls,
                            params(f"{mode}{concurrency}", 1),
                            concurrency=concurrency,
                            seconds=seconds,
                            server_pid=ledger_process.process.pid,
                            stream=mode == "stream",
                        )
                unary, streamed = phases["unary", CONCURRENCY], phases["stream", CONCURRENCY]
                posted = await poster_load(ledger, params("poster", 1), seconds)
                batched = await run_load(
                    ledger_process.target,
                    POST_TRANSFERS,
                    workload,
                    params("batch", BATCH),
                    concurrency=batch_concurrency,
                    seconds=seconds,
                    server_pid=ledger_process.process.pid,
                )
                rss = peak_rss_mb(ledger_process.process.pid)
                earned = spent = 0
                sent = [
                    (f"{mode}{concurrency}", 1, result)
                    for (mode, concurrency), result in phases.items()
                ]
                for prefix, batch, result in (
                    *sent,
                    ("poster", 1, posted),
                    ("batch", BATCH, batched),
                ):
                    more_earned, more_spent = sent_totals(params(prefix, batch), result.lane_calls)
                    earned, spent = earned + more_earned, spent + more_spent
                sample_amount = answer.results[0].transfer.amount
                issued = -await balance(ledger, ISSUANCE) - FUNDING * wallets - sample_amount
                verified = issued == earned and await balance(ledger, REVENUE) == spent
        finally:
            if echo is not None:
                await echo.stop()
            await suite.stop_all()
        ceiling = sqlite_batch_tps(work / "ceiling.db", params("sqlite", BATCH), seconds)
    if not verified:
        print("  ledger: the balances do not match what was sent: some transfers were refused")
    unary_tps = unary.rps
    batch_tps = batched.rps * BATCH
    scaling = write_scaling(phases, echoed.rps)
    return {
        "wallets": wallets,
        "seconds": seconds,
        "echo_rps": round(echoed.rps, 1),
        "echo_p99_ms": round(echoed.p99_ms, 2),
        "unary_tps": round(unary_tps, 1),
        "unary_ratio": round(unary_tps / echoed.rps, 3),
        "unary_p50_ms": round(unary.p50_ms, 2),
        "unary_p99_ms": round(unary.p99_ms, 2),
        "stream_tps": round(streamed.rps, 1),
        "stream_over_unary": round(streamed.rps / unary_tps, 2),
        "stream_p99_ms": round(streamed.p99_ms, 2),
        "poster_tps": round(posted.rps, 1),
        "poster_over_unary": round(posted.rps / unary_tps, 2),
        "poster_p99_ms": round(posted.p99_ms, 2),
        "batch_concurrency": batch_concurrency,
        "batch_tps": round(batch_tps, 1),
        "sqlite_batch_tps": round(ceiling.tps, 1),
        "batch_ratio": round(batch_tps / ceiling.tps, 3),
        "batch_p99_ms": round(batched.p99_ms, 2),
        "echo_cpu_us_per_call": round(echoed.server_cpu_us_per_call, 1),
        "unary_cpu_us_per_call": round(unary.server_cpu_us_per_call, 1),
        "stream_cpu_us_per_message": round(streamed.server_cpu_us_per_call, 1),
        "batch_cpu_us_per_transfer": round(batched.server_cpu_us_per_call / BATCH, 1),
        "sqlite_cpu_us_per_transfer": round(ceiling.cpu_us_per_transfer, 1),
        "ledger_rss_mb": round(rss, 1),
        "verified": verified,
        "scaling": scaling,
    }


def write_scaling(phases: dict[tuple[str, int], LoadResult], echo_rps: float) -> list[dict]:
    """bench/results/ledger_scaling.md and .png: unary and stream against the number in flight."""
    failed = {key: result.errors for key, result in phases.items() if result.errors}
    return scaling_report(
        "ledger",
        "Ledger: one transfer per call (unary) or per message (one stream)",
        "transfers",
        {mode: {c: phases[mode, c] for c in SCALING} for mode in ("unary", "stream")},
        [
            "One transfer per call or message; the gRPC echo at 64 in flight in the same run:"
            f" {echo_rps:,.0f} calls/s.",
            *([f"Failed calls: {failed}."] if failed else []),
        ],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Ledger throughput against its ceilings")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--wallets", type=int, default=WALLETS)
    parser.add_argument("--batch-concurrency", type=int, default=BATCH_CONCURRENCY)
    args = parser.parse_args(argv)
    configure_logging("bench", "warning")
    report("ledger", asyncio.run(run(args.seconds, args.wallets, args.batch_concurrency)), TARGETS)


if __name__ == "__main__":
    main()
