"""The player's wallet through the gateway, over the real ledger."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import pytest_asyncio
from google.protobuf.timestamp_pb2 import Timestamp
from loyalty.gateway.v1 import gateway_service_pb2 as gateway_pb
from loyalty.gateway.v1 import gateway_service_pb2_grpc as gateway_grpc
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from services.kit.clock import MICROS_PER_SECOND
from tests.support.gateway import bearer, gateway_settings, node_call

DAY = 86_400


def _account(account_id: str, kind: int, **fields) -> ledger_pb.OpenAccountRequest:
    return ledger_pb.OpenAccountRequest(
        account=ledger_pb.Account(id=account_id, unit="points", kind=kind, **fields)
    )


def _wallet(member_id: str) -> ledger_pb.OpenAccountRequest:
    return _account(
        member_id,
        ledger_pb.ACCOUNT_KIND_MEMBER_WALLET,
        flags=ledger_pb.AccountFlags(debits_must_not_exceed_credits=True, expiring_lots=True),
        expiry_account_id="program:breakage",
    )


async def post(ledger, transfer_id, debit, credit, amount, code, expire_in=None, clock=None):
    transfer = ledger_pb.Transfer(
        id=transfer_id,
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        code=code,
        kind=ledger_pb.TRANSFER_KIND_POSTED,
        metadata={"source": transfer_id},
    )
    if expire_in is not None:
        expires = Timestamp()
        expires.FromMicroseconds(clock.now_us() + expire_in * MICROS_PER_SECOND)
        transfer.expire_time.CopyFrom(expires)
    response = await ledger.stub.PostTransfers(ledger_pb.PostTransfersRequest(transfers=[transfer]))
    assert response.results[0].code == ledger_pb.TRANSFER_RESULT_CODE_OK, response


@pytest_asyncio.fixture
async def funded(ledger):
    """m-1 earned 100 points (expiring in 10 days) and spent 30 on a game; m-2 earned 5."""
    stub = ledger.stub
    await stub.OpenAccount(_account("program:issuance", ledger_pb.ACCOUNT_KIND_PROGRAM_ISSUANCE))
    await stub.OpenAccount(_account("program:breakage", ledger_pb.ACCOUNT_KIND_BREAKAGE))
    await stub.OpenAccount(_account("games:revenue", ledger_pb.ACCOUNT_KIND_GAME_REVENUE))
    await stub.OpenAccount(_wallet("m-1"))
    await stub.OpenAccount(_wallet("m-2"))
    earn, cost = ledger_pb.TRANSFER_CODE_EARN, ledger_pb.TRANSFER_CODE_GAME_COST
    await post(ledger, "t-earn", "program:issuance", "m-1", 100, earn, 10 * DAY, ledger.clock)
    await post(ledger, "t-other", "program:issuance", "m-2", 5, earn)
    await post(ledger, "t-spin", "m-1", "games:revenue", 30, cost)
    return ledger


@pytest_asyncio.fixture
async def wallet_gateway(start_gateway, funded):
    return await start_gateway(gateway_settings(ledger_target=funded.target))


@pytest_asyncio.fixture
async def wallet(wallet_gateway):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{wallet_gateway.port}") as channel:
        yield gateway_grpc.WalletServiceStub(channel)


async def test_get_wallet_shows_balance_and_expiring_points(wallet, tokens):
    response = await wallet.GetWallet(
        gateway_pb.GetWalletRequest(), metadata=bearer(tokens.issue("m-1"))
    )
    got = response.wallet
    assert (got.member_id, got.unit, got.balance, got.available, got.lifetime_earned) == (
        "m-1",
        "points",
        70,
        70,
        100,
    )
    assert [item.amount for item in got.expiring_soon] == [70]


async def test_a_new_member_has_an_empty_wallet(wallet, tokens):
    response = await wallet.GetWallet(
        gateway_pb.GetWalletRequest(), metadata=bearer(tokens.issue("m-new"))
    )
    assert (response.wallet.member_id, response.wallet.balance) == ("m-new", 0)


async def test_history_pages_through_the_members_own_entries(wallet, tokens):
    player = bearer(tokens.issue("m-1"))
    first = await wallet.ListWalletEntries(
        gateway_pb.ListWalletEntriesRequest(page_size=1), metadata=player
    )
    assert [(e.transfer_id, e.change, e.balance_after) for e in first.entries] == [
        ("t-earn", 100, 100)
    ]
    assert first.entries[0].reason == gateway_pb.ENTRY_REASON_EARN
    assert first.next_page_token
    second = await wallet.ListWalletEntries(
        gateway_pb.ListWalletEntriesRequest(page_size=1, page_token=first.next_page_token),
        metadata=player,
    )
    assert [(e.transfer_id, e.change, e.reason) for e in second.entries] == [
        ("t-spin", -30, gateway_pb.ENTRY_REASON_GAME_COST)
    ]


async def test_watch_streams_only_the_members_changes(wallet, tokens, funded):
    stream = wallet.WatchWallet(
        gateway_pb.WatchWalletRequest(), metadata=bearer(tokens.issue("m-1"))
    )
    backlog = [await stream.read(), await stream.read()]
    assert [(m.entry.transfer_id, m.entry.change) for m in backlog] == [
        ("t-earn", 100),
        ("t-spin", -30),
    ]
    earn = ledger_pb.TRANSFER_CODE_EARN
    await post(funded, "t-other-2", "program:issuance", "m-2", 7, earn)
    await post(funded, "t-share", "program:issuance", "m-1", 10, ledger_pb.TRANSFER_CODE_BONUS)
    live = await asyncio.wait_for(stream.read(), 10)
    assert (live.entry.transfer_id, live.entry.change, live.entry.balance_after) == (
        "t-share",
        10,
        80,
    )
    assert live.entry.reason == gateway_pb.ENTRY_REASON_BONUS
    assert live.entry.sequence > backlog[1].entry.sequence
    stream.cancel()


async def test_resuming_a_watch_after_a_sequence(wallet, tokens):
    player = bearer(tokens.issue("m-1"))
    history = await wallet.ListWalletEntries(gateway_pb.ListWalletEntriesRequest(), metadata=player)
    stream = wallet.WatchWallet(
        gateway_pb.WatchWalletRequest(after_sequence=history.entries[0].sequence), metadata=player
    )
    resumed = await stream.read()
    assert resumed.entry.transfer_id == "t-spin"
    stream.cancel()


@pytest.mark.parametrize("transport", ["connect-json", "connect-binary", "grpc-web", "grpc"])
async def test_node_clients_read_the_wallet(wallet_gateway, node, tokens, transport):
    common = node_call(
        transport,
        wallet_gateway.port,
        "loyalty.gateway.v1.WalletService",
        token=tokens.issue("m-1"),
    )
    got, history, watched = await node(
        [
            {**common, "method": "GetWallet", "request": {}, "useHttpGet": True},
            {**common, "method": "ListWalletEntries", "request": {"pageSize": 10}},
            {**common, "method": "WatchWallet", "request": {}, "maxMessages": 2},
        ]
    )
    assert got["ok"], got
    wallet = got["messages"][0]["wallet"]
    assert (wallet["memberId"], wallet["balance"], wallet["lifetimeEarned"]) == ("m-1", "70", "100")
    entries = history["messages"][0]["entries"]
    assert [(e["transferId"], e["change"], e["reason"]) for e in entries] == [
        ("t-earn", "100", "ENTRY_REASON_EARN"),
        ("t-spin", "-30", "ENTRY_REASON_GAME_COST"),
    ]
    assert watched["ok"], watched
    assert [m["entry"]["transferId"] for m in watched["messages"]] == ["t-earn", "t-spin"]
