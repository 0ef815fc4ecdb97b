"""The ledger's rules: accounts, transfers, holds, expiring lots and reversals.

Pure Python. The store loads a Book (the working set a batch touches), the rules
here apply the batch to it in memory and record what changed; the store then
writes those changes. Enum values equal the protobuf contract's.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from operator import attrgetter
from typing import Any

from services.kit.errors import Violations
from services.kit.ids import LEDGER_ID, POINTS, PRIZE_UNIT, check_id

MAX_AMOUNT = 2**63 - 1
MAX_BATCH = 8000
MAX_METADATA_ENTRIES = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 256
# The longest google.protobuf Duration (10,000 years), in microseconds.
MAX_DURATION_US = 315_576_000_000 * 1_000_000 + 999_999
# The ids of the transfers the ledger posts itself (expired lots, timed-out holds).
SYSTEM_ID_PREFIXES = ("expiry:", "expire:")


class AccountKind(IntEnum):
    UNSPECIFIED = 0
    MEMBER_WALLET = 1
    PROGRAM_ISSUANCE = 2
    CAMPAIGN_BUDGET = 3
    GAME_PRIZE_POOL = 4
    GAME_REVENUE = 5
    BREAKAGE = 6
    REDEMPTION = 7
    ADJUSTMENT = 8
    REWARD_STOCK = 9


class TransferCode(IntEnum):
    UNSPECIFIED = 0
    EARN = 1
    REDEEM = 2
    BONUS = 3
    GAME_PRIZE = 4
    GAME_COST = 5
    EXPIRY = 6
    REVERSAL = 7
    CLAWBACK = 8
    FUNDING = 9
    ADJUSTMENT = 10


class TransferKind(IntEnum):
    UNSPECIFIED = 0
    POSTED = 1
    PENDING = 2
    POST_PENDING = 3
    VOID_PENDING = 4
    REVERSAL = 5
    EXPIRE_PENDING = 6


class Result(IntEnum):
    UNSPECIFIED = 0
    OK = 1
    EXISTS = 2
    EXISTS_WITH_DIFFERENT_FIELDS = 3
    INSUFFICIENT_BALANCE = 4
    CREDITS_EXCEED_DEBITS = 5
    ACCOUNT_NOT_FOUND = 6
    ACCOUNT_CLOSED = 7
    UNIT_MISMATCH = 8
    LINKED_TRANSFER_FAILED = 9
    PENDING_NOT_FOUND = 10
    PENDING_ALREADY_POSTED = 11
    PENDING_ALREADY_VOIDED = 12
    PENDING_EXPIRED = 13
    AMOUNT_EXCEEDS_PENDING = 14
    REVERSED_TRANSFER_NOT_FOUND = 15
    REVERSED_TRANSFER_NOT_REVERSIBLE = 16
    EXCEEDS_REVERSIBLE_AMOUNT = 17
    OVERFLOW = 18


class PendingState(IntEnum):
    NONE = 0
    PENDING = 1
    POSTED = 2
    VOIDED = 3
    EXPIRED = 4


ACCEPTED = (Result.OK, Result.EXISTS)
# Kinds that moved posted balances and so can be reversed.
REVERSIBLE_KINDS = (TransferKind.POSTED, TransferKind.POST_PENDING)
# Kinds whose accounts, and usually code, come from the transfer they refer to.
DERIVED_KINDS = (TransferKind.POST_PENDING, TransferKind.VOID_PENDING, TransferKind.REVERSAL)


@dataclass(slots=True)
class Account:
    id: str
    unit: str
    kind: AccountKind
    debits_must_not_exceed_credits: bool = False
    credits_must_not_exceed_debits: bool = False
    expiring_lots: bool = False
    expiry_account_id: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    created_at: int = 0
    closed_at: int | None = None
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    @property
    def balance(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        return self.credits_posted - self.debits_posted - self.debits_pending

    def definition(self) -> dict[str, Any]:
        """The fields a client chooses; reopening must repeat them exactly."""
        return {
            "unit": self.unit,
            "kind": self.kind,
            "flags.debits_must_not_exceed_credits": self.debits_must_not_exceed_credits,
            "flags.credits_must_not_exceed_debits": self.credits_must_not_exceed_debits,
            "flags.expiring_lots": self.expiring_lots,
            "expiry_account_id": self.expiry_account_id,
            "metadata": self.metadata,
        }


@dataclass(slots=True)
class TransferRequest:
    """A transfer as a client asked for it; never changed once built (not frozen:
    a frozen dataclass's __init__ cost about 1 µs per transfer of a batch)."""

    id: str
    kind: TransferKind
    debit_account_id: str = ""
    credit_account_id: str = ""
    amount: int = 0
    code: TransferCode = TransferCode.UNSPECIFIED
    metadata: dict[str, str] = field(default_factory=dict)
    linked: bool = False
    pending_id: str = ""
    timeout_us: int = 0
    expires_at: int | None = None
    reverses_id: str = ""


@dataclass(slots=True)
class Transfer:
    """A committed transfer; immutable once written."""

    sequence: int
    id: str
    kind: TransferKind
    code: TransferCode
    debit_account_id: str
    credit_account_id: str
    amount: int
    created_at: int
    debit_balance_after: int
    credit_balance_after: int
    metadata: dict[str, str] = field(default_factory=dict)
    pending_id: str = ""
    timeout_us: int = 0
    expires_at: int | None = None
    reverses_id: str = ""

    def balance_change(self, account_id: str) -> int:
        if self.kind in (
            TransferKind.PENDING,
            TransferKind.VOID_PENDING,
            TransferKind.EXPIRE_PENDING,
        ):
            return 0
        return self.amount if account_id == self.credit_account_id else -self.amount

    def balance_after(self, account_id: str) -> int:
        if account_id == self.debit_account_id:
            return self.debit_balance_after
        return self.credit_balance_after


@dataclass(slots=True)
class Lot:
    """Credited points that expire together; `sequence` is the crediting transfer's."""

    sequence: int
    account_id: str
    remaining: int
    expires_at: int | None
    # Soonest expiry first, lots that never expire last, then oldest first. Fixed for
    # a lot's life, so computed once: a wallet's lots are ordered on every debit.
    order: tuple[bool, int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.order = (self.expires_at is None, self.expires_at or 0, self.sequence)

    def order_key(self) -> tuple[bool, int, int]:
        return self.order


@dataclass(slots=True)
class Hold:
    """The state of a pending transfer and the lot amounts it reserved."""

    transfer_id: str
    state: PendingState
    deadline: int | None
    consumed: list[list[int]] = field(default_factory=list)  # [lot sequence, amount]


@dataclass(slots=True)
class TransferOutcome:
    index: int
    id: str
    result: Result
    field: str = ""
    transfer: Transfer | None = None


# ---------------------------------------------------------------- validation


def _check_metadata(violations: Violations, metadata: dict[str, str], path: str) -> None:
    if len(metadata) > MAX_METADATA_ENTRIES:
        violations.add(path, f"at most {MAX_METADATA_ENTRIES} entries")
    for key, value in metadata.items():
        if not 0 < len(key) <= MAX_METADATA_KEY:
            violations.add(
                f"{path}[{key[:MAX_METADATA_KEY]}]", f"keys are 1 to {MAX_METADATA_KEY} characters"
            )
        if len(value) > MAX_METADATA_VALUE:
            violations.add(
                f"{path}[{key[:MAX_METADATA_KEY]}]",
                f"values are at most {MAX_METADATA_VALUE} characters",
            )


def validate_account(account: Account, path: str = "account") -> None:
    violations = Violations()
    check_id(violations, f"{path}.id", account.id, LEDGER_ID)
    if account.unit != POINTS and not PRIZE_UNIT.matches(account.unit):
        violations.add(f"{path}.unit", 'must be "points" or "prize:<slug>" (lowercase, digits, -)')
    if account.kind == AccountKind.UNSPECIFIED:
        violations.add(f"{path}.kind", "required")
    if account.debits_must_not_exceed_credits and account.credits_must_not_exceed_debits:
        violations.add(f"{path}.flags", "a balance cannot be bounded on both sides")
    if account.expiring_lots:
        if not account.debits_must_not_exceed_credits:
            violations.add(
                f"{path}.flags.expiring_lots",
                "needs debits_must_not_exceed_credits (lots never go negative)",
            )
        if not account.expiry_account_id:
            violations.add(f"{path}.expiry_account_id", "required with expiring_lots")
        else:
            check_id(violations, f"{path}.expiry_account_id", account.expiry_account_id, LEDGER_ID)
            if account.expiry_account_id == account.id:
                violations.add(f"{path}.expiry_account_id", "must be another account")
    elif account.expiry_account_id:
        violations.add(f"{path}.expiry_account_id", "only for accounts with expiring_lots")
    _check_metadata(violations, account.metadata, f"{path}.metadata")
    violations.raise_if_any()


_LEDGER_ID = LEDGER_ID.pattern.fullmatch


class _Ids:
    """check_id for ledger ids, remembering the valid ones of a batch: the same
    accounts recur in most transfers of a batch."""

    def __init__(self, violations: Violations) -> None:
        self._violations = violations
        self._valid: set[str] = set()

    def check(self, path: str, name: str, value: str) -> None:
        """`value` of field `name` of the transfer at `path`."""
        if value in self._valid:
            return
        if value and _LEDGER_ID(value):
            self._valid.add(value)
        else:
            check_id(self._violations, f"{path}.{name}", value, LEDGER_ID)


def validate_batch(requests: list[TransferRequest]) -> None:
    """Stateless checks: a malformed batch is refused whole and changes nothing."""
    violations = Violations()
    if not requests:
        violations.add("transfers", "at least one transfer")
    if len(requests) > MAX_BATCH:
        violations.add("transfers", f"at most {MAX_BATCH} transfers per batch")
        violations.raise_if_any()
    ids = _Ids(violations)
    for index, request in enumerate(requests):
        _validate_transfer(violations, ids, request, f"transfers[{index}]")
    if requests and requests[-1].linked:
        violations.add(
            f"transfers[{len(requests) - 1}].linked", "the last transfer cannot open a chain"
        )
    violations.raise_if_any()


def _validate_transfer(
    violations: Violations, ids: _Ids, request: TransferRequest, path: str
) -> None:
    ids.check(path, "id", request.id)
    if request.id.startswith(SYSTEM_ID_PREFIXES):
        violations.add(f"{path}.id", "ids starting expiry: or expire: are the ledger's own")
    if request.metadata:
        _check_metadata(violations, request.metadata, f"{path}.metadata")
    kind = request.kind
    if kind in (TransferKind.UNSPECIFIED, TransferKind.EXPIRE_PENDING):
        violations.add(
            f"{path}.kind", "must be POSTED, PENDING, POST_PENDING, VOID_PENDING or REVERSAL"
        )
        return
    if request.code == TransferCode.EXPIRY:
        violations.add(f"{path}.code", "EXPIRY is posted only by the ledger's sweep")
    if request.amount < 0 or request.amount > MAX_AMOUNT:
        violations.add(f"{path}.amount", f"must be between 1 and {MAX_AMOUNT}")
    if kind in (TransferKind.POSTED, TransferKind.PENDING):
        ids.check(path, "debit_account_id", request.debit_account_id)
        ids.check(path, "credit_account_id", request.credit_account_id)
        if request.debit_account_id and request.debit_account_id == request.credit_account_id:
            violations.add(f"{path}.credit_account_id", "must differ from debit_account_id")
        if request.amount == 0:
            violations.add(f"{path}.amount", "must be positive")
        if request.code == TransferCode.UNSPECIFIED:
            violations.add(f"{path}.code", "required")
    else:
        for name in ("debit_account_id", "credit_account_id"):
            if getattr(request, name):
                violations.add(
                    f"{path}.{name}", f"taken from the original; leave empty for {kind.name}"
                )
    if kind in (TransferKind.POST_PENDING, TransferKind.VOID_PENDING):
        ids.check(path, "pending_id", request.pending_id)
    elif request.pending_id:
        violations.add(f"{path}.pending_id", "only for POST_PENDING and VOID_PENDING")
    if kind == TransferKind.VOID_PENDING and request.amount != 0:
        violations.add(f"{path}.amount", "a void releases the whole pending amount; leave 0")
    if kind == TransferKind.REVERSAL:
        ids.check(path, "reverses_transfer_id", request.reverses_id)
        if request.amount == 0:
            violations.add(f"{path}.amount", "must be positive")
    elif request.reverses_id:
        violations.add(f"{path}.reverses_transfer_id", "only for REVERSAL")
    if request.timeout_us < 0:
        violations.add(f"{path}.timeout", "must not be negative")
    elif request.timeout_us > MAX_DURATION_US:
        violations.add(f"{path}.timeout", "must be at most 10,000 years")
    elif request.timeout_us and kind != TransferKind.PENDING:
        violations.add(f"{path}.timeout", "only for PENDING")
    if request.expires_at is not None and kind in (
        TransferKind.VOID_PENDING,
        TransferKind.POST_PENDING,
    ):
        violations.add(f"{path}.expire_time", "set it on the PENDING transfer")


def first_difference(stored: Transfer, request: TransferRequest) -> str:
    """The first field a retry changed; fields the client left to be derived are not compared."""
    derived = request.kind in DERIVED_KINDS
    checks: Iterable[tuple[str, bool]] = (
        ("kind", stored.kind == request.kind),
        ("debit_account_id", derived or stored.debit_account_id == request.debit_account_id),
        ("credit_account_id", derived or stored.credit_account_id == request.credit_account_id),
        (
            "amount",
            (request.kind == TransferKind.POST_PENDING and request.amount == 0)
            or request.kind == TransferKind.VOID_PENDING
            or stored.amount == request.amount,
        ),
        (
            "code",
            (derived and request.code == TransferCode.UNSPECIFIED) or stored.code == request.code,
        ),
        ("pending_id", stored.pending_id == request.pending_id),
        ("reverses_transfer_id", stored.reverses_id == request.reverses_id),
        ("timeout", stored.timeout_us == request.timeout_us),
        ("expire_time", stored.expires_at == request.expires_at),
        ("metadata", stored.metadata == request.metadata),
    )
    for name, same in checks:
        if not same:
            return name
    return ""


# ---------------------------------------------------------------- the book


class _Failed(Exception):
    def __init__(self, result: Result, field: str = ""):
        self.result = result
        self.field = field


@dataclass
class Book:
    """The working set of one write: what the store loaded, and what changed."""

    now: int
    next_sequence: int
    accounts: dict[str, Account] = field(default_factory=dict)
    transfers: dict[str, Transfer] = field(default_factory=dict)
    holds: dict[str, Hold] = field(default_factory=dict)
    reversed_amounts: dict[str, int] = field(default_factory=dict)
    lots: dict[str, list[Lot]] = field(default_factory=dict)
    # What changed, for the store to write.
    new_transfers: list[Transfer] = field(default_factory=list)
    new_lots: list[Lot] = field(default_factory=list)
    new_holds: list[Hold] = field(default_factory=list)
    dirty_accounts: set[str] = field(default_factory=set)
    dirty_lots: set[int] = field(default_factory=set)
    dirty_holds: set[str] = field(default_factory=set)
    _journal: list[tuple[Any, str, Any]] | None = None

    # -- journaled mutation, so a failed chain is undone exactly

    def _set(self, target: Any, name: str, value: Any) -> None:
        if self._journal is not None:
            self._journal.append((target, name, getattr(target, name)))
        setattr(target, name, value)

    def _append(self, items: list, item: Any) -> None:
        if self._journal is not None:
            self._journal.append((items, "__len__", len(items)))
        items.append(item)

    def _assign(self, mapping: dict, key: Any, value: Any) -> None:
        if self._journal is not None:
            self._journal.append((mapping, "__key__", (key, mapping.get(key, _MISSING))))
        mapping[key] = value

    def _mark(self, marks: set, item: Any) -> None:
        """Note a changed row for the store; undone with the change, or an undone
        chain would leave the store a lot or hold to update that no longer exists."""
        if item in marks:
            return
        if self._journal is not None:
            self._journal.append((marks, "__mark__", item))
        marks.add(item)

    def _undo(self, mark: int) -> None:
        assert self._journal is not None
        while len(self._journal) > mark:
            target, name, old = self._journal.pop()
            if name == "__mark__":
                target.discard(old)
            elif name == "__len__":
                del target[old:]
            elif name == "__key__":
                key, value = old
                if value is _MISSING:
                    target.pop(key, None)
                else:
                    target[key] = value
            else:
                setattr(target, name, old)

    # -- posting

    def post(self, requests: list[TransferRequest]) -> list[TransferOutcome]:
        """Apply a validated batch; each linked chain commits whole or not at all."""
        outcomes: list[TransferOutcome] = []
        chain: list[tuple[int, TransferRequest]] = []
        for index, request in enumerate(requests):
            chain.append((index, request))
            if not request.linked:
                outcomes.extend(self._post_chain(chain))
                chain = []
        return outcomes

    def _post_chain(self, chain: list[tuple[int, TransferRequest]]) -> list[TransferOutcome]:
        self._journal = []
        outcomes: list[TransferOutcome] = []
        failed_at: int | None = None
        for position, (index, request) in enumerate(chain):
            try:
                result, transfer = self._post_one(request)
                outcomes.append(TransferOutcome(index, request.id, result, transfer=transfer))
            except _Failed as failure:
                outcomes.append(TransferOutcome(index, request.id, failure.result, failure.field))
                failed_at = position
                break
        if failed_at is not None:
            self._undo(0)
            for outcome in outcomes[:failed_at]:
                outcome.result, outcome.field, outcome.transfer = (
                    Result.LINKED_TRANSFER_FAILED,
                    "",
                    None,
                )
            outcomes.extend(
                TransferOutcome(index, request.id, Result.LINKED_TRANSFER_FAILED)
                for index, request in chain[failed_at + 1 :]
            )
        self._journal = None
        return outcomes

    def _post_one(self, request: TransferRequest) -> tuple[Result, Transfer]:
        existing = self.transfers.get(request.id)
        if existing is not None:
            difference = first_difference(existing, request)
            if difference:
                raise _Failed(Result.EXISTS_WITH_DIFFERENT_FIELDS, difference)
            return Result.EXISTS, existing
        return Result.OK, _HANDLERS[request.kind](self, request)

    def _open_accounts(self, debit_id: str, credit_id: str, *, allow_closed: bool = False):
        debit = self.accounts.get(debit_id)
        if debit is None:
            raise _Failed(Result.ACCOUNT_NOT_FOUND, "debit_account_id")
        credit = self.accounts.get(credit_id)
        if credit is None:
            raise _Failed(Result.ACCOUNT_NOT_FOUND, "credit_account_id")
        if not allow_closed:
            if debit.closed_at is not None:
                raise _Failed(Result.ACCOUNT_CLOSED, "debit_account_id")
            if credit.closed_at is not None:
                raise _Failed(Result.ACCOUNT_CLOSED, "credit_account_id")
        if debit.unit != credit.unit:
            raise _Failed(Result.UNIT_MISMATCH)
        return debit, credit

    def _check_room(self, debit: Account, credit: Account, amount: int) -> None:
        if debit.debits_must_not_exceed_credits and debit.available < amount:
            raise _Failed(Result.INSUFFICIENT_BALANCE)
        if (
            credit.credits_must_not_exceed_debits
            and credit.debits_posted - credit.credits_posted - credit.credits_pending < amount
        ):
            raise _Failed(Result.CREDITS_EXCEED_DEBITS)
        if (
            debit.debits_posted + debit.debits_pending + amount > MAX_AMOUNT
            or credit.credits_posted + credit.credits_pending + amount > MAX_AMOUNT
        ):
            raise _Failed(Result.OVERFLOW)

    def _record(
        self,
        request: TransferRequest,
        kind: TransferKind,
        code: TransferCode,
        debit: Account,
        credit: Account,
        amount: int,
        **extra: Any,
    ) -> Transfer:
        transfer = Transfer(
            sequence=self.next_sequence,
            id=request.id,
            kind=kind,
            code=code,
            debit_account_id=debit.id,
            credit_account_id=credit.id,
            amount=amount,
            created_at=self.now,
            debit_balance_after=debit.balance,
            credit_balance_after=credit.balance,
            metadata=dict(request.metadata) if request.metadata else {},
            **extra,
        )
        self._set(self, "next_sequence", self.next_sequence + 1)
        self._append(self.new_transfers, transfer)
        self._assign(self.transfers, transfer.id, transfer)
        return transfer

    def _move_posted(self, debit: Account, credit: Account, amount: int) -> None:
        self._set(debit, "debits_posted", debit.debits_posted + amount)
        self._set(credit, "credits_posted", credit.credits_posted + amount)
        self.dirty_accounts.update((debit.id, credit.id))

    def _posted(self, request: TransferRequest) -> Transfer:
        debit, credit = self._open_accounts(request.debit_account_id, request.credit_account_id)
        self._check_room(debit, credit, request.amount)
        self._consume_lots(debit, request.amount)
        self._move_posted(debit, credit, request.amount)
        transfer = self._record(
            request,
            TransferKind.POSTED,
            request.code,
            debit,
            credit,
            request.amount,
            expires_at=request.expires_at,
        )
        self._add_lot(credit, transfer.sequence, request.amount, request.expires_at)
        return transfer

    def _pending(self, request: TransferRequest) -> Transfer:
        debit, credit = self._open_accounts(request.debit_account_id, request.credit_account_id)
        self._check_room(debit, credit, request.amount)
        consumed = self._consume_lots(debit, request.amount)
        self._set(debit, "debits_pending", debit.debits_pending + request.amount)
        self._set(credit, "credits_pending", credit.credits_pending + request.amount)
        self.dirty_accounts.update((debit.id, credit.id))
        transfer = self._record(
            request,
            TransferKind.PENDING,
            request.code,
            debit,
            credit,
            request.amount,
            timeout_us=request.timeout_us,
            expires_at=request.expires_at,
        )
        hold = Hold(
            transfer_id=request.id,
            state=PendingState.PENDING,
            deadline=self.now + request.timeout_us if request.timeout_us else None,
            consumed=consumed,
        )
        self._append(self.new_holds, hold)
        self._assign(self.holds, request.id, hold)
        return transfer

    def _live_hold(self, pending_id: str) -> tuple[Hold, Transfer]:
        hold = self.holds.get(pending_id)
        original = self.transfers.get(pending_id)
        if hold is None or original is None or original.kind != TransferKind.PENDING:
            raise _Failed(Result.PENDING_NOT_FOUND, "pending_id")
        if (
            hold.state == PendingState.PENDING
            and hold.deadline is not None
            and hold.deadline <= self.now
        ):
            raise _Failed(Result.PENDING_EXPIRED, "pending_id")
        failure = {
            PendingState.POSTED: Result.PENDING_ALREADY_POSTED,
            PendingState.VOIDED: Result.PENDING_ALREADY_VOIDED,
            PendingState.EXPIRED: Result.PENDING_EXPIRED,
        }.get(hold.state)
        if failure is not None:
            raise _Failed(failure, "pending_id")
        return hold, original

    def _release(
        self, hold: Hold, original: Transfer, keep: int, state: PendingState
    ) -> tuple[Account, Account]:
        """End a hold: drop its pending amounts and give back lot amounts beyond `keep`."""
        debit = self.accounts[original.debit_account_id]
        credit = self.accounts[original.credit_account_id]
        self._set(debit, "debits_pending", debit.debits_pending - original.amount)
        self._set(credit, "credits_pending", credit.credits_pending - original.amount)
        self.dirty_accounts.update((debit.id, credit.id))
        self._return_lots(debit, hold.consumed, original.amount - keep)
        self._set(hold, "state", state)
        self._mark(self.dirty_holds, hold.transfer_id)
        return debit, credit

    def _post_pending(self, request: TransferRequest) -> Transfer:
        hold, original = self._live_hold(request.pending_id)
        amount = request.amount or original.amount
        if amount > original.amount:
            raise _Failed(Result.AMOUNT_EXCEEDS_PENDING, "amount")
        debit, credit = self._release(hold, original, amount, PendingState.POSTED)
        self._move_posted(debit, credit, amount)
        transfer = self._record(
            request,
            TransferKind.POST_PENDING,
            request.code or original.code,
            debit,
            credit,
            amount,
            pending_id=request.pending_id,
        )
        self._add_lot(credit, transfer.sequence, amount, original.expires_at)
        return transfer

    def _void_pending(self, request: TransferRequest) -> Transfer:
        hold, original = self._live_hold(request.pending_id)
        debit, credit = self._release(hold, original, 0, PendingState.VOIDED)
        return self._record(
            request,
            TransferKind.VOID_PENDING,
            request.code or original.code,
            debit,
            credit,
            original.amount,
            pending_id=request.pending_id,
        )

    def _reversal(self, request: TransferRequest) -> Transfer:
        original = self.transfers.get(request.reverses_id)
        if original is None:
            raise _Failed(Result.REVERSED_TRANSFER_NOT_FOUND, "reverses_transfer_id")
        if original.kind not in REVERSIBLE_KINDS:
            raise _Failed(Result.REVERSED_TRANSFER_NOT_REVERSIBLE, "reverses_transfer_id")
        already = self.reversed_amounts.get(original.id, 0)
        if request.amount > original.amount - already:
            raise _Failed(Result.EXCEEDS_REVERSIBLE_AMOUNT, "amount")
        debit, credit = self._open_accounts(original.credit_account_id, original.debit_account_id)
        self._check_room(debit, credit, request.amount)
        self._consume_lots(debit, request.amount, prefer=original.sequence)
        self._move_posted(debit, credit, request.amount)
        self._assign(self.reversed_amounts, original.id, already + request.amount)
        transfer = self._record(
            request,
            TransferKind.REVERSAL,
            request.code or TransferCode.REVERSAL,
            debit,
            credit,
            request.amount,
            reverses_id=original.id,
            expires_at=request.expires_at,
        )
        self._add_lot(credit, transfer.sequence, request.amount, request.expires_at)
        return transfer

    # -- lots

    def _add_lot(
        self, account: Account, sequence: int, amount: int, expires_at: int | None
    ) -> None:
        if not account.expiring_lots:
            return
        lot = Lot(sequence, account.id, amount, expires_at)
        self._append(self.new_lots, lot)
        self._append(self.lots.setdefault(account.id, []), lot)

    def _open_lots(self, account: Account) -> list[Lot]:
        lots = [lot for lot in self.lots.get(account.id, ()) if lot.remaining]
        lots.sort(key=_ORDER)
        return lots

    def _consume_lots(
        self, account: Account, amount: int, prefer: int | None = None
    ) -> list[list[int]]:
        """Take `amount` from the account's lots, soonest-expiring first (or the
        preferred lot first, for a reversal of the credit that made it)."""
        if not account.expiring_lots:
            return []
        lots = self._open_lots(account)
        if prefer is not None:
            lots.sort(key=lambda lot: lot.sequence != prefer)
        consumed: list[list[int]] = []
        for lot in lots:
            if amount == 0:
                break
            take = min(lot.remaining, amount)
            self._set(lot, "remaining", lot.remaining - take)
            self._mark(self.dirty_lots, lot.sequence)
            consumed.append([lot.sequence, take])
            amount -= take
        return consumed

    def _return_lots(self, account: Account, consumed: list[list[int]], amount: int) -> None:
        if not consumed or amount == 0:
            return
        by_sequence = {lot.sequence: lot for lot in self.lots.get(account.id, ())}
        for sequence, taken in reversed(consumed):
            if amount == 0:
                break
            give = min(taken, amount)
            lot = by_sequence[sequence]
            self._set(lot, "remaining", lot.remaining + give)
            self._mark(self.dirty_lots, sequence)
            amount -= give

    # -- the ledger's own transfers

    def expire_lots(
        self, account_ids: Iterable[str], only: Mapping[str, Collection[int]] | None = None
    ) -> list[Transfer]:
        """Move every expired lot remainder of these accounts to their expiry account;
        for an account in `only`, just among the lots with those sequences."""
        expired: list[Transfer] = []
        now = self.now
        for account_id in account_ids:
            allowed = only.get(account_id) if only else None
            open_lots = [
                lot
                for lot in self.lots.get(account_id, ())
                if lot.remaining and (allowed is None or lot.sequence in allowed)
            ]
            if not open_lots:
                continue
            soonest = min(open_lots, key=_ORDER)
            if soonest.expires_at is None or soonest.expires_at > now:
                continue  # nothing due
            account = self.accounts[account_id]
            target = self.accounts[account.expiry_account_id]
            for lot in sorted(open_lots, key=_ORDER):
                if lot.expires_at is None or lot.expires_at > self.now:
                    continue
                amount = lot.remaining
                lot.remaining = 0
                self.dirty_lots.add(lot.sequence)
                self._move_posted(account, target, amount)
                # A lot can expire twice: a hold voided after its lot expired puts
                # points back into it. The expiry's own sequence keeps ids unique.
                request = TransferRequest(
                    id=f"expiry:{lot.sequence}:{self.next_sequence}", kind=TransferKind.POSTED
                )
                transfer = self._record(
                    request, TransferKind.POSTED, TransferCode.EXPIRY, account, target, amount
                )
                # An expiry account with lots of its own gets a lot that never expires,
                # so its lots keep adding up to its balance.
                self._add_lot(target, transfer.sequence, amount, None)
                expired.append(transfer)
        return expired

    def expire_holds(self, transfer_ids: Iterable[str]) -> list[Transfer]:
        """Void every pending transfer among these whose timeout has passed."""
        voided: list[Transfer] = []
        for transfer_id in transfer_ids:
            hold = self.holds[transfer_id]
            if (
                hold.state != PendingState.PENDING
                or hold.deadline is None
                or hold.deadline > self.now
            ):
                continue
            original = self.transfers[transfer_id]
            debit, credit = self._release(hold, original, 0, PendingState.EXPIRED)
            request = TransferRequest(id=f"expire:{transfer_id}", kind=TransferKind.EXPIRE_PENDING)
            voided.append(
                self._record(
                    request,
                    TransferKind.EXPIRE_PENDING,
                    original.code,
                    debit,
                    credit,
                    original.amount,
                    pending_id=transfer_id,
                )
            )
        return voided


_MISSING = object()
_ORDER = attrgetter("order")
# Each kind's rule, looked up once per transfer.
_HANDLERS = {
    TransferKind.POSTED: Book._posted,
    TransferKind.PENDING: Book._pending,
    TransferKind.POST_PENDING: Book._post_pending,
    TransferKind.VOID_PENDING: Book._void_pending,
    TransferKind.REVERSAL: Book._reversal,
}


def reopen_difference(stored: Account, requested: Account) -> str:
    """The first field that differs when an existing account is opened again."""
    for name, value in requested.definition().items():
        if stored.definition()[name] != value:
            return name
    return ""
