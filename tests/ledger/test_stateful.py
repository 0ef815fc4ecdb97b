"""Random sequences of ledger operations, through a real server over a real SQLite
file or PostgreSQL schema, checked after every step against an independent
reference model."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
from pathlib import Path

import grpc
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from loyalty.ledger.v1 import ledger_service_pb2 as pb

from services.kit.clock import MICROS_PER_SECOND, ManualClock
from services.kit.proto_time import duration, timestamp
from tests.ledger.reference import MAX_INT64, Ledger, ModelTransfer, definition_of
from tests.support.ledger import (
    account,
    all_transfers,
    check_gapless,
    check_invariants,
    history,
    open_accounts,
    post,
    posted,
    snapshot,
    start_ledger,
)
from tests.support.postgres import fresh_database, stored_rows

COFFEE = "prize:coffee"
ACCOUNTS = {
    message.id: message
    for message in (
        account("iss", kind=pb.ACCOUNT_KIND_PROGRAM_ISSUANCE),
        account("brk", kind=pb.ACCOUNT_KIND_BREAKAGE),
        account("w1", expiry="brk"),
        account("w2", expiry="brk"),
        # Expired points of w3 land in w1, an account with lots of its own.
        account("w3", expiry="w1"),
        account("bud", kind=pb.ACCOUNT_KIND_CAMPAIGN_BUDGET, no_overdraft=True),
        account("cap", kind=pb.ACCOUNT_KIND_ADJUSTMENT, no_overcredit=True),
        # Never opens: its expiry account is missing or cannot take credits.
        account("bad", expiry="cap"),
        account("piss", COFFEE, pb.ACCOUNT_KIND_PROGRAM_ISSUANCE),
        account("pool", COFFEE, pb.ACCOUNT_KIND_GAME_PRIZE_POOL, no_overdraft=True),
    )
}
NAMES = sorted(ACCOUNTS)
# The flows a program has (earn, fund, spend, pay back, stock prizes), drawn more often
# than a random pair so that most transfers can commit.
FLOWS = (
    ("iss", "w1"),
    ("iss", "w2"),
    ("iss", "w3"),
    ("iss", "bud"),
    ("bud", "w1"),
    ("bud", "w3"),
    ("w1", "w2"),
    ("w2", "w3"),
    ("w3", "w1"),
    ("w1", "iss"),
    ("w2", "brk"),
    ("cap", "iss"),
    ("iss", "cap"),
    ("piss", "pool"),
    ("pool", "piss"),
)
CODES = (pb.TRANSFER_CODE_EARN, pb.TRANSFER_CODE_REDEEM, pb.TRANSFER_CODE_FUNDING)
LIVES = (None, 10, 60, 3600)  # seconds until a credit's lot expires
TIMEOUTS = (0, 10, 100)  # seconds until a hold times out (0: never)
SHAPES = ("posted", "posted", "pending", "post", "void", "reverse", "retry")
ACCEPTED = (pb.TRANSFER_RESULT_CODE_OK, pb.TRANSFER_RESULT_CODE_EXISTS)
NO_BALANCE_CHANGE = (
    pb.TRANSFER_KIND_PENDING,
    pb.TRANSFER_KIND_VOID_PENDING,
    pb.TRANSFER_KIND_EXPIRE_PENDING,
)


def _fields(transfer: pb.Transfer) -> tuple:
    return (
        transfer.sequence,
        transfer.id,
        transfer.kind,
        transfer.code,
        transfer.debit_account_id,
        transfer.credit_account_id,
        transfer.amount,
        transfer.debit_balance_after,
        transfer.credit_balance_after,
        transfer.pending_id,
        transfer.reverses_transfer_id,
        transfer.create_time.ToMicroseconds(),
    )


def _model_fields(made: ModelTransfer) -> tuple:
    return (
        made.sequence,
        made.id,
        made.kind,
        made.code,
        made.debit,
        made.credit,
        made.amount,
        made.debit_balance_after,
        made.credit_balance_after,
        made.pending_id,
        made.reverses_id,
        made.created_at,
    )


def _entry_fields(account_id: str, made: ModelTransfer) -> tuple:
    change = 0 if made.kind in NO_BALANCE_CHANGE else made.amount
    if account_id == made.debit:
        return (*_model_fields(made), made.debit_balance_after, -change)
    return (*_model_fields(made), made.credit_balance_after, change)


class LedgerMachine(RuleBasedStateMachine):
    engine = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        # grpc.aio creates calls against the current loop, outside run_until_complete too.
        asyncio.set_event_loop(self.loop)
        self.directory = Path(tempfile.mkdtemp(prefix="ledger-stateful-"))
        self.db = fresh_database(self.directory, self.engine, "ledger")
        self.clock = ManualClock()
        self.host, self.channel, self.stub = self.run(start_ledger(self.db, self.clock))
        self.model = Ledger()
        self.ids = itertools.count(1)
        self.committed: dict[str, tuple[pb.Transfer, pb.Transfer]] = {}  # id -> request, result
        self.seen: dict = {}

    def run(self, awaitable):
        return self.loop.run_until_complete(awaitable)

    def teardown(self) -> None:
        self.run(self.channel.close())
        self.run(self.host.stop(None))
        self.loop.close()
        asyncio.set_event_loop(None)
        shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def now(self) -> int:
        return self.clock.now_us()

    def assert_unchanged(self) -> None:
        """A refused request changed nothing a client can see."""
        assert self.run(snapshot(self.stub, sorted(self.seen))) == self.seen

    # -- accounts

    def _open(self, name: str, changed: bool) -> None:
        message = pb.Account()
        message.CopyFrom(ACCOUNTS[name])
        if changed:
            message.kind = pb.ACCOUNT_KIND_ADJUSTMENT
        expected, created = self.model.open(message, self.now)
        try:
            response = self.run(self.stub.OpenAccount(pb.OpenAccountRequest(account=message)))
        except grpc.aio.AioRpcError as error:
            assert error.code().name == expected, error
            self.assert_unchanged()
            return
        assert expected == "", expected
        assert response.created == created

    @initialize()
    def open_all(self) -> None:
        """Every account, expiry accounts first (the rules below open and close more)."""
        for name in ACCOUNTS:
            self._open(name, changed=False)

    @rule(name=st.sampled_from(NAMES), variant=st.integers(0, 29))
    def open_or_close(self, name: str, variant: int) -> None:
        """Mostly opens (again), sometimes with other fields, rarely closes."""
        if variant == 0:
            expected = self.model.close(name)
            try:
                self.run(self.stub.CloseAccount(pb.CloseAccountRequest(account_id=name)))
            except grpc.aio.AioRpcError as error:
                assert error.code().name == expected, error
                self.assert_unchanged()
                return
            assert expected == ""
        else:
            self._open(name, changed=variant == 1)

    # -- transfers

    def _amount(self, data, high: int = 60) -> int:
        return MAX_INT64 if data.draw(st.integers(0, 39)) == 0 else data.draw(st.integers(1, high))

    def _reference(self, data, candidates: list[str]) -> str:
        """Mostly an id the model knows, sometimes one nobody used."""
        if candidates and data.draw(st.integers(0, 5)):
            return data.draw(st.sampled_from(sorted(candidates)))
        return f"nobody-{data.draw(st.integers(1, 3))}"

    def _transfer(self, data, used: set[str]) -> pb.Transfer:
        shape = data.draw(st.sampled_from(SHAPES))
        if shape == "retry":
            retry = self._retry(data, used)
            if retry is not None:
                return retry
            shape = "posted"
        message = pb.Transfer(id=f"t{next(self.ids)}")
        if shape in ("posted", "pending"):
            debit, credit = data.draw(st.sampled_from(FLOWS))
            if not data.draw(st.integers(0, 7)):
                debit = data.draw(st.sampled_from(NAMES))
                credit = data.draw(st.sampled_from([n for n in NAMES if n != debit]))
            message.debit_account_id, message.credit_account_id = debit, credit
            message.amount = self._amount(data)
            message.code = data.draw(st.sampled_from(CODES))
            life = data.draw(st.sampled_from(LIVES))
            if life is not None:
                message.expire_time.CopyFrom(timestamp(self.now + life * MICROS_PER_SECOND))
            message.kind = pb.TRANSFER_KIND_POSTED
            if shape == "pending":
                message.kind = pb.TRANSFER_KIND_PENDING
                timeout = data.draw(st.sampled_from(TIMEOUTS))
                if timeout:
                    message.timeout.CopyFrom(duration(timeout * MICROS_PER_SECOND))
        elif shape in ("post", "void"):
            message.pending_id = self._reference(data, list(self.model.holds))
            if shape == "post":
                message.kind = pb.TRANSFER_KIND_POST_PENDING
                message.amount = data.draw(st.integers(0, 60))
            else:
                message.kind = pb.TRANSFER_KIND_VOID_PENDING
        else:
            message.kind = pb.TRANSFER_KIND_REVERSAL
            message.reverses_transfer_id = self._reference(data, list(self.model.transfers))
            message.amount = self._amount(data)
        return message

    def _retry(self, data, used: set[str]) -> pb.Transfer | None:
        """A committed transfer sent again: as it was, or with another amount."""
        choices = sorted(set(self.committed) - used)
        if not choices:
            return None
        message = pb.Transfer()
        message.CopyFrom(self.committed[data.draw(st.sampled_from(choices))][0])
        message.linked = False
        if message.kind != pb.TRANSFER_KIND_VOID_PENDING and data.draw(st.booleans()):
            message.amount = message.amount % MAX_INT64 + 1
        return message

    @rule(data=st.data(), groups=st.lists(st.integers(1, 3), min_size=1, max_size=3))
    def post_batch(self, data, groups: list[int]) -> None:
        """Single transfers and linked chains in one batch."""
        batch: list[pb.Transfer] = []
        used: set[str] = set()
        for size in groups:
            for position in range(size):
                message = self._transfer(data, used)
                used.add(message.id)
                message.linked = position < size - 1
                batch.append(message)
        self._post(batch)

    def _post(self, batch: list[pb.Transfer]) -> None:
        before = self.model.sequence
        expected = self.model.post(batch, self.now)
        response = self.run(self.stub.PostTransfers(pb.PostTransfersRequest(transfers=batch)))
        results = list(response.results)
        assert [(r.code, r.field) for r in results] == expected, batch
        for request, result in zip(batch, results, strict=True):
            assert result.id == request.id
            event(pb.TransferResultCode.Name(result.code))
            if result.code == pb.TRANSFER_RESULT_CODE_OK:
                assert _fields(result.transfer) == _model_fields(self.model.transfers[request.id])
                self.committed[request.id] = (request, result.transfer)
            elif result.code == pb.TRANSFER_RESULT_CODE_EXISTS:
                assert result.transfer == self.committed[request.id][1]
            else:
                assert not result.HasField("transfer")
        if self.model.sequence == before:
            self.assert_unchanged()

    # -- time

    @rule(seconds=st.sampled_from([0, 1, 9, 30, 61, 3600, 86_400]), sweep=st.booleans())
    def advance(self, seconds: int, sweep: bool) -> None:
        """Time passes (by the injected clock); the sweep may run or wait for a touch."""
        self.clock.advance(seconds)
        if sweep:
            expected = self.model.sweep(self.now)
            report = self.run(self.stub.SweepExpired(pb.SweepExpiredRequest()))
            assert (report.lots_expired, report.amount_expired, report.pending_expired) == expected
            event(f"sweep: lots {bool(report.lots_expired)}, holds {bool(report.pending_expired)}")

    # -- after every step

    @invariant()
    def matches_the_model(self) -> None:
        state = self.run(snapshot(self.stub, sorted(self.model.accounts)))
        check_invariants([message for message, _ in state.values()])
        by_account: dict[str, list[ModelTransfer]] = {name: [] for name in self.model.accounts}
        for made in sorted(self.model.transfers.values(), key=lambda t: t.sequence):
            by_account[made.debit].append(made)
            by_account[made.credit].append(made)
        for name, (message, entries) in state.items():
            self._check_account(self.model.accounts[name], message)
            assert [(*_fields(e.transfer), e.balance_after, e.balance_change) for e in entries] == [
                _entry_fields(name, made) for made in by_account[name]
            ]
            earlier = self.seen.get(name, (None, []))[1]
            assert entries[: len(earlier)] == earlier, "history is append-only"
        check_gapless(all_transfers(state))
        assert len(all_transfers(state)) == self.model.sequence
        self._check_lots(state)
        self.seen = state

    def _check_account(self, expected, message: pb.Account) -> None:
        balance = message.balance
        assert definition_of(message) == expected.definition()
        assert message.HasField("close_time") == expected.closed
        assert (
            balance.debits_pending,
            balance.debits_posted,
            balance.credits_pending,
            balance.credits_posted,
        ) == (
            expected.debits_pending,
            expected.debits_posted,
            expected.credits_pending,
            expected.credits_posted,
        )
        window = self.now + 30 * 86_400 * MICROS_PER_SECOND
        soon: dict[int, int] = {}
        for lot in self.model.open_lots(expected.id):
            if lot.expires_at is not None and self.now < lot.expires_at <= window:
                soon[lot.expires_at] = soon.get(lot.expires_at, 0) + lot.remaining
        reported = [(e.expire_time.ToMicroseconds(), e.amount) for e in balance.expiring_soon]
        assert reported == sorted(soon.items())

    def _check_lots(self, state) -> None:
        """The stored lots are the model's, and an account's open lots add up to
        what it can spend."""
        rows = stored_rows(self.db, "SELECT sequence, account_id, remaining, expires_at FROM lots")
        stored = {row[0]: row[1:] for row in rows}
        assert stored == {
            lot.sequence: (lot.account_id, lot.remaining, lot.expires_at)
            for lot in self.model.lots.values()
        }
        for name, (message, _) in state.items():
            if message.flags.expiring_lots:
                open_total = sum(
                    remaining for account_id, remaining, _ in stored.values() if account_id == name
                )
                assert open_total == message.balance.available, name


LedgerMachine.TestCase.settings = settings(
    max_examples=20,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestLedgerMachine = LedgerMachine.TestCase


class PgLedgerMachine(LedgerMachine):
    engine = "postgres"


# Fewer examples on PostgreSQL: the same rules, a round trip per statement.
PgLedgerMachine.TestCase.settings = settings(LedgerMachine.TestCase.settings, max_examples=8)
TestPgLedgerMachine = PgLedgerMachine.TestCase


async def test_expired_points_that_land_in_an_account_with_lots_form_a_lot(ledger) -> None:
    """Found by the machine above: the sweep credited w3's expired points to w1 without
    a lot, so w1's lots no longer added up to its balance and a reversal of that
    expiry took points from w1's other lots, which then never expired."""
    await open_accounts(ledger.stub, *(ACCOUNTS[name] for name in ("iss", "brk", "w1", "w3")))
    soon = timestamp(ledger.clock.now_us() + 10 * MICROS_PER_SECOND)
    later = timestamp(ledger.clock.now_us() + 100 * MICROS_PER_SECOND)
    await post(
        ledger.stub,
        posted("earn-w3", "iss", "w3", 10, expire_time=soon),
        posted("earn-w1", "iss", "w1", 5, expire_time=later),
    )
    ledger.clock.advance(10)
    await ledger.stub.SweepExpired(pb.SweepExpiredRequest())
    expiry = (await history(ledger.stub, "w3"))[-1].transfer
    assert (expiry.code, expiry.credit_account_id, expiry.amount) == (
        pb.TRANSFER_CODE_EXPIRY,
        "w1",
        10,
    )
    [undo] = await post(
        ledger.stub,
        pb.Transfer(
            id="undo-expiry",
            kind=pb.TRANSFER_KIND_REVERSAL,
            reverses_transfer_id=expiry.id,
            amount=10,
        ),
    )
    assert undo.code == pb.TRANSFER_RESULT_CODE_OK
    ledger.clock.advance(90)
    report = await ledger.stub.SweepExpired(pb.SweepExpiredRequest())
    assert (report.lots_expired, report.amount_expired) == (1, 5)
    w1 = (await ledger.stub.GetAccount(pb.GetAccountRequest(account_id="w1"))).account
    assert w1.balance.balance == 0
