"""Helpers the ledger's reliability tests share: building accounts and transfers,
and reading the whole observable state (accounts and history) to compare."""

from __future__ import annotations

import asyncio

import grpc
from loyalty.ledger.v1 import ledger_service_pb2 as pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.ledger.server import LedgerSettings, build_server

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


async def start_ledger(db_path, clock, sweep_interval_seconds: float = NEVER_SECONDS):
    """A real ledger server on a free port over `db_path`, and a channel to it."""
    settings = LedgerSettings(db_path=db_path, sweep_interval_seconds=sweep_interval_seconds)
    host = await build_server(settings, "127.0.0.1:0", clock)
    await host.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{host.port}")
    return host, channel, ledger_grpc.LedgerServiceStub(channel)
