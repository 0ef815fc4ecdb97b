"""The ledger on PostgreSQL, taking writes from any number of replicas.

The SQL is SqliteLedgerUnit's (through the kit's PgConnection); what differs
is which rows a write locks and when its sequences are assigned. A write runs
at READ COMMITTED and:

1. locks, in id order (SELECT ... FOR UPDATE), the transfers it refers to, the
   holds it may settle, and the accounts with a balance floor
   (debits_must_not_exceed_credits or credits_must_not_exceed_debits): those
   whose balance the rules check. Two writes touching one wallet take turns;
   writes to different wallets run side by side.
2. reads, never locks, accounts without a floor: the program's issuance
   account, which every earn debits, breakage, revenue. Nothing is checked
   against their balance, so the write adds its change to them as a delta
   (`SET debits_posted = debits_posted + ?`) at the end, and the row is held
   only from there to COMMIT, not across the transfer.
3. at the very end takes its sequences from the one-row ledger_sequence
   counter (`UPDATE ... SET last = last + n RETURNING last`). That row lock is
   held from there to COMMIT, so writes take their sequences in commit order
   and a rolled-back write gives its numbers back: the change feed, read as
   `sequence > cursor`, is gapless and never skips a row. A SERIAL (a
   PostgreSQL sequence) is neither: numbers are handed out when a row is
   inserted, not when it commits, so 7 can commit before 6 and a feed reader
   past 7 never sees 6; and a rolled-back insert leaves a hole forever.
   (services/kit/feed_sequences.py is the same counter for any service's feed;
   the ledger keeps its own row, which also carries the last commit time.)
   The same transaction sends the feed's NOTIFY, so WatchTransfers on every
   replica wakes at COMMIT (PgStore's wake_feeds).

The domain numbers a write's transfers from `next_sequence`; here that is a
provisional value past every sequence the write can have read, and save()
moves transfers, their lots and holds to the real numbers, and moves the
balances recorded on transfers of delta accounts by what other replicas
committed meanwhile. The writer cache of the SQLite store is off (another
replica changes rows behind it): every unit starts from the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Unpack

from services.kit.feed_sequences import notify_feed
from services.kit.postgres import READ_COMMITTED, PgConnection, PgStore, RetryTransaction
from services.kit.sqlite import StoreOptions
from services.ledger.domain import Account, Book, TransferRequest
from services.ledger.store import ACCOUNT_COLUMNS, LedgerUnit, SqliteLedgerUnit, _chunks, _marks

# The same tables as SCHEMA_V1 in PostgreSQL's types (BIGINT: microseconds and
# amounts pass 2^31), the append-only rules as triggers, and the counter.
PG_SCHEMA_V1 = """
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% rows are never %', TG_TABLE_NAME, lower(TG_OP);
END $$;
CREATE TABLE accounts (
  id TEXT PRIMARY KEY,
  unit TEXT NOT NULL,
  kind INTEGER NOT NULL,
  flags INTEGER NOT NULL,
  expiry_account_id TEXT REFERENCES accounts (id),
  metadata TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  closed_at BIGINT,
  debits_pending BIGINT NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
  debits_posted BIGINT NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
  credits_pending BIGINT NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
  credits_posted BIGINT NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
  CHECK ((flags & 1) = 0 OR credits_posted - debits_posted - debits_pending >= 0),
  CHECK ((flags & 2) = 0 OR debits_posted - credits_posted - credits_pending >= 0)
);
CREATE TRIGGER accounts_are_never_deleted BEFORE DELETE ON accounts
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TABLE transfers (
  sequence BIGINT PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  kind INTEGER NOT NULL,
  code INTEGER NOT NULL,
  debit_account_id TEXT NOT NULL REFERENCES accounts (id),
  credit_account_id TEXT NOT NULL REFERENCES accounts (id),
  amount BIGINT NOT NULL CHECK (amount > 0),
  created_at BIGINT NOT NULL,
  debit_balance_after BIGINT NOT NULL,
  credit_balance_after BIGINT NOT NULL,
  metadata TEXT NOT NULL,
  pending_id TEXT NOT NULL,
  timeout_us BIGINT NOT NULL,
  expires_at BIGINT,
  reverses_id TEXT NOT NULL
);
CREATE INDEX transfers_by_debit_account ON transfers (debit_account_id, sequence);
CREATE INDEX transfers_by_credit_account ON transfers (credit_account_id, sequence);
CREATE INDEX transfers_by_reversed ON transfers (reverses_id) WHERE reverses_id != '';
CREATE TRIGGER transfers_are_append_only BEFORE UPDATE OR DELETE ON transfers
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TABLE lots (
  sequence BIGINT PRIMARY KEY REFERENCES transfers (sequence),
  account_id TEXT NOT NULL REFERENCES accounts (id),
  remaining BIGINT NOT NULL CHECK (remaining >= 0),
  expires_at BIGINT
);
CREATE INDEX lots_open_by_account ON lots (account_id) WHERE remaining > 0;
CREATE INDEX lots_open_by_expiry ON lots (expires_at)
  WHERE remaining > 0 AND expires_at IS NOT NULL;
CREATE TABLE holds (
  transfer_id TEXT PRIMARY KEY REFERENCES transfers (id),
  state INTEGER NOT NULL,
  deadline BIGINT,
  consumed TEXT NOT NULL
);
CREATE INDEX holds_by_deadline ON holds (deadline) WHERE state = 1 AND deadline IS NOT NULL;
CREATE TABLE ledger_sequence (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  last BIGINT NOT NULL,
  last_at BIGINT NOT NULL
);
INSERT INTO ledger_sequence VALUES (1, 0, 0);
"""

PG_MIGRATIONS = (PG_SCHEMA_V1,)
# The change feed's name for its NOTIFY (WatchTransfers).
FEED = "transfers"
BALANCES = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")


def has_floor(account: Account) -> bool:
    return account.debits_must_not_exceed_credits or account.credits_must_not_exceed_debits


class PgLedgerUnit(SqliteLedgerUnit):
    LOCK = " FOR UPDATE"

    def __init__(self, connection: PgConnection) -> None:
        super().__init__(connection)  # type: ignore[arg-type]  # the sqlite3 shape
        self._locked: set[str] = set()
        # Each unlocked account's balances as read, to save only the change.
        self._read_as: dict[str, tuple[int, int, int, int]] = {}

    # -- loading: floors locked, the rest read

    def _new_book(self, now: int) -> Book:
        # The sequence is settled after the locks (see _number).
        return Book(now=now, next_sequence=0)

    def _load_accounts(self, book: Book, ids: Iterable[str]) -> None:
        super()._load_accounts(book, ids)
        floors = sorted(
            account_id
            for account_id, account in book.accounts.items()
            if has_floor(account) and account_id not in self._locked
        )
        for chunk in _chunks(floors):
            for row in self._db.execute(
                f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id IN ({_marks(chunk)})"
                " ORDER BY id FOR UPDATE",
                chunk,
            ):
                # The locked row, which may have moved since the plain read.
                fresh = book.accounts[row[0]]
                for name, value in zip(BALANCES, row[8:12], strict=True):
                    setattr(fresh, name, value)
                fresh.closed_at = row[7]
            self._locked.update(chunk)
        for account_id, account in book.accounts.items():
            if account_id not in self._locked and account_id not in self._read_as:
                self._read_as[account_id] = _balances(account)

    def _number(self, book: Book) -> Book:
        """Provisional numbers past every sequence this write has read: the
        counter, read after the locks, is at least each locked row's last."""
        last, last_at = self._db.execute(
            "SELECT last, last_at FROM ledger_sequence WHERE id = 1"
        ).fetchone()
        book.next_sequence = last + 1
        book.now = max(book.now, last_at)
        return book

    def load_for_batch(self, requests: Sequence[TransferRequest], now: int) -> Book:
        return self._number(super().load_for_batch(requests, now))

    def load_expired(self, now: int, limit: int) -> tuple[Book, list[str], list[str]]:
        book, lot_accounts, hold_ids = super().load_expired(now, limit)
        return self._number(book), lot_accounts, hold_ids

    # -- saving: deltas, then sequences, then the rows

    def save(self, book: Book) -> None:
        if book.new_transfers:
            self._renumber(book)
        self._add_deltas(book)
        book.dirty_accounts &= self._locked
        super().save(book)

    def _renumber(self, book: Book) -> None:
        count = len(book.new_transfers)
        last, last_at = self._db.execute(
            "UPDATE ledger_sequence SET last = last + ?, last_at = GREATEST(last_at, ?)"
            " WHERE id = 1 RETURNING last, last_at",
            (count, book.now),
        ).fetchone()
        notify_feed(self._db, FEED)
        provisional = book.new_transfers[0].sequence
        shift = last - count + 1 - provisional
        if shift == 0 and last_at == book.now:
            return

        def moved(sequence: int) -> int:
            return sequence + shift if sequence >= provisional else sequence

        for transfer in book.new_transfers:
            transfer.sequence += shift
            # Commit times never run backwards, as on SQLite's single writer.
            transfer.created_at = last_at
        for lot in book.new_lots:
            lot.sequence += shift
            lot.__post_init__()
        book.dirty_lots = {moved(sequence) for sequence in book.dirty_lots}
        for hold in book.holds.values():
            hold.consumed = [[moved(sequence), amount] for sequence, amount in hold.consumed]

    def _add_deltas(self, book: Book) -> None:
        for account_id in sorted(book.dirty_accounts - self._locked):
            account = book.accounts[account_id]
            before = self._read_as[account_id]
            deltas = [now - then for now, then in zip(_balances(account), before, strict=True)]
            row = self._db.execute(
                "UPDATE accounts SET debits_pending = debits_pending + ?,"
                " debits_posted = debits_posted + ?, credits_pending = credits_pending + ?,"
                " credits_posted = credits_posted + ? WHERE id = ?"
                f" RETURNING {', '.join(BALANCES)}, closed_at",
                (*deltas, account_id),
            ).fetchone()
            if row[4] is not None and account.closed_at is None:
                # Closed since it was read: again, and the rules refuse it.
                raise RetryTransaction(f"account {account_id} closed meanwhile")
            offset = (row[3] - row[1]) - account.balance
            for name, value in zip(BALANCES, row[:4], strict=True):
                setattr(account, name, value)
            if offset:
                for transfer in book.new_transfers:
                    if transfer.debit_account_id == account_id:
                        transfer.debit_balance_after += offset
                    if transfer.credit_account_id == account_id:
                        transfer.credit_balance_after += offset


def _balances(account: Account) -> tuple[int, int, int, int]:
    return (
        account.debits_pending,
        account.debits_posted,
        account.credits_pending,
        account.credits_posted,
    )


class PgLedgerStore(PgStore[LedgerUnit]):
    """The ledger's tables on PostgreSQL (READ COMMITTED with the row locks above)."""

    def __init__(self, url: str, **options: Unpack[StoreOptions]) -> None:
        super().__init__(
            url,
            "ledger",
            PG_MIGRATIONS,
            PgLedgerUnit,
            isolation=READ_COMMITTED,
            wake_feeds=(FEED,),
            **options,
        )
