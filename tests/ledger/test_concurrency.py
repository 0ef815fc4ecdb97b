"""Many clients at once against one wallet, over several real channels."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest
from loyalty.ledger.v1 import ledger_service_pb2 as pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from tests.support.ledger import account, check_invariants, open_accounts, post, posted

TASKS = 200
CHANNELS = 8
FUNDED = 1000
R = pb.TransferResultCode


@contextlib.asynccontextmanager
async def stubs(target: str):
    channels = [grpc.aio.insecure_channel(target) for _ in range(CHANNELS)]
    try:
        yield [ledger_grpc.LedgerServiceStub(channel) for channel in channels]
    finally:
        for channel in channels:
            await channel.close()


async def funded_wallet(ledger, expiring: bool) -> None:
    await open_accounts(
        ledger.stub,
        account("iss", kind=pb.ACCOUNT_KIND_PROGRAM_ISSUANCE),
        account("brk", kind=pb.ACCOUNT_KIND_BREAKAGE),
        account("shop", kind=pb.ACCOUNT_KIND_REDEMPTION),
        account("m-1", no_overdraft=True, expiry="brk" if expiring else ""),
    )
    # Several lots, so concurrent debits also split lots between them.
    results = await post(
        ledger.stub, *(posted(f"fund-{n}", "iss", "m-1", FUNDED // 4) for n in range(4))
    )
    assert all(result.code == R.TRANSFER_RESULT_CODE_OK for result in results)


async def accounts(ledger) -> dict[str, pb.Account]:
    found = {}
    for account_id in ("iss", "brk", "shop", "m-1"):
        reply = await ledger.stub.GetAccount(pb.GetAccountRequest(account_id=account_id))
        found[account_id] = reply.account
    check_invariants(list(found.values()))
    return found


@pytest.mark.parametrize("amount", [7, 13])
@pytest.mark.parametrize("kind", [pb.TRANSFER_KIND_POSTED, pb.TRANSFER_KIND_PENDING])
@pytest.mark.parametrize("expiring", [False, True], ids=["plain", "lots"])
async def test_concurrent_spends_never_overdraw(ledger, amount, kind, expiring) -> None:
    await funded_wallet(ledger, expiring)
    async with stubs(ledger.target) as clients:
        results = await asyncio.gather(
            *(
                post(
                    clients[n % CHANNELS],
                    posted(
                        f"spend-{n}", "m-1", "shop", amount, code=pb.TRANSFER_CODE_REDEEM, kind=kind
                    ),
                )
                for n in range(TASKS)
            )
        )
    codes = [result.code for [result] in results]
    assert codes.count(R.TRANSFER_RESULT_CODE_OK) == FUNDED // amount
    assert codes.count(R.TRANSFER_RESULT_CODE_INSUFFICIENT_BALANCE) == TASKS - FUNDED // amount
    wallet = (await accounts(ledger))["m-1"].balance
    assert wallet.available == FUNDED % amount
    spent = (FUNDED // amount) * amount
    if kind == pb.TRANSFER_KIND_PENDING:
        assert (wallet.balance, wallet.debits_pending) == (FUNDED, spent)
    else:
        assert (wallet.balance, wallet.debits_pending) == (FUNDED % amount, 0)


@pytest.mark.parametrize("chain", [1, 3], ids=["single", "chain"])
async def test_the_same_ids_sent_concurrently_commit_once(ledger, chain) -> None:
    await funded_wallet(ledger, expiring=True)
    batch = [
        posted(
            f"spend-{leg}", "m-1", "shop", 10, code=pb.TRANSFER_CODE_REDEEM, linked=leg < chain - 1
        )
        for leg in range(chain)
    ]
    async with stubs(ledger.target) as clients:
        results = await asyncio.gather(*(post(clients[n % CHANNELS], *batch) for n in range(TASKS)))
    firsts = [r for r in results if r[0].code == R.TRANSFER_RESULT_CODE_OK]
    assert len(firsts) == 1
    [first] = firsts
    assert all(r.code == R.TRANSFER_RESULT_CODE_OK for r in first)
    for others in results:
        if others is not first:
            assert [r.code for r in others] == [R.TRANSFER_RESULT_CODE_EXISTS] * chain
            assert [r.transfer for r in others] == [r.transfer for r in first]
    assert (await accounts(ledger))["m-1"].balance.balance == FUNDED - 10 * chain
