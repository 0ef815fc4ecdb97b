"""An in-memory reference model of the ledger, written from the contract alone.

It does not import the ledger's domain. It keeps what the contract makes
observable (accounts, balances, transfers with their sequences, holds, lots)
so a test can predict every result code and every balance, and compare.
Requests are the contract's own `pb.Transfer` messages.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from loyalty.ledger.v1 import ledger_service_pb2 as pb

MAX_INT64 = 2**63 - 1
R = pb.TransferResultCode
K = pb.TransferKind


class Rejected(Exception):
    """A transfer the model refuses, with the result code and field the ledger must give."""

    def __init__(self, code: int, field: str = "") -> None:
        super().__init__(code, field)
        self.code = code
        self.field = field


@dataclass
class ModelAccount:
    id: str
    unit: str
    kind: int
    no_overdraft: bool
    no_overcredit: bool
    lots: bool
    expiry_account_id: str
    created_at: int
    closed: bool = False
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    @property
    def balance(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        return self.balance - self.debits_pending

    def definition(self) -> tuple:
        return (
            self.unit,
            self.kind,
            self.no_overdraft,
            self.no_overcredit,
            self.lots,
            self.expiry_account_id,
        )


@dataclass
class ModelTransfer:
    sequence: int
    id: str
    kind: int
    code: int
    debit: str
    credit: str
    amount: int
    created_at: int
    debit_balance_after: int
    credit_balance_after: int
    pending_id: str = ""
    reverses_id: str = ""
    timeout_us: int = 0
    expires_at: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class ModelLot:
    sequence: int
    account_id: str
    remaining: int
    expires_at: int | None

    def order(self) -> tuple:
        return (self.expires_at is None, self.expires_at or 0, self.sequence)


@dataclass
class ModelHold:
    state: int  # a pb.PendingState
    deadline: int | None
    taken: list[tuple[int, int]]  # (lot sequence, amount), in the order taken


def definition_of(message: pb.Account) -> tuple:
    return (
        message.unit,
        message.kind,
        message.flags.debits_must_not_exceed_credits,
        message.flags.credits_must_not_exceed_debits,
        message.flags.expiring_lots,
        message.expiry_account_id,
    )


def _micros(message, name: str) -> int | None:
    return getattr(message, name).ToMicroseconds() if message.HasField(name) else None


@dataclass
class Ledger:
    """The whole observable state; `post` and `sweep` follow the contract's rules."""

    accounts: dict[str, ModelAccount] = field(default_factory=dict)
    transfers: dict[str, ModelTransfer] = field(default_factory=dict)
    holds: dict[str, ModelHold] = field(default_factory=dict)
    lots: dict[int, ModelLot] = field(default_factory=dict)
    reversed: dict[str, int] = field(default_factory=dict)
    sequence: int = 0

    # -- accounts: each returns a gRPC status name, or "" when it succeeded

    def open(self, message: pb.Account, now: int) -> tuple[str, bool]:
        existing = self.accounts.get(message.id)
        if existing is not None:
            if existing.definition() != definition_of(message):
                return "ALREADY_EXISTS", False
            return "", False
        if message.flags.expiring_lots:
            target = self.accounts.get(message.expiry_account_id)
            if target is None or target.unit != message.unit or target.no_overcredit:
                return "INVALID_ARGUMENT", False
        self.accounts[message.id] = ModelAccount(
            message.id, *definition_of(message), created_at=now
        )
        return "", True

    def close(self, account_id: str) -> str:
        if account_id not in self.accounts:
            return "NOT_FOUND"
        self.accounts[account_id].closed = True
        return ""

    # -- transfers

    def post(self, requests: list[pb.Transfer], now: int) -> list[tuple[int, str]]:
        """(result code, field) per request, applying what commits."""
        self._settle_touched(requests, now)
        results: list[tuple[int, str]] = []
        chain: list[pb.Transfer] = []
        for request in requests:
            chain.append(request)
            if not request.linked:
                results.extend(self._post_chain(chain, now))
                chain = []
        return results

    def _post_chain(self, chain: list[pb.Transfer], now: int) -> list[tuple[int, str]]:
        saved = copy.deepcopy(self.__dict__)
        results: list[tuple[int, str]] = []
        for request in chain:
            try:
                results.append((self._post_one(request, now), ""))
            except Rejected as failure:
                self.__dict__.update(saved)
                failed = len(results)
                return [
                    (failure.code, failure.field)
                    if position == failed
                    else (R.TRANSFER_RESULT_CODE_LINKED_TRANSFER_FAILED, "")
                    for position in range(len(chain))
                ]
        return results

    def _post_one(self, request: pb.Transfer, now: int) -> int:
        existing = self.transfers.get(request.id)
        if existing is not None:
            difference = _first_difference(existing, request)
            if difference:
                raise Rejected(R.TRANSFER_RESULT_CODE_EXISTS_WITH_DIFFERENT_FIELDS, difference)
            return R.TRANSFER_RESULT_CODE_EXISTS
        if request.kind in (K.TRANSFER_KIND_POSTED, K.TRANSFER_KIND_PENDING):
            self._direct(request, now)
        elif request.kind == K.TRANSFER_KIND_REVERSAL:
            self._reversal(request, now)
        else:
            self._finish_hold(request, now)
        return R.TRANSFER_RESULT_CODE_OK

    def _room(self, debit: ModelAccount, credit: ModelAccount, amount: int) -> None:
        if debit.no_overdraft and debit.available < amount:
            raise Rejected(R.TRANSFER_RESULT_CODE_INSUFFICIENT_BALANCE)
        headroom = credit.debits_posted - credit.credits_posted - credit.credits_pending
        if credit.no_overcredit and headroom < amount:
            raise Rejected(R.TRANSFER_RESULT_CODE_CREDITS_EXCEED_DEBITS)
        if (
            debit.debits_posted + debit.debits_pending + amount > MAX_INT64
            or credit.credits_posted + credit.credits_pending + amount > MAX_INT64
        ):
            raise Rejected(R.TRANSFER_RESULT_CODE_OVERFLOW)

    def _direct(self, request: pb.Transfer, now: int) -> None:
        debit, credit = self._accounts(request.debit_account_id, request.credit_account_id)
        amount = request.amount
        self._room(debit, credit, amount)
        taken = self._take(debit, amount)
        expires = _micros(request, "expire_time")
        if request.kind == K.TRANSFER_KIND_PENDING:
            debit.debits_pending += amount
            credit.credits_pending += amount
            timeout = _micros(request, "timeout") or 0
            self._record(request.id, request, debit, credit, amount, now, timeout_us=timeout)
            self.holds[request.id] = ModelHold(
                pb.PENDING_STATE_PENDING, now + timeout if timeout else None, taken
            )
        else:
            debit.debits_posted += amount
            credit.credits_posted += amount
            made = self._record(request.id, request, debit, credit, amount, now)
            self._add_lot(credit, made.sequence, amount, expires)

    def _accounts(self, debit_id: str, credit_id: str) -> tuple[ModelAccount, ModelAccount]:
        debit, credit = self.accounts.get(debit_id), self.accounts.get(credit_id)
        if debit is None:
            raise Rejected(R.TRANSFER_RESULT_CODE_ACCOUNT_NOT_FOUND, "debit_account_id")
        if credit is None:
            raise Rejected(R.TRANSFER_RESULT_CODE_ACCOUNT_NOT_FOUND, "credit_account_id")
        if debit.closed:
            raise Rejected(R.TRANSFER_RESULT_CODE_ACCOUNT_CLOSED, "debit_account_id")
        if credit.closed:
            raise Rejected(R.TRANSFER_RESULT_CODE_ACCOUNT_CLOSED, "credit_account_id")
        if debit.unit != credit.unit:
            raise Rejected(R.TRANSFER_RESULT_CODE_UNIT_MISMATCH)
        return debit, credit

    def _finish_hold(self, request: pb.Transfer, now: int) -> None:
        hold = self.holds.get(request.pending_id)
        original = self.transfers.get(request.pending_id)
        if hold is None or original is None:
            raise Rejected(R.TRANSFER_RESULT_CODE_PENDING_NOT_FOUND, "pending_id")
        if hold.state == pb.PENDING_STATE_PENDING and hold.deadline and hold.deadline <= now:
            raise Rejected(R.TRANSFER_RESULT_CODE_PENDING_EXPIRED, "pending_id")
        ended = {
            pb.PENDING_STATE_POSTED: R.TRANSFER_RESULT_CODE_PENDING_ALREADY_POSTED,
            pb.PENDING_STATE_VOIDED: R.TRANSFER_RESULT_CODE_PENDING_ALREADY_VOIDED,
            pb.PENDING_STATE_EXPIRED: R.TRANSFER_RESULT_CODE_PENDING_EXPIRED,
        }
        if hold.state in ended:
            raise Rejected(ended[hold.state], "pending_id")
        posting = request.kind == K.TRANSFER_KIND_POST_PENDING
        amount = (request.amount or original.amount) if posting else original.amount
        if amount > original.amount:
            raise Rejected(R.TRANSFER_RESULT_CODE_AMOUNT_EXCEEDS_PENDING, "amount")
        state = pb.PENDING_STATE_POSTED if posting else pb.PENDING_STATE_VOIDED
        debit, credit = self._release(hold, original, amount if posting else 0, state)
        if posting:
            debit.debits_posted += amount
            credit.credits_posted += amount
        made = self._record(
            request.id,
            request,
            debit,
            credit,
            amount,
            now,
            code=request.code or original.code,
            pending_id=original.id,
        )
        if posting:
            self._add_lot(credit, made.sequence, amount, original.expires_at)

    def _reversal(self, request: pb.Transfer, now: int) -> None:
        original = self.transfers.get(request.reverses_transfer_id)
        if original is None:
            raise Rejected(
                R.TRANSFER_RESULT_CODE_REVERSED_TRANSFER_NOT_FOUND, "reverses_transfer_id"
            )
        if original.kind not in (K.TRANSFER_KIND_POSTED, K.TRANSFER_KIND_POST_PENDING):
            raise Rejected(
                R.TRANSFER_RESULT_CODE_REVERSED_TRANSFER_NOT_REVERSIBLE, "reverses_transfer_id"
            )
        already = self.reversed.get(original.id, 0)
        if request.amount > original.amount - already:
            raise Rejected(R.TRANSFER_RESULT_CODE_EXCEEDS_REVERSIBLE_AMOUNT, "amount")
        debit, credit = self._accounts(original.credit, original.debit)
        self._room(debit, credit, request.amount)
        self._take(debit, request.amount, prefer=original.sequence)
        debit.debits_posted += request.amount
        credit.credits_posted += request.amount
        self.reversed[original.id] = already + request.amount
        expires = _micros(request, "expire_time")
        made = self._record(
            request.id,
            request,
            debit,
            credit,
            request.amount,
            now,
            code=request.code or pb.TRANSFER_CODE_REVERSAL,
            reverses_id=original.id,
        )
        self._add_lot(credit, made.sequence, request.amount, expires)

    def _record(
        self,
        transfer_id: str,
        request: pb.Transfer | None,
        debit: ModelAccount,
        credit: ModelAccount,
        amount: int,
        now: int,
        **fields,
    ) -> ModelTransfer:
        self.sequence += 1
        if request is not None:
            fields.setdefault("kind", request.kind)
            fields.setdefault("code", request.code)
            fields.setdefault("metadata", dict(request.metadata))
            fields.setdefault("expires_at", _micros(request, "expire_time"))
        made = ModelTransfer(
            sequence=self.sequence,
            id=transfer_id,
            debit=debit.id,
            credit=credit.id,
            amount=amount,
            created_at=now,
            debit_balance_after=debit.balance,
            credit_balance_after=credit.balance,
            **fields,
        )
        self.transfers[transfer_id] = made
        return made

    # -- holds and lots

    def _release(
        self, hold: ModelHold, original: ModelTransfer, keep: int, state: int
    ) -> tuple[ModelAccount, ModelAccount]:
        debit, credit = self.accounts[original.debit], self.accounts[original.credit]
        debit.debits_pending -= original.amount
        credit.credits_pending -= original.amount
        back = original.amount - keep
        for sequence, taken in reversed(hold.taken):
            give = min(taken, back)
            self.lots[sequence].remaining += give
            back -= give
        hold.state = state
        return debit, credit

    def _add_lot(
        self, account: ModelAccount, sequence: int, amount: int, expires: int | None
    ) -> None:
        if account.lots:
            self.lots[sequence] = ModelLot(sequence, account.id, amount, expires)

    def open_lots(self, account_id: str) -> list[ModelLot]:
        return sorted(
            (lot for lot in self.lots.values() if lot.account_id == account_id and lot.remaining),
            key=ModelLot.order,
        )

    def _take(
        self, account: ModelAccount, amount: int, prefer: int | None = None
    ) -> list[tuple[int, int]]:
        if not account.lots:
            return []
        lots = self.open_lots(account.id)
        if prefer is not None:
            lots.sort(key=lambda lot: lot.sequence != prefer)
        taken = []
        for lot in lots:
            if amount == 0:
                break
            take = min(lot.remaining, amount)
            lot.remaining -= take
            amount -= take
            taken.append((lot.sequence, take))
        return taken

    # -- expiry

    def _expire_lot(self, lot: ModelLot, now: int) -> int:
        account = self.accounts[lot.account_id]
        target = self.accounts[account.expiry_account_id]
        amount, lot.remaining = lot.remaining, 0
        account.debits_posted += amount
        target.credits_posted += amount
        made = self._record(
            f"expiry:{lot.sequence}:{self.sequence + 1}",
            None,
            account,
            target,
            amount,
            now,
            kind=K.TRANSFER_KIND_POSTED,
            code=pb.TRANSFER_CODE_EXPIRY,
        )
        # Expired points that land in an account with lots form a lot that never expires.
        self._add_lot(target, made.sequence, amount, None)
        return amount

    def _expire_hold(self, transfer_id: str, now: int) -> None:
        original = self.transfers[transfer_id]
        debit, credit = self._release(
            self.holds[transfer_id], original, 0, pb.PENDING_STATE_EXPIRED
        )
        self._record(
            f"expire:{transfer_id}",
            None,
            debit,
            credit,
            original.amount,
            now,
            kind=K.TRANSFER_KIND_EXPIRE_PENDING,
            code=original.code,
            pending_id=transfer_id,
        )

    def _timed_out(self, transfer_id: str, now: int) -> bool:
        hold = self.holds[transfer_id]
        return (
            hold.state == pb.PENDING_STATE_PENDING and bool(hold.deadline) and hold.deadline <= now
        )

    def _expired(self, lot: ModelLot, now: int) -> bool:
        return lot.remaining > 0 and lot.expires_at is not None and lot.expires_at <= now

    def _settle_touched(self, requests: list[pb.Transfer], now: int) -> None:
        """Before a batch, what it touches and has expired is settled: the lots of the
        accounts it debits (and the lots its holds reserved), then its timed-out holds."""
        pending_ids = [r.pending_id for r in requests if r.pending_id]
        reversed_ids = [r.reverses_transfer_id for r in requests if r.reverses_transfer_id]
        debited = {r.debit_account_id for r in requests} | {
            self.transfers[i].credit for i in reversed_ids if i in self.transfers
        }
        holds = sorted({i for i in pending_ids if i in self.holds})
        reserved = {sequence for i in holds for sequence, _ in self.holds[i].taken}
        candidates = [
            lot
            for lot in self.lots.values()
            if (lot.account_id in debited and lot.remaining) or lot.sequence in reserved
        ]
        for account_id in sorted({lot.account_id for lot in candidates}):
            mine = sorted(
                (lot for lot in candidates if lot.account_id == account_id), key=ModelLot.order
            )
            for lot in mine:
                if self._expired(lot, now):
                    self._expire_lot(lot, now)
        for transfer_id in holds:
            if self._timed_out(transfer_id, now):
                self._expire_hold(transfer_id, now)

    def sweep(self, now: int) -> tuple[int, int, int]:
        """(lots expired, amount expired, pending expired), in the order the ledger sweeps:
        accounts by their soonest expired lot, holds by deadline then age."""
        due = sorted(
            (lot for lot in self.lots.values() if self._expired(lot, now)),
            key=lambda lot: (lot.expires_at, lot.sequence),
        )
        lots = amount = 0
        for account_id in dict.fromkeys(lot.account_id for lot in due):
            for lot in self.open_lots(account_id):
                if self._expired(lot, now):
                    amount += self._expire_lot(lot, now)
                    lots += 1
        timed_out = sorted(
            (i for i in self.holds if self._timed_out(i, now)),
            key=lambda i: (self.holds[i].deadline, list(self.holds).index(i)),
        )
        for transfer_id in timed_out:
            self._expire_hold(transfer_id, now)
        return lots, amount, len(timed_out)


def _first_difference(stored: ModelTransfer, request: pb.Transfer) -> str:
    derived = request.kind in (
        K.TRANSFER_KIND_POST_PENDING,
        K.TRANSFER_KIND_VOID_PENDING,
        K.TRANSFER_KIND_REVERSAL,
    )
    amount_same = (
        (request.kind == K.TRANSFER_KIND_POST_PENDING and request.amount == 0)
        or request.kind == K.TRANSFER_KIND_VOID_PENDING
        or stored.amount == request.amount
    )
    checks = (
        ("kind", stored.kind == request.kind),
        ("debit_account_id", derived or stored.debit == request.debit_account_id),
        ("credit_account_id", derived or stored.credit == request.credit_account_id),
        ("amount", amount_same),
        ("code", (derived and request.code == 0) or stored.code == request.code),
        ("pending_id", stored.pending_id == request.pending_id),
        ("reverses_transfer_id", stored.reverses_id == request.reverses_transfer_id),
        ("timeout", stored.timeout_us == (_micros(request, "timeout") or 0)),
        ("expire_time", stored.expires_at == _micros(request, "expire_time")),
        ("metadata", stored.metadata == dict(request.metadata)),
    )
    return next((name for name, same in checks if not same), "")
