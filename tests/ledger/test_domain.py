"""The ledger's rules on an in-memory Book: no server, no database."""

from __future__ import annotations

import pytest

from services.kit.errors import InvalidArgument
from services.ledger.domain import (
    MAX_AMOUNT,
    Account,
    AccountKind,
    Book,
    Lot,
    Result,
    TransferCode,
    TransferKind,
    TransferRequest,
    first_difference,
    validate_account,
    validate_batch,
)


def book(**balances: int) -> Book:
    """A book with an issuance account and lot-tracking wallets holding `balances`."""
    ledger = Book(now=1_000, next_sequence=1)
    ledger.accounts["issuance"] = Account("issuance", "points", AccountKind.PROGRAM_ISSUANCE)
    ledger.accounts["breakage"] = Account("breakage", "points", AccountKind.BREAKAGE)
    for name, amount in balances.items():
        ledger.accounts[name] = Account(
            name,
            "points",
            AccountKind.MEMBER_WALLET,
            debits_must_not_exceed_credits=True,
            expiring_lots=True,
            expiry_account_id="breakage",
        )
        if amount:
            ledger.post([earn(f"seed-{name}", name, amount)])
    return ledger


def earn(transfer_id: str, member: str, amount: int, expires_at: int | None = None, **fields):
    fields.setdefault("code", TransferCode.EARN)
    return TransferRequest(
        id=transfer_id,
        kind=TransferKind.POSTED,
        debit_account_id="issuance",
        credit_account_id=member,
        amount=amount,
        expires_at=expires_at,
        **fields,
    )


def spend(transfer_id: str, member: str, amount: int, **fields):
    fields.setdefault("kind", TransferKind.POSTED)
    fields.setdefault("code", TransferCode.REDEEM)
    return TransferRequest(
        id=transfer_id,
        debit_account_id=member,
        credit_account_id="issuance",
        amount=amount,
        **fields,
    )


def test_a_failed_chain_leaves_the_book_exactly_as_it_was():
    ledger = book(alice=10)
    before = (ledger.accounts["alice"].available, ledger.next_sequence, len(ledger.new_transfers))
    outcomes = ledger.post(
        [
            earn("a", "alice", 5, linked=True),
            spend("b", "alice", 12, linked=True),
            spend("c", "alice", 50),
        ]
    )
    assert [o.result for o in outcomes] == [
        Result.LINKED_TRANSFER_FAILED,
        Result.LINKED_TRANSFER_FAILED,
        Result.INSUFFICIENT_BALANCE,
    ]
    after = (ledger.accounts["alice"].available, ledger.next_sequence, len(ledger.new_transfers))
    assert after == before
    assert "a" not in ledger.transfers


def test_sequences_stay_gapless_across_failed_chains():
    ledger = book(alice=0)
    ledger.post([earn("a", "alice", 1, linked=True), spend("b", "alice", 9)])
    ledger.post([earn("c", "alice", 1)])
    assert [t.sequence for t in ledger.new_transfers] == [1]
    assert ledger.transfers["c"].sequence == 1


def test_lots_are_consumed_soonest_expiry_first_and_never_expiring_last():
    ledger = book(alice=0)
    ledger.post(
        [
            earn("never", "alice", 10),
            earn("late", "alice", 10, expires_at=9_000),
            earn("soon", "alice", 10, expires_at=5_000),
        ]
    )
    ledger.post([spend("s", "alice", 15)])
    remaining = {lot.sequence: lot.remaining for lot in ledger.lots["alice"]}
    sequence = {name: ledger.transfers[name].sequence for name in ("never", "late", "soon")}
    assert remaining[sequence["soon"]] == 0
    assert remaining[sequence["late"]] == 5
    assert remaining[sequence["never"]] == 10


def test_expiry_moves_only_expired_remainders_to_the_expiry_account():
    ledger = book(alice=0)
    ledger.post([earn("soon", "alice", 10, expires_at=5_000), earn("never", "alice", 4)])
    ledger.now = 5_000
    expired = ledger.expire_lots(["alice"])
    assert [(t.code, t.amount, t.credit_account_id) for t in expired] == [
        (TransferCode.EXPIRY, 10, "breakage")
    ]
    assert ledger.accounts["alice"].balance == 4
    assert ledger.accounts["breakage"].balance == 10
    assert sum(lot.remaining for lot in ledger.lots["alice"]) == ledger.accounts["alice"].available


def test_a_partial_post_returns_the_unposted_amount_to_the_same_lots():
    ledger = book(alice=0)
    ledger.post([earn("lot", "alice", 100, expires_at=50_000)])
    hold = TransferRequest(
        id="h",
        kind=TransferKind.PENDING,
        debit_account_id="alice",
        credit_account_id="issuance",
        amount=60,
        code=TransferCode.REDEEM,
    )
    ledger.post([hold])
    assert ledger.lots["alice"][0].remaining == 40
    ledger.post(
        [TransferRequest(id="p", kind=TransferKind.POST_PENDING, pending_id="h", amount=25)]
    )
    assert ledger.lots["alice"][0].remaining == 75
    assert ledger.accounts["alice"].available == 75


def test_a_reversal_takes_back_the_lot_its_original_created():
    ledger = book(alice=0)
    ledger.post([earn("old", "alice", 10, expires_at=2_000), earn("purchase", "alice", 10)])
    reversal = TransferRequest(
        id="r", kind=TransferKind.REVERSAL, reverses_id="purchase", amount=10
    )
    assert ledger.post([reversal])[0].result == Result.OK
    by_id = {ledger.transfers[t].sequence: t for t in ("old", "purchase")}
    remaining = {
        by_id[lot.sequence]: lot.remaining for lot in ledger.lots["alice"] if lot.sequence in by_id
    }
    assert remaining == {"old": 10, "purchase": 0}
    assert ledger.transfers["r"].code == TransferCode.REVERSAL


def test_balances_that_would_overflow_are_refused():
    ledger = book(alice=0)
    assert ledger.post([earn("max", "alice", MAX_AMOUNT)])[0].result == Result.OK
    assert ledger.post([earn("one-more", "alice", 1)])[0].result == Result.OVERFLOW


def test_a_retry_is_compared_on_the_fields_the_client_chose():
    ledger = book(alice=0)
    ledger.post([earn("e", "alice", 5, metadata={"activity": "a-1"})])
    stored = ledger.transfers["e"]
    assert first_difference(stored, earn("e", "alice", 5, metadata={"activity": "a-1"})) == ""
    assert first_difference(stored, earn("e", "alice", 5)) == "metadata"
    assert first_difference(stored, earn("e", "bob", 5, metadata={"activity": "a-1"})) == (
        "credit_account_id"
    )


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (earn("", "alice", 1), "transfers[0].id"),
        (earn("x", "alice", 0), "transfers[0].amount"),
        (earn("x", "alice", -3), "transfers[0].amount"),
        (earn("x", "issuance", 1), "transfers[0].credit_account_id"),
        (earn("x", "alice", 1, code=TransferCode.EXPIRY), "transfers[0].code"),
        (earn("x", "alice", 1, linked=True), "transfers[0].linked"),
        (earn("x", "alice", 1, metadata={str(i): "" for i in range(17)}), "transfers[0].metadata"),
        (
            TransferRequest(id="v", kind=TransferKind.VOID_PENDING, pending_id="h", amount=3),
            "transfers[0].amount",
        ),
        (
            TransferRequest(id="r", kind=TransferKind.REVERSAL, amount=3),
            "transfers[0].reverses_transfer_id",
        ),
    ],
)
def test_malformed_transfers_name_the_field(request_, field):
    with pytest.raises(InvalidArgument) as raised:
        validate_batch([request_])
    assert field in {violation.field for violation in raised.value.violations}


def test_expiring_lots_require_a_floor_and_an_expiry_account():
    wallet = Account("w", "points", AccountKind.MEMBER_WALLET, expiring_lots=True)
    with pytest.raises(InvalidArgument) as raised:
        validate_account(wallet)
    fields = {violation.field for violation in raised.value.violations}
    assert fields == {"account.flags.expiring_lots", "account.expiry_account_id"}
    with pytest.raises(InvalidArgument):
        validate_account(Account("w", "gold-coins", AccountKind.MEMBER_WALLET))


def test_lot_order_puts_never_expiring_lots_last():
    lots = [Lot(3, "a", 1, None), Lot(2, "a", 1, 900), Lot(1, "a", 1, 100)]
    assert [lot.sequence for lot in sorted(lots, key=Lot.order_key)] == [1, 2, 3]
