"""The player's wallet through the gateway, over the real ledger."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import pytest_asyncio
from loyalty.gateway.v1 import gateway_service_pb2 as gateway_pb
from loyalty.gateway.v1 import gateway_service_pb2_grpc as gateway_grpc
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from tests.support.gateway import bearer, gateway_settings, node_call
from tests.support.ledger import (
    DAY_US,
    codes,
    open_program,
    open_request,
    post,
    transfer,
    wallet_request,
)

# A bound on every wait for a server, so a bug fails the test instead of hanging it.
CALL_SECONDS = 10


async def post_ok(ledger, *transfers) -> None:
    async with asyncio.timeout(CALL_SECONDS):
        assert codes(await post(ledger.stub, *transfers)) == ["OK"] * len(transfers)


@pytest_asyncio.fixture
async def funded(ledger):
    """m-1 earned 100 points (expiring in 10 days) and spent 30 on a game; m-2 earned 5."""
    async with asyncio.timeout(CALL_SECONDS):
        await open_program(ledger.stub)
        await ledger.stub.OpenAccount(
            open_request("games:revenue", ledger_pb.ACCOUNT_KIND_GAME_REVENUE)
        )
        for member in ("m-1", "m-2"):
            await ledger.stub.OpenAccount(wallet_request(member))
    expires_at_us = ledger.clock.now_us() + 10 * DAY_US
    await post_ok(
        ledger,
        transfer("t-earn", "program:issuance", "m-1", 100, expires_at_us=expires_at_us),
        transfer("t-other", "program:issuance", "m-2", 5),
        transfer("t-spin", "m-1", "games:revenue", 30, code=ledger_pb.TRANSFER_CODE_GAME_COST),
    )
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
        gateway_pb.GetWalletRequest(), metadata=bearer(tokens.issue("m-1")), timeout=CALL_SECONDS
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
        gateway_pb.GetWalletRequest(), metadata=bearer(tokens.issue("m-new")), timeout=CALL_SECONDS
    )
    assert (response.wallet.member_id, response.wallet.balance) == ("m-new", 0)


async def test_history_pages_through_the_members_own_entries(wallet, tokens):
    player = bearer(tokens.issue("m-1"))
    first = await wallet.ListWalletEntries(
        gateway_pb.ListWalletEntriesRequest(page_size=1), metadata=player, timeout=CALL_SECONDS
    )
    assert [(e.transfer_id, e.change, e.balance_after) for e in first.entries] == [
        ("t-earn", 100, 100)
    ]
    assert first.entries[0].reason == gateway_pb.ENTRY_REASON_EARN
    assert first.next_page_token
    second = await wallet.ListWalletEntries(
        gateway_pb.ListWalletEntriesRequest(page_size=1, page_token=first.next_page_token),
        metadata=player,
        timeout=CALL_SECONDS,
    )
    assert [(e.transfer_id, e.change, e.reason) for e in second.entries] == [
        ("t-spin", -30, gateway_pb.ENTRY_REASON_GAME_COST)
    ]


async def test_watch_streams_only_the_members_changes(wallet, tokens, funded):
    stream = wallet.WatchWallet(
        gateway_pb.WatchWalletRequest(), metadata=bearer(tokens.issue("m-1")), timeout=60
    )
    backlog = [await asyncio.wait_for(stream.read(), CALL_SECONDS) for _ in range(2)]
    assert [(m.entry.transfer_id, m.entry.change) for m in backlog] == [
        ("t-earn", 100),
        ("t-spin", -30),
    ]
    await post_ok(funded, transfer("t-other-2", "program:issuance", "m-2", 7))
    bonus = ledger_pb.TRANSFER_CODE_BONUS
    await post_ok(funded, transfer("t-share", "program:issuance", "m-1", 10, code=bonus))
    live = await asyncio.wait_for(stream.read(), CALL_SECONDS)
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
    history = await wallet.ListWalletEntries(
        gateway_pb.ListWalletEntriesRequest(), metadata=player, timeout=CALL_SECONDS
    )
    stream = wallet.WatchWallet(
        gateway_pb.WatchWalletRequest(after_sequence=history.entries[0].sequence),
        metadata=player,
        timeout=60,
    )
    resumed = await asyncio.wait_for(stream.read(), CALL_SECONDS)
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
