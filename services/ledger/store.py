"""SQL for the ledger, and nothing else.

Everything runs as a unit of work: `store.write(work)` hands `work` a
LedgerUnit inside one savepoint of the kit's group commit (load a Book, apply
the rules, save it); `store.read(work)` hands it the same unit on a read-only
connection. A PostgreSQL store implements the same LedgerUnit.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar, Unpack

from services.kit.sqlite import SqliteStore, StoreOptions
from services.ledger.domain import (
    Account,
    AccountKind,
    Book,
    Hold,
    Lot,
    PendingState,
    Transfer,
    TransferCode,
    TransferKind,
    TransferRequest,
)

T = TypeVar("T")

SCHEMA_V1 = """
CREATE TABLE accounts (
  id TEXT PRIMARY KEY,
  unit TEXT NOT NULL,
  kind INTEGER NOT NULL,
  flags INTEGER NOT NULL,
  expiry_account_id TEXT REFERENCES accounts (id),
  metadata TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  closed_at INTEGER,
  debits_pending INTEGER NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
  debits_posted INTEGER NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
  credits_pending INTEGER NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
  credits_posted INTEGER NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
  CHECK ((flags & 1) = 0 OR credits_posted - debits_posted - debits_pending >= 0),
  CHECK ((flags & 2) = 0 OR debits_posted - credits_posted - credits_pending >= 0)
);
CREATE TRIGGER accounts_are_never_deleted BEFORE DELETE ON accounts
BEGIN
  SELECT RAISE(ABORT, 'accounts are never deleted');
END;
CREATE TABLE transfers (
  sequence INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  kind INTEGER NOT NULL,
  code INTEGER NOT NULL,
  debit_account_id TEXT NOT NULL REFERENCES accounts (id),
  credit_account_id TEXT NOT NULL REFERENCES accounts (id),
  amount INTEGER NOT NULL CHECK (amount > 0),
  created_at INTEGER NOT NULL,
  debit_balance_after INTEGER NOT NULL,
  credit_balance_after INTEGER NOT NULL,
  metadata TEXT NOT NULL,
  pending_id TEXT NOT NULL,
  timeout_us INTEGER NOT NULL,
  expires_at INTEGER,
  reverses_id TEXT NOT NULL
);
CREATE INDEX transfers_by_debit_account ON transfers (debit_account_id, sequence);
CREATE INDEX transfers_by_credit_account ON transfers (credit_account_id, sequence);
CREATE INDEX transfers_by_reversed ON transfers (reverses_id) WHERE reverses_id != '';
CREATE TRIGGER transfers_are_append_only BEFORE UPDATE ON transfers
BEGIN
  SELECT RAISE(ABORT, 'transfers are append-only');
END;
CREATE TRIGGER transfers_are_never_deleted BEFORE DELETE ON transfers
BEGIN
  SELECT RAISE(ABORT, 'transfers are append-only');
END;
CREATE TABLE lots (
  sequence INTEGER PRIMARY KEY REFERENCES transfers (sequence),
  account_id TEXT NOT NULL REFERENCES accounts (id),
  remaining INTEGER NOT NULL CHECK (remaining >= 0),
  expires_at INTEGER
);
CREATE INDEX lots_open_by_account ON lots (account_id) WHERE remaining > 0;
CREATE INDEX lots_open_by_expiry ON lots (expires_at)
  WHERE remaining > 0 AND expires_at IS NOT NULL;
CREATE TABLE holds (
  transfer_id TEXT PRIMARY KEY REFERENCES transfers (id),
  state INTEGER NOT NULL,
  deadline INTEGER,
  consumed TEXT NOT NULL
);
CREATE INDEX holds_by_deadline ON holds (deadline) WHERE state = 1 AND deadline IS NOT NULL;
"""

MIGRATIONS = (SCHEMA_V1,)

ACCOUNT_COLUMNS = (
    "id, unit, kind, flags, expiry_account_id, metadata, created_at, closed_at,"
    " debits_pending, debits_posted, credits_pending, credits_posted"
)
TRANSFER_COLUMNS = (
    "sequence, id, kind, code, debit_account_id, credit_account_id, amount, created_at,"
    " debit_balance_after, credit_balance_after, metadata, pending_id, timeout_us, expires_at,"
    " reverses_id"
)
# SQLite's bound-parameter limit is far above this; chunks keep statements small.
CHUNK = 500


def _flags(account: Account) -> int:
    return (
        account.debits_must_not_exceed_credits
        | account.credits_must_not_exceed_debits << 1
        | account.expiring_lots << 2
    )


def metadata_json(metadata: dict[str, str]) -> str:
    # Most accounts and transfers carry no metadata: skip json for them (hot path).
    return json.dumps(metadata, sort_keys=True) if metadata else "{}"


def metadata_from_json(text: str) -> dict[str, str]:
    return json.loads(text) if text != "{}" else {}


def account_from_row(row: Sequence) -> Account:
    flags = row[3]
    return Account(
        id=row[0],
        unit=row[1],
        kind=AccountKind(row[2]),
        debits_must_not_exceed_credits=bool(flags & 1),
        credits_must_not_exceed_debits=bool(flags & 2),
        expiring_lots=bool(flags & 4),
        expiry_account_id=row[4] or "",
        metadata=metadata_from_json(row[5]),
        created_at=row[6],
        closed_at=row[7],
        debits_pending=row[8],
        debits_posted=row[9],
        credits_pending=row[10],
        credits_posted=row[11],
    )


def transfer_from_row(row: Sequence) -> Transfer:
    return Transfer(
        sequence=row[0],
        id=row[1],
        kind=TransferKind(row[2]),
        code=TransferCode(row[3]),
        debit_account_id=row[4],
        credit_account_id=row[5],
        amount=row[6],
        created_at=row[7],
        debit_balance_after=row[8],
        credit_balance_after=row[9],
        metadata=metadata_from_json(row[10]),
        pending_id=row[11],
        timeout_us=row[12],
        expires_at=row[13],
        reverses_id=row[14],
    )


def _chunks(values: Iterable[str]) -> Iterable[list[str]]:
    items = list(dict.fromkeys(value for value in values if value))
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _marks(values: Sequence) -> str:
    return ",".join("?" * len(values))


@dataclass(frozen=True, slots=True)
class ExpiringLot:
    amount: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class KindTotal:
    """What the accounts of one kind and unit hold together."""

    kind: AccountKind
    accounts: int
    balance: int
    debits_pending: int


class LedgerUnit(Protocol):
    """What a write needs from storage, inside one transaction."""

    def load_for_batch(self, requests: Sequence[TransferRequest], now: int) -> Book: ...
    def load_expired(self, now: int, limit: int) -> tuple[Book, list[str], list[str]]: ...
    def find_account(self, account_id: str) -> Account | None: ...
    def insert_account(self, account: Account) -> None: ...
    def close_account(self, account_id: str, closed_at: int) -> None: ...
    def save(self, book: Book) -> None: ...
    def expiring(self, account_id: str, now: int, until: int) -> list[ExpiringLot]: ...
    def get_transfer(self, transfer_id: str) -> tuple[Transfer, int, PendingState] | None: ...
    def list_transfers(
        self,
        account_id: str,
        after_sequence: int,
        start: int | None,
        end: int | None,
        codes: Sequence[int],
        limit: int,
    ) -> list[Transfer]: ...
    def last_transfer_at(self, account_id: str, moment: int) -> Transfer | None: ...
    def transfers_after(
        self, after_sequence: int, account_id: str, limit: int
    ) -> list[Transfer]: ...
    def totals(self, unit: str) -> list[KindTotal]: ...


# The writer keeps at most this many accounts (with their open lots) in memory.
CACHED_ACCOUNTS = 100_000


class WriterCache:
    """What the writer knows of the rows it reads and writes again and again:
    accounts, the open lots of some of them, the last sequence.

    Only the ledger's writer changes these tables, so this equals the database
    inside and between its transactions: a Book works on these very objects and
    save() keeps the lot index up to date. Whatever rolls back (a request's
    savepoint, a group's COMMIT) clears it (LedgerStore's on_rollback), and the
    next write reads the database again. Profiled under the batch bench, loading
    each batch's accounts and lots from SQL into new objects was a fifth of its
    CPU; the unary path loaded the program's accounts once per call.
    """

    def __init__(self, limit: int = CACHED_ACCOUNTS) -> None:
        self.limit = limit
        self.accounts: dict[str, Account] = {}
        # Per cached account with expiring lots: every lot with points left, by sequence.
        self.open_lots: dict[str, dict[int, Lot]] = {}
        # (sequence, created_at) of the last committed transfer, once read.
        self.last: tuple[int, int] | None = None

    def clear(self) -> None:
        self.accounts.clear()
        self.open_lots.clear()
        self.last = None


class SqliteLedgerUnit:
    # Appended to the loads of the rows a write may change (transfers referred
    # to, holds): nothing on SQLite, whose one writer is alone; PgLedgerUnit locks.
    LOCK = ""

    def __init__(self, connection: sqlite3.Connection, cache: WriterCache | None = None) -> None:
        self._db = connection
        # Readers get a fresh cache each time: they see their own snapshot only.
        self._cache = cache if cache is not None else WriterCache()

    # -- loading

    def _new_book(self, now: int) -> Book:
        if len(self._cache.accounts) > self._cache.limit:
            self._cache.clear()
        last = self._cache.last
        if last is None:
            row = self._db.execute(
                "SELECT sequence, created_at FROM transfers ORDER BY sequence DESC LIMIT 1"
            ).fetchone()
            last = self._cache.last = row if row else (0, 0)
        last_sequence, last_time = last
        # Commit times never run backwards, so history by time matches history by sequence.
        return Book(now=max(now, last_time), next_sequence=last_sequence + 1)

    def _load_transfers(self, book: Book, ids: Iterable[str]) -> None:
        for chunk in _chunks(ids):
            for row in self._db.execute(
                f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id IN ({_marks(chunk)})"
                f" ORDER BY id{self.LOCK}",
                chunk,
            ):
                transfer = transfer_from_row(row)
                book.transfers[transfer.id] = transfer

    def _load_accounts(self, book: Book, ids: Iterable[str]) -> None:
        accounts, cached = book.accounts, self._cache.accounts
        missing: list[str] = []
        for account_id in ids:
            if account_id in accounts:
                continue
            account = cached.get(account_id)
            if account is None:
                missing.append(account_id)
            else:
                accounts[account_id] = account
        for chunk in _chunks(missing):
            for row in self._db.execute(
                f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id IN ({_marks(chunk)})", chunk
            ):
                account = account_from_row(row)
                accounts[account.id] = cached[account.id] = account
        # Expiry accounts ride along, for sweeping lots of the accounts just loaded.
        expiry_ids = {
            account.expiry_account_id
            for account in accounts.values()
            if account.expiring_lots and account.expiry_account_id not in accounts
        }
        if expiry_ids:
            self._load_accounts(book, expiry_ids)

    def _load_holds(self, book: Book, ids: Iterable[str]) -> None:
        for chunk in _chunks(ids):
            for transfer_id, state, deadline, consumed in self._db.execute(
                "SELECT transfer_id, state, deadline, consumed FROM holds"
                f" WHERE transfer_id IN ({_marks(chunk)}) ORDER BY transfer_id{self.LOCK}",
                chunk,
            ):
                book.holds[transfer_id] = Hold(
                    transfer_id, PendingState(state), deadline, json.loads(consumed)
                )

    def _load_lots(self, book: Book, account_ids: Iterable[str], sequences: Iterable[int]) -> None:
        """Into the book: every open lot of these accounts (those with expiring lots),
        and the lots with these sequences (a hold's reserved lots, open or not)."""
        lots, open_lots = book.lots, self._cache.open_lots
        loaded = {lot.sequence for account_lots in lots.values() for lot in account_lots}
        missing: list[str] = []
        for account_id in dict.fromkeys(account_ids):
            account = book.accounts.get(account_id)
            if account is None or not account.expiring_lots:
                continue
            known = open_lots.get(account_id)
            if known is None:
                missing.append(account_id)
                continue
            fresh = [lot for sequence, lot in known.items() if sequence not in loaded]
            if fresh:
                lots.setdefault(account_id, []).extend(fresh)
                loaded.update(lot.sequence for lot in fresh)
        for chunk in _chunks(missing):
            found: dict[str, dict[int, Lot]] = {account_id: {} for account_id in chunk}
            for sequence, account_id, remaining, expires_at in self._db.execute(
                "SELECT sequence, account_id, remaining, expires_at FROM lots"
                f" WHERE account_id IN ({_marks(chunk)}) AND remaining > 0",
                chunk,
            ):
                found[account_id][sequence] = Lot(sequence, account_id, remaining, expires_at)
            for account_id, by_sequence in found.items():
                open_lots[account_id] = by_sequence
                fresh = [lot for sequence, lot in by_sequence.items() if sequence not in loaded]
                if fresh:
                    lots.setdefault(account_id, []).extend(fresh)
                    loaded.update(lot.sequence for lot in fresh)
        wanted = sorted(set(sequences) - loaded)
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            for sequence, account_id, remaining, expires_at in self._db.execute(
                "SELECT sequence, account_id, remaining, expires_at FROM lots"
                f" WHERE sequence IN ({_marks(chunk)})",
                chunk,
            ):
                # An open lot the cache holds is that very object, so both stay one.
                lot = open_lots.get(account_id, {}).get(sequence) or Lot(
                    sequence, account_id, remaining, expires_at
                )
                lots.setdefault(account_id, []).append(lot)
                loaded.add(sequence)

    def load_for_batch(self, requests: Sequence[TransferRequest], now: int) -> Book:
        book = self._new_book(now)
        pending_ids = [r.pending_id for r in requests if r.pending_id]
        reversed_ids = [r.reverses_id for r in requests if r.reverses_id]
        # The batch's one idempotency lookup (and the transfers it refers to).
        self._load_transfers(book, [*(r.id for r in requests), *pending_ids, *reversed_ids])
        self._load_holds(book, pending_ids)
        for chunk in _chunks(reversed_ids):
            book.reversed_amounts.update(
                self._db.execute(
                    "SELECT reverses_id, SUM(amount) FROM transfers"
                    f" WHERE reverses_id IN ({_marks(chunk)}) GROUP BY reverses_id",
                    chunk,
                )
            )
        referenced = [
            book.transfers[i] for i in (*pending_ids, *reversed_ids) if i in book.transfers
        ]
        account_ids = {
            **dict.fromkeys(r.debit_account_id for r in requests),
            **dict.fromkeys(r.credit_account_id for r in requests),
        }
        for transfer in referenced:
            account_ids[transfer.debit_account_id] = None
            account_ids[transfer.credit_account_id] = None
        account_ids.pop("", None)
        self._load_accounts(book, account_ids)
        # Lots are needed where points leave an account: a debit, or the credit
        # side of a transfer being reversed; and the lots a hold reserved.
        debited = [
            *(r.debit_account_id for r in requests),
            *(book.transfers[i].credit_account_id for i in reversed_ids if i in book.transfers),
        ]
        reserved = [lot for hold in book.holds.values() for lot, _ in hold.consumed]
        self._load_lots(book, debited, reserved)
        return book

    def load_expired(self, now: int, limit: int) -> tuple[Book, list[str], list[str]]:
        """A book holding up to `limit` expired lots and timed-out holds, and whose they are."""
        book = self._new_book(now)
        # Accounts by their soonest expired lot, holds by deadline then age: the
        # order is the SQL's on either engine, not an index's scan order.
        due: dict[str, None] = {}
        for (account_id,) in self._db.execute(
            "SELECT account_id FROM lots WHERE remaining > 0 AND expires_at IS NOT NULL"
            " AND expires_at <= ? ORDER BY expires_at, sequence",
            (now,),
        ):
            due[account_id] = None
            if len(due) == limit:
                break
        lot_accounts = list(due)
        hold_ids = [
            row[0]
            for row in self._db.execute(
                "SELECT holds.transfer_id FROM holds"
                " JOIN transfers ON transfers.id = holds.transfer_id"
                " WHERE holds.state = 1 AND holds.deadline IS NOT NULL AND holds.deadline <= ?"
                " ORDER BY holds.deadline, transfers.sequence LIMIT ?",
                (now, limit),
            )
        ]
        self._load_transfers(book, hold_ids)
        self._load_holds(book, hold_ids)
        held = [book.transfers[i] for i in hold_ids]
        self._load_accounts(
            book,
            [
                *lot_accounts,
                *(t.debit_account_id for t in held),
                *(t.credit_account_id for t in held),
            ],
        )
        reserved = [lot for hold in book.holds.values() for lot, _ in hold.consumed]
        self._load_lots(book, lot_accounts, reserved)
        return book, lot_accounts, hold_ids

    def find_account(self, account_id: str) -> Account | None:
        row = self._db.execute(
            f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,)
        ).fetchone()
        return account_from_row(row) if row else None

    # -- saving

    def insert_account(self, account: Account) -> None:
        self._db.execute(
            f"INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,0,0,0,0)",
            (
                account.id,
                account.unit,
                int(account.kind),
                _flags(account),
                account.expiry_account_id or None,
                metadata_json(account.metadata),
                account.created_at,
                account.closed_at,
            ),
        )

    def close_account(self, account_id: str, closed_at: int) -> None:
        self._db.execute(
            "UPDATE accounts SET closed_at = ? WHERE id = ? AND closed_at IS NULL",
            (closed_at, account_id),
        )
        self._cache.accounts.pop(account_id, None)
        self._cache.open_lots.pop(account_id, None)

    def save(self, book: Book) -> None:
        db = self._db
        if book.new_transfers:
            db.executemany(
                f"INSERT INTO transfers ({TRANSFER_COLUMNS}) VALUES ({_marks(range(15))})",
                [
                    (
                        t.sequence,
                        t.id,
                        int(t.kind),
                        int(t.code),
                        t.debit_account_id,
                        t.credit_account_id,
                        t.amount,
                        t.created_at,
                        t.debit_balance_after,
                        t.credit_balance_after,
                        metadata_json(t.metadata),
                        t.pending_id,
                        t.timeout_us,
                        t.expires_at,
                        t.reverses_id,
                    )
                    for t in book.new_transfers
                ],
            )
        if book.dirty_accounts:
            db.executemany(
                "UPDATE accounts SET debits_pending = ?, debits_posted = ?, credits_pending = ?,"
                " credits_posted = ? WHERE id = ?",
                [
                    (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted, a.id)
                    for a in (book.accounts[i] for i in book.dirty_accounts)
                ],
            )
        open_lots = self._cache.open_lots
        if book.new_lots:
            db.executemany(
                "INSERT INTO lots (sequence, account_id, remaining, expires_at) VALUES (?,?,?,?)",
                [
                    (lot.sequence, lot.account_id, lot.remaining, lot.expires_at)
                    for lot in book.new_lots
                ],
            )
            for lot in book.new_lots:
                known = open_lots.get(lot.account_id)
                if known is not None and lot.remaining:
                    known[lot.sequence] = lot
        new_lots = {lot.sequence for lot in book.new_lots}
        changed = book.dirty_lots - new_lots
        if changed:
            lots = [lot for lots in book.lots.values() for lot in lots if lot.sequence in changed]
            db.executemany(
                "UPDATE lots SET remaining = ? WHERE sequence = ?",
                [(lot.remaining, lot.sequence) for lot in lots],
            )
            for lot in lots:
                known = open_lots.get(lot.account_id)
                if known is None:
                    continue
                if lot.remaining:
                    known[lot.sequence] = lot
                else:
                    known.pop(lot.sequence, None)
        if book.new_transfers:
            self._cache.last = (book.next_sequence - 1, book.new_transfers[-1].created_at)
        new_holds = {hold.transfer_id for hold in book.new_holds}
        if book.new_holds:
            db.executemany(
                "INSERT INTO holds (transfer_id, state, deadline, consumed) VALUES (?,?,?,?)",
                [
                    (h.transfer_id, int(h.state), h.deadline, json.dumps(h.consumed))
                    for h in book.new_holds
                ],
            )
        if book.dirty_holds - new_holds:
            db.executemany(
                "UPDATE holds SET state = ? WHERE transfer_id = ?",
                [(int(book.holds[i].state), i) for i in book.dirty_holds - new_holds],
            )

    # -- reads

    def _rows(self, sql: str, parameters: Sequence = ()) -> list:
        return self._db.execute(sql, parameters).fetchall()

    def expiring(self, account_id: str, now: int, until: int) -> list[ExpiringLot]:
        rows = self._rows(
            "SELECT expires_at, SUM(remaining) FROM lots WHERE account_id = ? AND remaining > 0"
            " AND expires_at IS NOT NULL AND expires_at > ? AND expires_at <= ?"
            " GROUP BY expires_at ORDER BY expires_at",
            (account_id, now, until),
        )
        return [ExpiringLot(amount, expires_at) for expires_at, amount in rows]

    def get_transfer(self, transfer_id: str) -> tuple[Transfer, int, PendingState] | None:
        rows = self._rows(f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = ?", (transfer_id,))
        if not rows:
            return None
        transfer = transfer_from_row(rows[0])
        reversed_rows = self._rows(
            "SELECT COALESCE(SUM(amount), 0) FROM transfers WHERE reverses_id = ?", (transfer_id,)
        )
        state = PendingState.NONE
        if transfer.kind == TransferKind.PENDING:
            hold_rows = self._rows("SELECT state FROM holds WHERE transfer_id = ?", (transfer_id,))
            state = PendingState(hold_rows[0][0])
        return transfer, reversed_rows[0][0], state

    def list_transfers(
        self,
        account_id: str,
        after_sequence: int,
        start: int | None,
        end: int | None,
        codes: Sequence[int],
        limit: int,
    ) -> list[Transfer]:
        conditions = ["sequence > ?"]
        parameters: list = [after_sequence]
        if start is not None:
            conditions.append("created_at >= ?")
            parameters.append(start)
        if end is not None:
            conditions.append("created_at < ?")
            parameters.append(end)
        if codes:
            conditions.append(f"code IN ({_marks(codes)})")
            parameters.extend(codes)
        where = " AND ".join(conditions)
        # Each side uses its own index; the union keeps commit order.
        rows = self._rows(
            f"SELECT {TRANSFER_COLUMNS} FROM ("
            f" SELECT * FROM transfers WHERE debit_account_id = ? AND {where}"
            f" UNION ALL"
            f" SELECT * FROM transfers WHERE credit_account_id = ? AND {where}"
            f") ORDER BY sequence LIMIT ?",
            (account_id, *parameters, account_id, *parameters, limit),
        )
        return [transfer_from_row(row) for row in rows]

    def last_transfer_at(self, account_id: str, moment: int) -> Transfer | None:
        rows = self._rows(
            f"SELECT {TRANSFER_COLUMNS} FROM ("
            " SELECT * FROM transfers WHERE debit_account_id = ? AND created_at <= ?"
            " UNION ALL"
            " SELECT * FROM transfers WHERE credit_account_id = ? AND created_at <= ?"
            ") ORDER BY sequence DESC LIMIT 1",
            (account_id, moment, account_id, moment),
        )
        return transfer_from_row(rows[0]) if rows else None

    def transfers_after(self, after_sequence: int, account_id: str, limit: int) -> list[Transfer]:
        if account_id:
            return self.list_transfers(account_id, after_sequence, None, None, (), limit)
        rows = self._rows(
            f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE sequence > ?"
            " ORDER BY sequence LIMIT ?",
            (after_sequence, limit),
        )
        return [transfer_from_row(row) for row in rows]

    def totals(self, unit: str) -> list[KindTotal]:
        rows = self._rows(
            "SELECT kind, COUNT(*), SUM(credits_posted - debits_posted), SUM(debits_pending)"
            " FROM accounts WHERE unit = ? GROUP BY kind ORDER BY kind",
            (unit,),
        )
        return [KindTotal(AccountKind(kind), *figures) for kind, *figures in rows]


class LedgerStore(SqliteStore[LedgerUnit]):
    """The ledger's SQLite file."""

    def __init__(self, path: Path | str, **options: Unpack[StoreOptions]) -> None:
        self.cache = WriterCache()
        super().__init__(
            path,
            MIGRATIONS,
            SqliteLedgerUnit,
            write_unit=lambda connection: SqliteLedgerUnit(connection, self.cache),
            on_rollback=self.cache.clear,
            **options,
        )
