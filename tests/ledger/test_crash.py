"""The ledger as a real process, SIGKILLed several times under concurrent load and
restarted on the same files (or PostgreSQL schema): nothing acknowledged is lost,
no chain is half-applied, retries return the original results, and the invariants
hold."""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass, field

import grpc
import pytest
from loyalty.ledger.v1 import ledger_service_pb2 as pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from tests.support.ledger import (
    NEVER_SECONDS,
    account,
    all_transfers,
    check_gapless,
    check_invariants,
    open_accounts,
    posted,
    snapshot,
)
from tests.support.postgres import fresh_database
from tools.suite import Suite

KILLS = 3
TASKS = 16
CHANNELS = 4
BATCHES_BETWEEN_KILLS = 120
WALLETS = [f"w{n}" for n in range(8)]
ACCOUNTS = [
    account("iss", kind=pb.ACCOUNT_KIND_PROGRAM_ISSUANCE),
    account("shop", kind=pb.ACCOUNT_KIND_REDEMPTION),
    *(account(wallet, no_overdraft=True) for wallet in WALLETS),
]
# A killed server leaves calls in flight without an answer; these say so, nothing else may.
IN_DOUBT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
R = pb.TransferResultCode


@dataclass
class Load:
    """What the clients sent and what the ledger acknowledged."""

    answered: dict[int, tuple[list[pb.Transfer], list[pb.TransferResult]]] = field(
        default_factory=dict
    )
    retried_after_doubt: set[int] = field(default_factory=set)
    errors: set[grpc.StatusCode] = field(default_factory=set)
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    stop: bool = False


def batch_for(rng: random.Random, number: int) -> list[pb.Transfer]:
    """An earn, a spend with cashback (a chain of two) or earn-gift-spend (a chain of three)."""
    first, second = rng.sample(WALLETS, 2)
    ids = (f"b{number}-{leg}" for leg in itertools.count())
    shape = rng.randrange(3)
    if shape == 0:
        return [posted(next(ids), "iss", first, rng.randint(1, 20))]
    if shape == 1:
        legs = [
            posted(next(ids), first, "shop", rng.randint(5, 40), code=pb.TRANSFER_CODE_REDEEM),
            posted(next(ids), "shop", first, 1, code=pb.TRANSFER_CODE_BONUS),
        ]
    else:
        legs = [
            posted(next(ids), "iss", first, rng.randint(1, 10)),
            posted(next(ids), first, second, rng.randint(1, 25), code=pb.TRANSFER_CODE_ADJUSTMENT),
            posted(next(ids), second, "shop", rng.randint(1, 25), code=pb.TRANSFER_CODE_REDEEM),
        ]
    for leg in legs[:-1]:
        leg.linked = True
    return legs


async def client(stubs, load: Load, numbers, seed: int) -> None:
    """Sends batches one after another; a batch without an answer is sent again, the
    same, until a ledger answers (as a real client's retry with the same ids), to the
    next of `stubs` (replicas behind a load balancer) when there are several."""
    rng = random.Random(seed)
    turn = itertools.cycle(stubs)
    stub = next(turn)
    while not load.stop:
        number = next(numbers)
        batch = batch_for(rng, number)
        doubted = False
        while True:
            try:
                response = await stub.PostTransfers(
                    pb.PostTransfersRequest(transfers=batch), timeout=5, wait_for_ready=True
                )
                break
            except grpc.aio.AioRpcError as error:
                load.errors.add(error.code())
                doubted = True
                stub = next(turn)
                await asyncio.sleep(0.05)  # the ledger is restarting: poll until it answers
        load.answered[number] = (batch, list(response.results))
        if doubted:
            load.retried_after_doubt.add(number)
        load.progress.set()


def check_chain(results: list[pb.TransferResult]) -> None:
    """A chain is applied whole (OK or EXISTS throughout) or not at all (one failure
    code, the others LINKED_TRANSFER_FAILED)."""
    codes = [result.code for result in results]
    if len(set(codes)) == 1 and codes[0] in (
        R.TRANSFER_RESULT_CODE_OK,
        R.TRANSFER_RESULT_CODE_EXISTS,
    ):
        return
    failed = [code for code in codes if code != R.TRANSFER_RESULT_CODE_LINKED_TRANSFER_FAILED]
    assert failed == [R.TRANSFER_RESULT_CODE_INSUFFICIENT_BALANCE], codes


@pytest.mark.slow
async def test_sigkill_under_load_loses_nothing_and_applies_no_half_chain(
    tmp_path, ledger_db
) -> None:
    suite = Suite(
        tmp_path / "data",
        env={"LEDGER_SWEEP_INTERVAL_SECONDS": str(NEVER_SECONDS), "LOG_LEVEL": "warning"},
        log_dir=tmp_path / "logs",
        databases={"ledger": ledger_db},
    )
    ledger = await suite.start("ledger")
    channels = [grpc.aio.insecure_channel(ledger.target) for _ in range(CHANNELS)]
    stubs = [ledger_grpc.LedgerServiceStub(channel) for channel in channels]
    try:
        await open_accounts(stubs[0], *ACCOUNTS)
        load = Load()
        numbers = itertools.count()
        clients = [
            asyncio.create_task(client([stubs[n % CHANNELS]], load, numbers, seed=n))
            for n in range(TASKS)
        ]
        for _ in range(KILLS):
            target = len(load.answered) + BATCHES_BETWEEN_KILLS
            while len(load.answered) < target:
                load.progress.clear()
                await load.progress.wait()
            await suite.running["ledger"].kill()
            await suite.start("ledger")
        target = len(load.answered) + BATCHES_BETWEEN_KILLS
        while len(load.answered) < target:
            load.progress.clear()
            await load.progress.wait()
        load.stop = True
        await asyncio.gather(*clients)
        await check_after_crashes(stubs[0], load)
    finally:
        for channel in channels:
            await channel.close()
        await suite.stop_all()


async def wait_for_answers(load: Load, count: int) -> None:
    target = len(load.answered) + count
    while len(load.answered) < target:
        load.progress.clear()
        await load.progress.wait()


@pytest.mark.slow
async def test_two_replicas_on_one_postgres_one_killed_under_load(tmp_path, postgres) -> None:
    """Two ledger processes write the same wallets through one database; one is
    SIGKILLed mid-load and its clients go on through the other."""
    db = fresh_database(tmp_path, "postgres", "ledger")
    suites = [
        Suite(
            tmp_path / f"data-{n}",
            env={"LEDGER_SWEEP_INTERVAL_SECONDS": str(NEVER_SECONDS), "LOG_LEVEL": "warning"},
            log_dir=tmp_path / f"logs-{n}",
            databases={"ledger": db},
        )
        for n in range(2)
    ]
    replicas = [await suite.start("ledger") for suite in suites]
    channels = [grpc.aio.insecure_channel(replica.target) for replica in replicas]
    stubs = [ledger_grpc.LedgerServiceStub(channel) for channel in channels]
    try:
        await open_accounts(stubs[0], *ACCOUNTS)
        load = Load()
        numbers = itertools.count()
        clients = [
            asyncio.create_task(client([stubs[n % 2], stubs[(n + 1) % 2]], load, numbers, seed=n))
            for n in range(TASKS)
        ]
        await wait_for_answers(load, BATCHES_BETWEEN_KILLS)
        await replicas[0].kill()
        await wait_for_answers(load, BATCHES_BETWEEN_KILLS)
        load.stop = True
        await asyncio.gather(*clients)
        await check_after_crashes(stubs[1], load)
    finally:
        for channel in channels:
            await channel.close()
        for suite in suites:
            await suite.stop_all()


async def check_after_crashes(stub, load: Load) -> None:
    assert load.errors <= IN_DOUBT, load.errors
    assert load.retried_after_doubt, "no kill landed while a batch was in flight"
    committed: dict[str, pb.Transfer] = {}
    for batch, results in load.answered.values():
        check_chain(results)
        for request, result in zip(batch, results, strict=True):
            if result.code in (R.TRANSFER_RESULT_CODE_OK, R.TRANSFER_RESULT_CODE_EXISTS):
                committed[request.id] = result.transfer
            else:
                with pytest.raises(grpc.aio.AioRpcError) as missing:
                    await stub.GetTransfer(pb.GetTransferRequest(transfer_id=request.id))
                assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    # Every acknowledged transfer is there, as acknowledged.
    for transfer_id, transfer in committed.items():
        found = await stub.GetTransfer(pb.GetTransferRequest(transfer_id=transfer_id))
        assert found.transfer == transfer
    # Every committed batch sent again returns EXISTS with the original transfers.
    for batch, results in load.answered.values():
        if results[0].code in (R.TRANSFER_RESULT_CODE_OK, R.TRANSFER_RESULT_CODE_EXISTS):
            response = await stub.PostTransfers(pb.PostTransfersRequest(transfers=batch))
            assert [r.code for r in response.results] == [R.TRANSFER_RESULT_CODE_EXISTS] * len(
                batch
            )
            assert [r.transfer for r in response.results] == [committed[t.id] for t in batch]
    state = await snapshot(stub, [message.id for message in ACCOUNTS])
    check_invariants([message for message, _ in state.values()])
    transfers = all_transfers(state)
    check_gapless(transfers)
    assert {t.id for t in transfers} == set(committed)
    for message, entries in state.values():
        assert sum(entry.balance_change for entry in entries) == message.balance.balance
        # Each entry's balance is the sum of those before it: sequence order is commit order.
        running = 0
        for entry in entries:
            running += entry.balance_change
            assert entry.balance_after == running, (message.id, entry.transfer.sequence)
    # The change feed from the start is the same gapless history.
    feed = stub.WatchTransfers(pb.WatchTransfersRequest(after_sequence=0))
    streamed = []
    async for item in feed:
        streamed.append(item.transfer)
        if len(streamed) == len(transfers):
            break
    feed.cancel()
    assert streamed == transfers
