"""Holds, their settlement and reversals on an in-memory Book: each refusal's exact
result and field, the amounts every account and lot holds after each step."""

from __future__ import annotations

import pytest

from services.ledger.domain import Result, TransferCode, TransferKind, TransferRequest
from tests.ledger.test_domain import book, earn, spend


def hold(transfer_id: str, member: str, amount: int, **fields) -> TransferRequest:
    return spend(transfer_id, member, amount, kind=TransferKind.PENDING, **fields)


def post(transfer_id: str, pending_id: str, amount: int = 0, **fields) -> TransferRequest:
    return TransferRequest(
        id=transfer_id,
        kind=TransferKind.POST_PENDING,
        pending_id=pending_id,
        amount=amount,
        **fields,
    )


def void(transfer_id: str, pending_id: str, **fields) -> TransferRequest:
    return TransferRequest(
        id=transfer_id, kind=TransferKind.VOID_PENDING, pending_id=pending_id, **fields
    )


def reverse(transfer_id: str, original_id: str, amount: int, **fields) -> TransferRequest:
    return TransferRequest(
        id=transfer_id,
        kind=TransferKind.REVERSAL,
        reverses_id=original_id,
        amount=amount,
        **fields,
    )


def refusal(ledger, request: TransferRequest) -> tuple[Result, str]:
    (outcome,) = ledger.post([request])
    return outcome.result, outcome.field


def lots_by_id(ledger, member: str, *transfer_ids: str) -> dict[str, int]:
    sequences = {ledger.transfers[t].sequence: t for t in transfer_ids}
    return {
        sequences[lot.sequence]: lot.remaining
        for lot in ledger.lots[member]
        if lot.sequence in sequences
    }


def two_lot_wallet():
    """alice: 30 points expiring soon, 50 expiring later."""
    ledger = book(alice=0)
    ledger.post(
        [earn("soon", "alice", 30, expires_at=5_000), earn("late", "alice", 50, expires_at=9_000)]
    )
    return ledger


def test_a_hold_reserves_pending_amounts_on_both_sides_and_takes_lots_soonest_first():
    ledger = two_lot_wallet()
    assert refusal(ledger, hold("h", "alice", 60)) == (Result.OK, "")
    alice, issuance = ledger.accounts["alice"], ledger.accounts["issuance"]
    assert (alice.debits_pending, alice.balance, alice.available) == (60, 80, 20)
    assert issuance.credits_pending == 60
    assert lots_by_id(ledger, "alice", "soon", "late") == {"soon": 0, "late": 20}
    assert ledger.holds["h"].consumed == [
        [ledger.transfers["soon"].sequence, 30],
        [ledger.transfers["late"].sequence, 30],
    ]


def test_a_void_gives_back_every_lot_exactly_and_clears_the_pending_amounts():
    ledger = two_lot_wallet()
    ledger.post([hold("h", "alice", 60)])
    assert refusal(ledger, void("v", "h")) == (Result.OK, "")
    alice, issuance = ledger.accounts["alice"], ledger.accounts["issuance"]
    assert (alice.debits_pending, alice.available) == (0, 80)
    assert issuance.credits_pending == 0
    assert lots_by_id(ledger, "alice", "soon", "late") == {"soon": 30, "late": 50}
    voided = ledger.transfers["v"]
    assert (voided.kind, voided.amount, voided.code) == (
        TransferKind.VOID_PENDING,
        60,
        TransferCode.REDEEM,
    )
    ledger.post([hold("h2", "alice", 5)])
    ledger.post([void("v2", "h2", code=TransferCode.ADJUSTMENT)])
    assert ledger.transfers["v2"].code == TransferCode.ADJUSTMENT


def test_a_partial_post_returns_the_rest_to_the_last_lots_taken_first():
    ledger = two_lot_wallet()
    ledger.post([hold("h", "alice", 60)])
    assert refusal(ledger, post("p", "h", 40)) == (Result.OK, "")
    # 60 were taken as soon 30 + late 30; the 20 not posted go back to `late`.
    assert lots_by_id(ledger, "alice", "soon", "late") == {"soon": 0, "late": 40}
    alice, issuance = ledger.accounts["alice"], ledger.accounts["issuance"]
    assert (alice.debits_pending, alice.debits_posted, alice.available) == (0, 40, 40)
    assert (issuance.credits_pending, issuance.credits_posted) == (0, 40)


def test_a_return_larger_than_the_last_lot_taken_spills_into_the_one_before():
    ledger = two_lot_wallet()
    ledger.post([hold("h", "alice", 60)])
    ledger.post([post("p", "h", 10)])
    assert lots_by_id(ledger, "alice", "soon", "late") == {"soon": 20, "late": 50}


def test_a_post_defaults_to_the_whole_hold_and_its_code_and_may_name_its_own():
    ledger = two_lot_wallet()
    ledger.post([hold("h1", "alice", 10), hold("h2", "alice", 10)])
    ledger.post([post("p1", "h1"), post("p2", "h2", code=TransferCode.ADJUSTMENT)])
    assert (ledger.transfers["p1"].amount, ledger.transfers["p1"].code) == (10, TransferCode.REDEEM)
    assert ledger.transfers["p2"].code == TransferCode.ADJUSTMENT
    assert ledger.transfers["p1"].pending_id == "h1"


def test_a_post_of_the_whole_hold_is_allowed_and_one_point_more_is_refused():
    ledger = two_lot_wallet()
    ledger.post([hold("h", "alice", 25)])
    assert refusal(ledger, post("too-much", "h", 26)) == (Result.AMOUNT_EXCEEDS_PENDING, "amount")
    assert ledger.accounts["alice"].debits_pending == 25
    assert refusal(ledger, post("exact", "h", 25)) == (Result.OK, "")


@pytest.mark.parametrize(
    ("settle_first", "then", "expected"),
    [
        (post("first", "h"), post("again", "h"), Result.PENDING_ALREADY_POSTED),
        (post("first", "h"), void("again", "h"), Result.PENDING_ALREADY_POSTED),
        (void("first", "h"), void("again", "h"), Result.PENDING_ALREADY_VOIDED),
        (void("first", "h"), post("again", "h"), Result.PENDING_ALREADY_VOIDED),
    ],
)
def test_a_hold_settles_once(settle_first, then, expected):
    ledger = two_lot_wallet()
    ledger.post([hold("h", "alice", 10)])
    ledger.post([settle_first])
    before = (ledger.accounts["alice"].balance, ledger.accounts["alice"].available)
    assert refusal(ledger, then) == (expected, "pending_id")
    assert (ledger.accounts["alice"].balance, ledger.accounts["alice"].available) == before


def test_only_a_pending_transfer_can_be_settled():
    ledger = two_lot_wallet()
    assert refusal(ledger, post("p", "nothing")) == (Result.PENDING_NOT_FOUND, "pending_id")
    assert refusal(ledger, void("v", "soon")) == (Result.PENDING_NOT_FOUND, "pending_id")


def test_a_hold_expires_at_its_deadline_not_a_microsecond_before():
    ledger = two_lot_wallet()
    ledger.post(
        [hold("early", "alice", 10, timeout_us=500), hold("due", "alice", 10, timeout_us=500)]
    )
    assert ledger.holds["due"].deadline == 1_500
    ledger.now = 1_499
    assert refusal(ledger, post("p", "early")) == (Result.OK, "")
    ledger.now = 1_500
    assert refusal(ledger, post("p-due", "due")) == (Result.PENDING_EXPIRED, "pending_id")
    assert refusal(ledger, void("v-due", "due")) == (Result.PENDING_EXPIRED, "pending_id")


def test_a_hold_without_a_timeout_never_expires():
    ledger = two_lot_wallet()
    ledger.post([hold("h", "alice", 10)])
    assert ledger.holds["h"].deadline is None
    ledger.now = 10**15
    assert refusal(ledger, post("p", "h")) == (Result.OK, "")


def test_partial_reversals_add_up_to_the_original_and_no_further():
    ledger = book(alice=0)
    ledger.post([earn("purchase", "alice", 10)])
    assert refusal(ledger, reverse("r1", "purchase", 4)) == (Result.OK, "")
    assert refusal(ledger, reverse("r2", "purchase", 6)) == (Result.OK, "")
    assert refusal(ledger, reverse("r3", "purchase", 1)) == (
        Result.EXCEEDS_REVERSIBLE_AMOUNT,
        "amount",
    )
    assert ledger.accounts["alice"].balance == 0
    assert ledger.reversed_amounts["purchase"] == 10


def test_a_reversal_larger_than_what_is_left_is_refused_before_any_is_taken():
    ledger = book(alice=0)
    ledger.post([earn("purchase", "alice", 10)])
    ledger.post([reverse("r1", "purchase", 7)])
    assert refusal(ledger, reverse("r2", "purchase", 4)) == (
        Result.EXCEEDS_REVERSIBLE_AMOUNT,
        "amount",
    )
    assert (ledger.accounts["alice"].balance, ledger.reversed_amounts["purchase"]) == (3, 7)
    assert refusal(ledger, reverse("r3", "purchase", 3)) == (Result.OK, "")


def test_a_reversal_the_wallet_cannot_cover_is_refused_and_counts_nothing():
    ledger = book(alice=0)
    ledger.post([earn("purchase", "alice", 10), spend("spent", "alice", 8)])
    assert refusal(ledger, reverse("r", "purchase", 5)) == (Result.INSUFFICIENT_BALANCE, "")
    assert ledger.reversed_amounts.get("purchase", 0) == 0
    assert refusal(ledger, reverse("r-fits", "purchase", 2)) == (Result.OK, "")


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("missing", Result.REVERSED_TRANSFER_NOT_FOUND),
        ("h", Result.REVERSED_TRANSFER_NOT_REVERSIBLE),
        ("v", Result.REVERSED_TRANSFER_NOT_REVERSIBLE),
    ],
)
def test_only_transfers_that_moved_posted_balances_can_be_reversed(original, expected):
    ledger = two_lot_wallet()
    ledger.post([hold("h", "alice", 10)])
    ledger.post([void("v", "h")])
    assert refusal(ledger, reverse("r", original, 1)) == (expected, "reverses_transfer_id")


def test_a_posted_hold_can_be_reversed_and_the_points_come_back_as_a_new_lot():
    ledger = two_lot_wallet()
    ledger.post([hold("h", "alice", 30), post("p", "h")])
    assert refusal(ledger, reverse("refund", "p", 30, expires_at=7_000)) == (Result.OK, "")
    refund = ledger.transfers["refund"]
    assert (refund.debit_account_id, refund.credit_account_id, refund.code) == (
        "issuance",
        "alice",
        TransferCode.REVERSAL,
    )
    assert refund.reverses_id == "p"
    assert ledger.accounts["alice"].balance == 80
    (new_lot,) = [lot for lot in ledger.lots["alice"] if lot.sequence == refund.sequence]
    assert (new_lot.remaining, new_lot.expires_at) == (30, 7_000)


def test_a_reversal_takes_the_lot_of_its_original_before_sooner_expiring_ones():
    ledger = two_lot_wallet()
    assert refusal(ledger, reverse("r", "late", 35)) == (Result.OK, "")
    assert lots_by_id(ledger, "alice", "soon", "late") == {"soon": 30, "late": 15}
    assert refusal(ledger, reverse("r2", "late", 15, code=TransferCode.ADJUSTMENT)) == (
        Result.OK,
        "",
    )
    assert ledger.transfers["r2"].code == TransferCode.ADJUSTMENT
