"""Ledger helpers every test directory shares: building accounts and transfers,
posting them, reading balances and the whole observable state to compare, and
starting a real ledger on a free port."""

from __future__ import annotations

import asyncio

import grpc
from loyalty.ledger.v1 import ledger_service_pb2 as pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.kit.proto_time import duration, timestamp
from services.ledger.domain import (
    Account,
    AccountKind,
    TransferCode,
    TransferKind,
    TransferRequest,
)
from services.ledger.server import LedgerSettings, build_server
from services.ledger.service import CommitSignal, LedgerService
from services.ledger.store import LedgerStore
from tests.support.metrics import NO_METRICS

POINTS = "points"
# The background sweeper must never run on its own in these tests: only SweepExpired sweeps.
NEVER_SECONDS = 10**9


def account(
    account_id: str,
    unit: str = POINTS,
    kind: int = pb.ACCOUNT_KIND_MEMBER_WALLET,
    *,
    no_overdraft: bool = False,
    no_overcredit: bool = False,
    expiry: str = "",
) -> pb.Account:
    """An account; `expiry` names the expiry account and turns expiring lots on."""
    return pb.Account(
        id=account_id,
        unit=unit,
        kind=kind,
        flags=pb.AccountFlags(
            debits_must_not_exceed_credits=no_overdraft or bool(expiry),
            credits_must_not_exceed_debits=no_overcredit,
            expiring_lots=bool(expiry),
        ),
        expiry_account_id=expiry,
    )


def posted(transfer_id: str, debit: str, credit: str, amount: int, **fields) -> pb.Transfer:
    """A transfer between two accounts: POSTED and EARN unless `fields` say otherwise."""
    fields.setdefault("code", pb.TRANSFER_CODE_EARN)
    fields.setdefault("kind", pb.TRANSFER_KIND_POSTED)
    return pb.Transfer(
        id=transfer_id,
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        **fields,
    )


async def open_accounts(stub: ledger_grpc.LedgerServiceStub, *accounts: pb.Account) -> None:
    for message in accounts:
        await stub.OpenAccount(pb.OpenAccountRequest(account=message))


async def post(stub: ledger_grpc.LedgerServiceStub, *transfers: pb.Transfer):
    response = await stub.PostTransfers(pb.PostTransfersRequest(transfers=transfers))
    return list(response.results)


async def history(
    stub: ledger_grpc.LedgerServiceStub, account_id: str, page_size: int = 100
) -> list[pb.AccountEntry]:
    """Every entry of an account, page by page."""
    entries: list[pb.AccountEntry] = []
    token = ""
    while True:
        page = await stub.ListTransfers(
            pb.ListTransfersRequest(account_id=account_id, page_size=page_size, page_token=token)
        )
        entries.extend(page.entries)
        token = page.next_page_token
        if not token:
            return entries


async def snapshot(
    stub: ledger_grpc.LedgerServiceStub, account_ids
) -> dict[str, tuple[pb.Account, list[pb.AccountEntry]]]:
    """Each account with its balances and its whole history: all a client can see."""

    async def one(account_id: str) -> tuple[pb.Account, list[pb.AccountEntry]]:
        found = await stub.GetAccount(pb.GetAccountRequest(account_id=account_id))
        return found.account, await history(stub, account_id)

    ids = list(account_ids)
    return dict(zip(ids, await asyncio.gather(*map(one, ids)), strict=True))


def all_transfers(state: dict[str, tuple[pb.Account, list[pb.AccountEntry]]]) -> list[pb.Transfer]:
    """Every transfer of a snapshot once, in sequence order (each touches two accounts)."""
    unique = {
        entry.transfer.sequence: entry.transfer
        for _, entries in state.values()
        for entry in entries
    }
    return [unique[sequence] for sequence in sorted(unique)]


async def every_account(
    stub: ledger_grpc.LedgerServiceStub, start
) -> dict[str, tuple[pb.Account, list[pb.AccountEntry]]]:
    """A snapshot of every account reachable from the accounts `start` names
    through transfers: enough to check the whole books of what they touched."""
    ids: set[str] = set(start)
    while True:
        state = await snapshot(stub, sorted(ids))
        more = {a for t in all_transfers(state) for a in (t.debit_account_id, t.credit_account_id)}
        if more <= ids:
            return state
        ids |= more


def check_invariants(accounts: list[pb.Account]) -> None:
    """Per unit the balances sum to zero; no constrained account is past its bound."""
    totals: dict[str, int] = {}
    for message in accounts:
        balance = message.balance
        totals[message.unit] = totals.get(message.unit, 0) + balance.balance
        assert balance.balance == balance.credits_posted - balance.debits_posted
        assert balance.available == balance.balance - balance.debits_pending
        if message.flags.debits_must_not_exceed_credits:
            assert balance.available >= 0, message
        if message.flags.credits_must_not_exceed_debits:
            assert -balance.balance - balance.credits_pending >= 0, message
    assert all(total == 0 for total in totals.values()), totals


def check_gapless(transfers: list[pb.Transfer]) -> None:
    assert [t.sequence for t in transfers] == list(range(1, len(transfers) + 1))


async def start_ledger(
    db_path, clock, sweep_interval_seconds: float = NEVER_SECONDS, metrics_listen: str = NO_METRICS
):
    """A real ledger server on a free port over `db_path`, and a channel to it."""
    settings = LedgerSettings(
        db_path=db_path,
        sweep_interval_seconds=sweep_interval_seconds,
        metrics_listen=metrics_listen,
    )
    host = await build_server(settings, "127.0.0.1:0", clock)
    await host.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{host.port}")
    return host, channel, ledger_grpc.LedgerServiceStub(channel)


DAY_US = 86_400 * 1_000_000

WALLET_FLAGS = pb.AccountFlags(debits_must_not_exceed_credits=True, expiring_lots=True)


def open_request(
    account_id: str, kind=pb.ACCOUNT_KIND_MEMBER_WALLET, unit="points", **fields
) -> pb.OpenAccountRequest:
    """An OpenAccountRequest for an account with these fields."""
    return pb.OpenAccountRequest(account=pb.Account(id=account_id, unit=unit, kind=kind, **fields))


def wallet_request(account_id: str, unit: str = "points") -> pb.OpenAccountRequest:
    """The OpenAccountRequest of a member wallet as the suite opens it."""
    if unit != "points":
        return open_request(
            account_id, unit=unit, flags=pb.AccountFlags(debits_must_not_exceed_credits=True)
        )
    return open_request(account_id, flags=WALLET_FLAGS, expiry_account_id="program:breakage")


def transfer(
    transfer_id: str,
    debit: str = "",
    credit: str = "",
    amount: int = 0,
    *,
    code=pb.TRANSFER_CODE_EARN,
    kind=pb.TRANSFER_KIND_POSTED,
    linked: bool = False,
    expires_at_us: int | None = None,
    timeout_us: int | None = None,
    **fields,
) -> pb.Transfer:
    message = pb.Transfer(
        id=transfer_id,
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        code=code,
        kind=kind,
        linked=linked,
        **fields,
    )
    if expires_at_us is not None:
        message.expire_time.CopyFrom(timestamp(expires_at_us))
    if timeout_us is not None:
        message.timeout.CopyFrom(duration(timeout_us))
    return message


async def open_program(stub) -> None:
    """The program's issuance and breakage accounts."""
    await stub.OpenAccount(open_request("program:issuance", pb.ACCOUNT_KIND_PROGRAM_ISSUANCE))
    await stub.OpenAccount(open_request("program:breakage", pb.ACCOUNT_KIND_BREAKAGE))


async def balances(stub, account_id: str) -> pb.Balance:
    response = await stub.GetAccount(pb.GetAccountRequest(account_id=account_id))
    return response.account.balance


def codes(results) -> list[str]:
    return [
        pb.TransferResultCode.Name(result.code).removeprefix("TRANSFER_RESULT_CODE_")
        for result in results
    ]


async def balance(stub: ledger_grpc.LedgerServiceStub, account_id: str) -> int:
    """An account's posted balance; 0 when it was never opened."""
    try:
        response = await stub.GetAccount(pb.GetAccountRequest(account_id=account_id))
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND, error
        return 0
    return response.account.balance.balance


async def fund(
    stub: ledger_grpc.LedgerServiceStub, member_id: str, points: int, transfer_id: str = ""
) -> None:
    """Give a member points the way campaigns would: program issuance -> wallet."""
    await open_program(stub)
    await stub.OpenAccount(wallet_request(member_id))
    (result,) = await post(
        stub,
        posted(transfer_id or f"fund:{member_id}:{points}", "program:issuance", member_id, points),
    )
    assert result.code == pb.TRANSFER_RESULT_CODE_OK, result


# ---------------------------------------------------------------- the service over a store

SERVICE_WALLETS = ("w1", "w2", "w3")


async def open_service(path, clock):
    """LedgerService over a real LedgerStore at `path` (no server), with an issuance
    account "iss", a breakage account "brk" and SERVICE_WALLETS whose lots expire
    into it. The caller closes the store."""
    store = LedgerStore(path)
    await store.open()
    service = LedgerService(store, clock, CommitSignal())
    await service.open_account(Account("iss", "points", AccountKind.PROGRAM_ISSUANCE))
    await service.open_account(Account("brk", "points", AccountKind.BREAKAGE))
    for wallet in SERVICE_WALLETS:
        await service.open_account(
            Account(
                wallet,
                "points",
                AccountKind.MEMBER_WALLET,
                debits_must_not_exceed_credits=True,
                expiring_lots=True,
                expiry_account_id="brk",
            )
        )
    return store, service


def moved(transfer_id: str, debit: str, credit: str, amount: int, **fields):
    """A domain TransferRequest between two accounts: POSTED and EARN unless `fields` say."""
    fields.setdefault("kind", TransferKind.POSTED)
    fields.setdefault("code", TransferCode.EARN)
    return TransferRequest(
        id=transfer_id, debit_account_id=debit, credit_account_id=credit, amount=amount, **fields
    )
