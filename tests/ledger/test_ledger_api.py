"""The ledger's behaviour through its gRPC API: a real server, a real SQLite file."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from loyalty.ledger.v1 import ledger_service_pb2 as pb

from services.kit.clock import ManualClock
from services.kit.proto_time import timestamp
from services.kit.status import error_info, field_violations
from tests.support.ledger import (
    DAY_US,
    WALLET_FLAGS,
    balances,
    codes,
    open_program,
    open_request,
    post,
    start_ledger,
    transfer,
    wallet_request,
)


@pytest.fixture
async def program(ledger):
    await open_program(ledger.stub)
    await ledger.stub.OpenAccount(wallet_request("m-1"))
    await ledger.stub.OpenAccount(wallet_request("m-2"))
    await ledger.stub.OpenAccount(open_request("games:revenue", pb.ACCOUNT_KIND_GAME_REVENUE))
    return ledger


async def earn(stub, transfer_id, member, amount, **fields):
    return await post(stub, transfer(transfer_id, "program:issuance", member, amount, **fields))


# ---------------------------------------------------------------- accounts


async def test_opening_is_idempotent_and_refuses_a_different_definition(ledger):
    await open_program(ledger.stub)
    first = await ledger.stub.OpenAccount(wallet_request("m-1"))
    again = await ledger.stub.OpenAccount(wallet_request("m-1"))
    assert first.created and not again.created
    assert again.account.create_time == first.account.create_time

    changed = wallet_request("m-1")
    changed.account.metadata["tier"] = "gold"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.stub.OpenAccount(changed)
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    info = error_info(raised.value)
    assert info.reason == "ACCOUNT_EXISTS_WITH_DIFFERENT_FIELDS"
    assert info.metadata["field"] == "metadata"


async def test_expiring_lots_need_an_existing_expiry_account_of_the_same_unit(ledger):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.stub.OpenAccount(wallet_request("m-1"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "account.expiry_account_id" in field_violations(raised.value)
    await ledger.stub.OpenAccount(
        open_request("program:breakage", pb.ACCOUNT_KIND_BREAKAGE, unit="prize:mug")
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await ledger.stub.OpenAccount(wallet_request("m-1"))
    assert error_info(raised.value).reason == "INVALID_EXPIRY_ACCOUNT"
    await ledger.stub.OpenAccount(open_request("breakage", pb.ACCOUNT_KIND_BREAKAGE))
    opened = await ledger.stub.OpenAccount(
        open_request("m-1", flags=WALLET_FLAGS, expiry_account_id="breakage")
    )
    assert opened.created


async def test_a_closed_account_takes_no_new_transfers_but_stays_readable(program):
    stub = program.stub
    await earn(stub, "e1", "m-1", 50)
    closed = await stub.CloseAccount(pb.CloseAccountRequest(account_id="m-1"))
    assert closed.account.HasField("close_time")
    results = await earn(stub, "e2", "m-1", 10)
    assert codes(results) == ["ACCOUNT_CLOSED"]
    assert results[0].field == "credit_account_id"
    assert (await balances(stub, "m-1")).balance == 50


# ---------------------------------------------------------------- transfers


async def test_a_retry_returns_the_original_and_a_changed_retry_names_the_field(program):
    stub = program.stub
    first = await earn(stub, "earn-1", "m-1", 100)
    retry = await earn(stub, "earn-1", "m-1", 100)
    assert codes(first) == ["OK"] and codes(retry) == ["EXISTS"]
    assert retry[0].transfer == first[0].transfer
    changed = await earn(stub, "earn-1", "m-1", 101)
    assert codes(changed) == ["EXISTS_WITH_DIFFERENT_FIELDS"]
    assert changed[0].field == "amount"
    assert (await balances(stub, "m-1")).balance == 100


async def test_wallets_never_go_negative_and_refusals_change_nothing(program):
    stub = program.stub
    await earn(stub, "e1", "m-1", 30)
    before = await balances(stub, "m-1")
    spend = transfer("s1", "m-1", "games:revenue", 31, code=pb.TRANSFER_CODE_GAME_COST)
    assert codes(await post(stub, spend)) == ["INSUFFICIENT_BALANCE"]
    assert await balances(stub, "m-1") == before
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetTransfer(pb.GetTransferRequest(transfer_id="s1"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_every_transfer_gets_its_own_result(program):
    stub = program.stub
    await stub.OpenAccount(wallet_request("m-1/prize:free-coffee", unit="prize:free-coffee"))
    results = await post(
        stub,
        transfer("ok", "program:issuance", "m-1", 5),
        transfer("missing", "program:issuance", "nobody", 5),
        transfer("units", "m-1", "m-1/prize:free-coffee", 1, code=pb.TRANSFER_CODE_REDEEM),
        transfer("broke", "m-2", "m-1", 1, code=pb.TRANSFER_CODE_ADJUSTMENT),
    )
    assert codes(results) == ["OK", "ACCOUNT_NOT_FOUND", "UNIT_MISMATCH", "INSUFFICIENT_BALANCE"]
    assert results[1].field == "credit_account_id"
    assert [r.index for r in results] == [0, 1, 2, 3]


async def test_a_linked_chain_commits_whole_or_not_at_all(program):
    stub = program.stub
    await earn(stub, "e1", "m-1", 10)
    results = await post(
        stub,
        transfer("c1", "program:issuance", "m-2", 7, linked=True),
        transfer("c2", "m-1", "games:revenue", 11, code=pb.TRANSFER_CODE_GAME_COST),
        transfer("alone", "program:issuance", "m-1", 1),
    )
    assert codes(results) == ["LINKED_TRANSFER_FAILED", "INSUFFICIENT_BALANCE", "OK"]
    assert (await balances(stub, "m-2")).balance == 0
    assert (await balances(stub, "m-1")).balance == 11

    # A chain's later legs may rely on its earlier ones.
    results = await post(
        stub,
        transfer("d1", "program:issuance", "m-2", 7, linked=True),
        transfer("d2", "m-2", "games:revenue", 7, code=pb.TRANSFER_CODE_GAME_COST),
    )
    assert codes(results) == ["OK", "OK"]
    assert (await balances(stub, "m-2")).balance == 0


# ---------------------------------------------------------------- holds


async def test_a_hold_reserves_then_posts_partly_and_releases_the_rest(program):
    stub = program.stub
    await earn(stub, "e1", "m-1", 100)
    hold = transfer(
        "h1",
        "m-1",
        "games:revenue",
        60,
        code=pb.TRANSFER_CODE_REDEEM,
        kind=pb.TRANSFER_KIND_PENDING,
    )
    assert codes(await post(stub, hold)) == ["OK"]
    held = await balances(stub, "m-1")
    assert (held.balance, held.available, held.debits_pending) == (100, 40, 60)

    post_part = transfer(
        "h1-post", amount=45, kind=pb.TRANSFER_KIND_POST_PENDING, pending_id="h1", code=0
    )
    assert codes(await post(stub, post_part)) == ["OK"]
    after = await balances(stub, "m-1")
    assert (after.balance, after.available, after.debits_pending) == (55, 55, 0)

    again = transfer("h1-post-2", kind=pb.TRANSFER_KIND_POST_PENDING, pending_id="h1", code=0)
    void = transfer("h1-void", kind=pb.TRANSFER_KIND_VOID_PENDING, pending_id="h1", code=0)
    assert codes(await post(stub, again, void)) == [
        "PENDING_ALREADY_POSTED",
        "PENDING_ALREADY_POSTED",
    ]
    state = await stub.GetTransfer(pb.GetTransferRequest(transfer_id="h1"))
    assert state.pending_state == pb.PENDING_STATE_POSTED


async def test_a_void_releases_the_hold_and_cannot_be_repeated(program):
    stub = program.stub
    await earn(stub, "e1", "m-1", 100)
    await post(
        stub,
        transfer(
            "h1",
            "m-1",
            "games:revenue",
            100,
            code=pb.TRANSFER_CODE_REDEEM,
            kind=pb.TRANSFER_KIND_PENDING,
        ),
    )
    too_much = transfer(
        "h1-over", amount=101, kind=pb.TRANSFER_KIND_POST_PENDING, pending_id="h1", code=0
    )
    assert codes(await post(stub, too_much)) == ["AMOUNT_EXCEEDS_PENDING"]
    void = transfer("h1-void", kind=pb.TRANSFER_KIND_VOID_PENDING, pending_id="h1", code=0)
    assert codes(await post(stub, void)) == ["OK"]
    assert (await balances(stub, "m-1")).available == 100
    assert codes(
        await post(
            stub, transfer("h1-void-2", kind=pb.TRANSFER_KIND_VOID_PENDING, pending_id="h1", code=0)
        )
    ) == ["PENDING_ALREADY_VOIDED"]
    unknown = transfer("x", kind=pb.TRANSFER_KIND_VOID_PENDING, pending_id="no-such-hold", code=0)
    assert codes(await post(stub, unknown)) == ["PENDING_NOT_FOUND"]


async def test_a_hold_with_a_timeout_is_voided_by_the_clock(program):
    stub = program.stub
    await earn(stub, "e1", "m-1", 100)
    hold = transfer(
        "h1",
        "m-1",
        "games:revenue",
        70,
        code=pb.TRANSFER_CODE_REDEEM,
        kind=pb.TRANSFER_KIND_PENDING,
        timeout_us=60_000_000,
    )
    await post(stub, hold)
    program.clock.advance(59)
    assert (await stub.SweepExpired(pb.SweepExpiredRequest())).pending_expired == 0
    program.clock.advance(1)
    # Posting after the timeout fails even before any sweep has run.
    late = transfer("h1-post", kind=pb.TRANSFER_KIND_POST_PENDING, pending_id="h1", code=0)
    assert codes(await post(stub, late)) == ["PENDING_EXPIRED"]
    assert (await balances(stub, "m-1")).available == 100
    state = await stub.GetTransfer(pb.GetTransferRequest(transfer_id="h1"))
    assert state.pending_state == pb.PENDING_STATE_EXPIRED
    expired = await stub.GetTransfer(pb.GetTransferRequest(transfer_id="expire:h1"))
    assert expired.transfer.kind == pb.TRANSFER_KIND_EXPIRE_PENDING


# ---------------------------------------------------------------- expiring lots


async def test_debits_take_the_soonest_expiring_points_and_the_sweep_moves_the_rest(program):
    stub, clock = program.stub, program.clock
    now = clock.now_us()
    await earn(stub, "late", "m-1", 100, expires_at_us=now + 30 * DAY_US)
    await earn(stub, "soon", "m-1", 50, expires_at_us=now + 10 * DAY_US)
    await earn(stub, "never", "m-1", 20)
    account_view = await stub.GetAccount(pb.GetAccountRequest(account_id="m-1"))
    expiring = [(e.amount, e.expire_time) for e in account_view.account.balance.expiring_soon]
    assert expiring == [(50, timestamp(now + 10 * DAY_US)), (100, timestamp(now + 30 * DAY_US))]

    await post(stub, transfer("spend", "m-1", "games:revenue", 60, code=pb.TRANSFER_CODE_REDEEM))
    clock.advance(10 * 86_400)
    swept = await stub.SweepExpired(pb.SweepExpiredRequest())
    # The soonest lot was spent first, so nothing has expired yet.
    assert (swept.lots_expired, swept.amount_expired) == (0, 0)
    clock.advance(20 * 86_400)
    swept = await stub.SweepExpired(pb.SweepExpiredRequest())
    assert (swept.lots_expired, swept.amount_expired) == (1, 90)
    assert (await balances(stub, "m-1")).balance == 20
    assert (await balances(stub, "program:breakage")).balance == 90
    history = await stub.ListTransfers(
        pb.ListTransfersRequest(account_id="m-1", codes=[pb.TRANSFER_CODE_EXPIRY])
    )
    assert [(e.transfer.amount, e.balance_after, e.balance_change) for e in history.entries] == [
        (90, 20, -90)
    ]


async def test_expired_points_cannot_be_spent_even_before_the_sweep(program):
    stub, clock = program.stub, program.clock
    await earn(stub, "e1", "m-1", 40, expires_at_us=clock.now_us() + DAY_US)
    clock.advance(86_400)
    spend = transfer("spend", "m-1", "games:revenue", 1, code=pb.TRANSFER_CODE_REDEEM)
    assert codes(await post(stub, spend)) == ["INSUFFICIENT_BALANCE"]
    assert (await balances(stub, "program:breakage")).balance == 40


async def test_points_a_void_returns_to_an_expired_lot_expire_again(program):
    # A hold reserved part of a lot; the lot expired; the hold was voided, putting
    # points back into the expired lot. Its second expiry once reused the first
    # one's id, and from then on every sweep failed with INTERNAL.
    stub, clock = program.stub, program.clock
    await earn(stub, "e1", "m-1", 100, expires_at_us=clock.now_us() + DAY_US)
    hold = transfer(
        "h1",
        "m-1",
        "games:revenue",
        30,
        code=pb.TRANSFER_CODE_REDEEM,
        kind=pb.TRANSFER_KIND_PENDING,
    )
    assert codes(await post(stub, hold)) == ["OK"]
    clock.advance(86_400)
    assert (await stub.SweepExpired(pb.SweepExpiredRequest())).amount_expired == 70
    void = transfer("h1-void", kind=pb.TRANSFER_KIND_VOID_PENDING, pending_id="h1", code=0)
    assert codes(await post(stub, void)) == ["OK"]
    assert (await stub.SweepExpired(pb.SweepExpiredRequest())).amount_expired == 30
    assert (await balances(stub, "m-1")).balance == 0
    assert (await balances(stub, "program:breakage")).balance == 100
    history = await stub.ListTransfers(
        pb.ListTransfersRequest(account_id="m-1", codes=[pb.TRANSFER_CODE_EXPIRY])
    )
    assert [entry.transfer.amount for entry in history.entries] == [70, 30]
    assert len({entry.transfer.id for entry in history.entries}) == 2


# ---------------------------------------------------------------- reversals


async def test_reversals_take_back_at_most_the_original_in_total(program):
    stub = program.stub
    await earn(stub, "purchase-1", "m-1", 100)

    def reverse(i, amount):
        return transfer(
            i,
            amount=amount,
            kind=pb.TRANSFER_KIND_REVERSAL,
            reverses_transfer_id="purchase-1",
            code=pb.TRANSFER_CODE_CLAWBACK,
        )

    assert codes(await post(stub, reverse("r1", 30))) == ["OK"]
    assert codes(await post(stub, reverse("r2", 71))) == ["EXCEEDS_REVERSIBLE_AMOUNT"]
    assert codes(await post(stub, reverse("r2", 70))) == ["OK"]
    assert (await balances(stub, "m-1")).balance == 0
    original = await stub.GetTransfer(pb.GetTransferRequest(transfer_id="purchase-1"))
    assert original.reversed_amount == 100
    reversal = await stub.GetTransfer(pb.GetTransferRequest(transfer_id="r1"))
    assert (reversal.transfer.debit_account_id, reversal.transfer.credit_account_id) == (
        "m-1",
        "program:issuance",
    )


async def test_a_reversal_the_balance_no_longer_allows_changes_nothing(program):
    stub = program.stub
    await earn(stub, "purchase-1", "m-1", 100)
    await post(stub, transfer("spend", "m-1", "games:revenue", 80, code=pb.TRANSFER_CODE_REDEEM))
    clawback = transfer(
        "r1", amount=100, kind=pb.TRANSFER_KIND_REVERSAL, reverses_transfer_id="purchase-1", code=0
    )
    assert codes(await post(stub, clawback)) == ["INSUFFICIENT_BALANCE"]
    assert (await balances(stub, "m-1")).balance == 20
    assert (
        await stub.GetTransfer(pb.GetTransferRequest(transfer_id="purchase-1"))
    ).reversed_amount == 0
    pending = transfer(
        "h", "m-1", "games:revenue", 5, code=pb.TRANSFER_CODE_REDEEM, kind=pb.TRANSFER_KIND_PENDING
    )
    await post(stub, pending)
    reverse_hold = transfer(
        "r2", amount=5, kind=pb.TRANSFER_KIND_REVERSAL, reverses_transfer_id="h", code=0
    )
    assert codes(await post(stub, reverse_hold)) == ["REVERSED_TRANSFER_NOT_REVERSIBLE"]


# ---------------------------------------------------------------- reads


async def test_history_pages_with_balances_after_and_filters(program):
    stub, clock = program.stub, program.clock
    for index in range(5):
        await earn(stub, f"e{index}", "m-1", 10)
        clock.advance(60)
    await post(stub, transfer("spend", "m-1", "games:revenue", 15, code=pb.TRANSFER_CODE_GAME_COST))
    seen, token = [], ""
    while True:
        page = await stub.ListTransfers(
            pb.ListTransfersRequest(account_id="m-1", page_size=2, page_token=token)
        )
        seen.extend((e.transfer.id, e.balance_after) for e in page.entries)
        token = page.next_page_token
        if not token:
            break
    assert seen == [("e0", 10), ("e1", 20), ("e2", 30), ("e3", 40), ("e4", 50), ("spend", 35)]

    costs = await stub.ListTransfers(
        pb.ListTransfersRequest(account_id="m-1", codes=[pb.TRANSFER_CODE_GAME_COST])
    )
    assert [e.transfer.id for e in costs.entries] == ["spend"]
    start = clock.now_us() - 4 * 60_000_000
    window = pb.ListTransfersRequest(
        account_id="m-1", start_time=timestamp(start), end_time=timestamp(start + 120_000_000)
    )
    assert [e.transfer.id for e in (await stub.ListTransfers(window)).entries] == ["e1", "e2"]

    first = await stub.ListTransfers(pb.ListTransfersRequest(account_id="m-1", page_size=1))
    other_query = pb.ListTransfersRequest(account_id="m-2", page_token=first.next_page_token)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.ListTransfers(other_query)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(raised.value).reason == "INVALID_PAGE_TOKEN"


async def test_the_balance_at_a_past_instant(program):
    stub, clock = program.stub, program.clock
    start = clock.now_us()
    await earn(stub, "e1", "m-1", 10)
    clock.advance(3600)
    await earn(stub, "e2", "m-1", 5)
    at = lambda us: stub.GetBalanceAt(pb.GetBalanceAtRequest(account_id="m-1", time=timestamp(us)))  # noqa: E731
    assert (await at(start - 1)).balance == 0
    assert (await at(start + 1_000_000)).balance == 10
    assert (await at(clock.now_us())).balance == 15


async def test_the_change_feed_resumes_from_a_sequence_and_follows_new_commits(program):
    stub = program.stub
    await earn(stub, "e1", "m-1", 10)
    await earn(stub, "e2", "m-2", 10)
    everything = stub.WatchTransfers(pb.WatchTransfersRequest(after_sequence=0))
    first_two = [
        await asyncio.wait_for(everything.read(), 10),
        await asyncio.wait_for(everything.read(), 10),
    ]
    assert [m.transfer.sequence for m in first_two] == [1, 2]

    only_m1 = stub.WatchTransfers(pb.WatchTransfersRequest(after_sequence=1, account_id="m-1"))
    waiting = asyncio.ensure_future(only_m1.read())
    await earn(stub, "e3", "m-2", 1)
    await earn(stub, "e4", "m-1", 1)
    update = await asyncio.wait_for(waiting, 10)
    assert (update.transfer.id, update.transfer.sequence) == ("e4", 4)
    assert (await asyncio.wait_for(everything.read(), 10)).transfer.id == "e3"
    everything.cancel()
    only_m1.cancel()


async def test_a_resumed_feed_starts_right_after_its_cursor_wherever_it_resumes(program):
    # A consumer that stored cursor k must get k + 1 next: never k again, never k + 2.
    stub = program.stub
    for index in range(6):
        await earn(stub, f"e{index}", "m-1" if index % 2 else "m-2", 1)
    m1_sequences = [2, 4, 6]
    for cursor in range(6):
        feed = stub.WatchTransfers(pb.WatchTransfersRequest(after_sequence=cursor))
        first = await asyncio.wait_for(feed.read(), 10)
        feed.cancel()
        assert first.transfer.sequence == cursor + 1
        only_m1 = stub.WatchTransfers(
            pb.WatchTransfersRequest(after_sequence=cursor, account_id="m-1")
        )
        first_of_m1 = await asyncio.wait_for(only_m1.read(), 10)
        only_m1.cancel()
        assert first_of_m1.transfer.sequence == next(s for s in m1_sequences if s > cursor)


async def test_health_and_reflection_are_served(program):
    channel = grpc.aio.insecure_channel(program.target)
    async with channel:
        health = health_pb2_grpc.HealthStub(channel)
        response = await health.Check(
            health_pb2.HealthCheckRequest(service="loyalty.ledger.v1.LedgerService")
        )
        assert response.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        async for answer in answers:
            names = {service.name for service in answer.list_services_response.service}
            break
    assert "loyalty.ledger.v1.LedgerService" in names


async def test_the_sweeper_runs_on_the_injected_clock(tmp_path):
    clock = ManualClock()
    host, channel, stub = await start_ledger(tmp_path / "ledger.db", clock, 60)
    try:
        await open_program(stub)
        await stub.OpenAccount(wallet_request("m-1"))
        await earn(stub, "e1", "m-1", 25, expires_at_us=clock.now_us() + 30_000_000)
        feed = stub.WatchTransfers(pb.WatchTransfersRequest(account_id="program:breakage"))
        clock.advance(60)
        # The sweeper wakes on the clock alone; its expiry shows on the feed.
        swept = await asyncio.wait_for(feed.read(), 30)
        feed.cancel()
        assert swept.transfer.code == pb.TRANSFER_CODE_EXPIRY
        assert (await balances(stub, "m-1")).balance == 0
        assert (await balances(stub, "program:breakage")).balance == 25
    finally:
        await channel.close()
        await host.stop(None)


@pytest.mark.parametrize(
    "call",
    [
        lambda stub: stub.GetAccount(pb.GetAccountRequest(account_id="a b")),
        lambda stub: stub.GetTransfer(pb.GetTransferRequest(transfer_id="x" * 129)),
        lambda stub: stub.ListTransfers(pb.ListTransfersRequest(account_id="-starts-with-dash")),
    ],
)
async def test_malformed_ids_on_reads_are_invalid_not_missing(ledger, call):
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(ledger.stub)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(raised.value)


async def test_a_malformed_account_id_on_the_feed_is_invalid(ledger):
    feed = ledger.stub.WatchTransfers(pb.WatchTransfersRequest(account_id="a b"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await feed.read()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
