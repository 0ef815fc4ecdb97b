"""The ledger's use cases over its store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

import structlog

from services.kit.clock import MICROS_PER_SECOND, Clock
from services.kit.errors import (
    AlreadyExists,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Violations,
)
from services.kit.feeds import FEED_PAGE, CommitSignal, serve_pages
from services.kit.ids import LEDGER_ID, POINTS, PRIZE_UNIT, check_id
from services.kit.paging import Page, decode_page_token, page_of, page_size
from services.kit.stores import UnitStore
from services.kit.text import shown
from services.ledger.domain import (
    MAX_BATCH,
    MAX_DURATION_US,
    Account,
    Book,
    PendingState,
    Transfer,
    TransferCode,
    TransferOutcome,
    TransferRequest,
    reopen_difference,
    validate_account,
    validate_batch,
)
from services.ledger.store import ExpiringLot, KindTotal, LedgerUnit

log = structlog.get_logger()

MAX_PAGE_SIZE = 1000
DEFAULT_EXPIRING_WINDOW_US = 30 * 86_400 * MICROS_PER_SECOND
SWEEP_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class AccountView:
    account: Account
    expiring_soon: list[ExpiringLot]


@dataclass(frozen=True, slots=True)
class SweepReport:
    lots_expired: int = 0
    amount_expired: int = 0
    pending_expired: int = 0


@dataclass(slots=True)
class _Waiting:
    """A batch waiting for the writer, and who waits for its outcomes."""

    requests: list[TransferRequest]
    future: asyncio.Future[list[TransferOutcome]]


def _deliver(
    waiting: _Waiting,
    outcomes: list[TransferOutcome] | None = None,
    error: BaseException | None = None,
) -> None:
    if waiting.future.done():
        return  # its caller went away; what committed stays committed
    if error is not None:
        waiting.future.set_exception(error)
    else:
        waiting.future.set_result(outcomes)


class _SharedWork:
    """One flush's unit of work: the batches it took, and whether applying them broke."""

    def __init__(self, service: LedgerService) -> None:
        self._service = service
        self.taken: list[_Waiting] = []
        self.broke = False

    def take(self) -> None:
        """On the loop, before the write: the work itself must be pure, as a
        store may run it on a thread and again after a conflict (PostgreSQL)."""
        service = self._service
        self.taken = service._take_waiting()

    def run(self, unit: LedgerUnit) -> list[list[TransferOutcome]]:
        service = self._service
        try:
            return service._apply(unit, [waiting.requests for waiting in self.taken])
        except BaseException:
            self.broke = True
            raise


def _lots_due(book: Book, requests: list[TransferRequest]) -> tuple[list[str], dict[str, set[int]]]:
    """Whose lots a batch settles before it posts, as a call of its own would load
    them: every open lot of the accounts it debits (and of the credit side of what
    it reverses), and the lots its holds reserved."""
    debited = {r.debit_account_id for r in requests}
    reserved: dict[str, set[int]] = {}
    for request in requests:
        if request.reverses_id and request.reverses_id in book.transfers:
            debited.add(book.transfers[request.reverses_id].credit_account_id)
        hold = book.holds.get(request.pending_id) if request.pending_id else None
        original = book.transfers.get(request.pending_id) if hold is not None else None
        if original is not None and hold.consumed:
            reserved.setdefault(original.debit_account_id, set()).update(
                sequence for sequence, _ in hold.consumed
            )
    only = {account_id: lots for account_id, lots in reserved.items() if account_id not in debited}
    accounts = [
        account_id
        for account_id in sorted(debited | set(reserved))
        if account_id in book.accounts
        and book.accounts[account_id].expiring_lots
        and book.lots.get(account_id)
    ]
    return accounts, only


class LedgerService:
    def __init__(self, store: UnitStore[LedgerUnit], clock: Clock, commits: CommitSignal) -> None:
        self._store = store
        self._clock = clock
        self._commits = commits
        # Batches waiting for the writer's next turn, posted together by one flush.
        self._waiting: list[_Waiting] = []
        self._flush_queued = False
        self._flushes: set[asyncio.Task] = set()

    # -- accounts

    async def open_account(self, requested: Account) -> tuple[Account, bool]:
        validate_account(requested)

        def work(unit: LedgerUnit) -> tuple[Account, bool]:
            existing = unit.find_account(requested.id)
            if existing is not None:
                difference = reopen_difference(existing, requested)
                if difference:
                    raise AlreadyExists(
                        "ACCOUNT_EXISTS_WITH_DIFFERENT_FIELDS",
                        f"account {requested.id} exists with a different {difference}",
                        {"account_id": requested.id, "field": difference},
                    )
                return existing, False
            if requested.expiring_lots:
                target = unit.find_account(requested.expiry_account_id)
                problem = (
                    "does not exist"
                    if target is None
                    else "holds another unit"
                    if target.unit != requested.unit
                    else "must be able to receive credits (no credits_must_not_exceed_debits)"
                    if target.credits_must_not_exceed_debits
                    else ""
                )
                if problem:
                    raise InvalidArgument(
                        [
                            FieldViolation(
                                "account.expiry_account_id", f"the expiry account {problem}"
                            )
                        ],
                        reason="INVALID_EXPIRY_ACCOUNT",
                    )
            account = replace(
                requested,
                created_at=self._clock.now_us(),
                closed_at=None,
                debits_pending=0,
                debits_posted=0,
                credits_pending=0,
                credits_posted=0,
            )
            unit.insert_account(account)
            return account, True

        account, created = await self._store.write(work)
        if created:
            log.info(
                "account_opened", account_id=account.id, unit=account.unit, kind=account.kind.name
            )
        return account, created

    async def close_account(self, account_id: str) -> Account:
        _require_id(account_id, "account_id")

        def work(unit: LedgerUnit) -> Account:
            if unit.find_account(account_id) is None:
                raise _account_not_found(account_id)
            unit.close_account(account_id, self._clock.now_us())
            closed = unit.find_account(account_id)
            assert closed is not None
            return closed

        account = await self._store.write(work)
        log.info("account_closed", account_id=account_id)
        return account

    async def get_account(self, account_id: str, expiring_within_us: int | None) -> AccountView:
        _require_id(account_id, "account_id")
        if expiring_within_us is not None and not 0 <= expiring_within_us <= MAX_DURATION_US:
            raise InvalidArgument(
                [FieldViolation("expiring_within", "must be between 0 and 10,000 years")]
            )
        account = await self._store.read(lambda unit: unit.find_account(account_id))
        if account is None:
            raise _account_not_found(account_id)
        now = self._clock.now_us()
        window = DEFAULT_EXPIRING_WINDOW_US if expiring_within_us is None else expiring_within_us
        expiring = (
            await self._store.read(lambda unit: unit.expiring(account_id, now, now + window))
            if account.expiring_lots
            else []
        )
        return AccountView(account, expiring)

    # -- transfers

    async def post_transfers(self, requests: list[TransferRequest]) -> list[TransferOutcome]:
        outcomes = await self.submit(requests)
        # Per call, so debug: at info it cost the hot path a JSON line per transfer call.
        log.debug("transfers_posted", batch=len(requests))
        return outcomes

    def submit(self, requests: list[TransferRequest]) -> asyncio.Future[list[TransferOutcome]]:
        """post_transfers without a coroutine of its own (a stream posts many at
        once): validates now, raising InvalidArgument, and returns what the
        outcomes will be delivered to."""
        validate_batch(requests)
        waiting = _Waiting(requests, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        if not self._flush_queued:
            self._flush_queued = True
            flush = asyncio.create_task(self._flush())
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)
        return waiting.future

    async def _flush(self) -> None:
        """Post what waits, as one unit of work in the writer's next group, until
        nothing waits. The batches that arrive while the writer is busy share one
        load (one idempotency lookup, accounts and lots read once) and one save
        (one INSERT statement per table), and are applied one after the other
        exactly as separate calls would be. One flush at a time: what arrives
        while it writes is its next turn's, so a busy ledger writes a few large
        transactions, not many small ones (on PostgreSQL, many small ones queue
        on the sequence counter: a 64-in-flight bench fell to 200 transfers/s)."""
        try:
            while self._waiting:
                shared = _SharedWork(self)
                shared.take()
                try:
                    results = await self._store.write(shared.run)
                except Exception as error:
                    if shared.broke and len(shared.taken) > 1:
                        # A batch broke the shared work: each alone, so it fails alone.
                        await self._one_by_one(shared.taken)
                    else:
                        for waiting in shared.taken:
                            _deliver(waiting, error=error)
                else:
                    for waiting, outcomes in zip(shared.taken, results, strict=True):
                        _deliver(waiting, outcomes)
        finally:
            self._flush_queued = False

    def _take_waiting(self) -> list[_Waiting]:
        """The waiting batches for one shared work, oldest first: at most MAX_BATCH
        transfers, and none past a reversal of a transfer posted earlier in it
        (its credit account's lots would not all be loaded)."""
        taken: list[_Waiting] = []
        ids: set[str] = set()
        size = 0
        while self._waiting:
            requests = self._waiting[0].requests
            if taken and (
                size + len(requests) > MAX_BATCH
                or any(r.reverses_id in ids for r in requests if r.reverses_id)
            ):
                break
            taken.append(self._waiting.pop(0))
            size += len(requests)
            ids.update(r.id for r in requests)
        return taken

    async def _one_by_one(self, batches: list[_Waiting]) -> None:
        for waiting in batches:
            try:
                (outcomes,) = await self._store.write(
                    lambda unit, w=waiting: self._apply(unit, [w.requests])
                )
            except Exception as error:
                _deliver(waiting, error=error)
            else:
                _deliver(waiting, outcomes)

    def _apply(
        self, unit: LedgerUnit, batches: list[list[TransferRequest]]
    ) -> list[list[TransferOutcome]]:
        book = unit.load_for_batch([r for batch in batches for r in batch], self._clock.now_us())
        results = []
        for requests in batches:
            # What has already expired is settled first, so nobody spends expired
            # points or posts a timed-out hold, even between two sweeps.
            book.expire_lots(*_lots_due(book, requests))
            book.expire_holds(
                sorted({r.pending_id for r in requests if r.pending_id in book.holds})
            )
            results.append(book.post(requests))
        unit.save(book)
        return results

    async def get_transfer(self, transfer_id: str) -> tuple[Transfer, int, PendingState]:
        _require_id(transfer_id, "transfer_id")
        found = await self._store.read(lambda unit: unit.get_transfer(transfer_id))
        if found is None:
            raise NotFound(
                "TRANSFER_NOT_FOUND", f"no transfer {transfer_id}", {"transfer_id": transfer_id}
            )
        return found

    async def list_transfers(
        self,
        account_id: str,
        start: int | None,
        end: int | None,
        codes: Sequence[int],
        requested_size: int,
        page_token: str,
    ) -> Page[Transfer]:
        violations = Violations()
        check_id(violations, "account_id", account_id, LEDGER_ID)
        size = page_size(violations, requested_size, MAX_PAGE_SIZE)
        violations.check(
            all(code in TransferCode._value2member_map_ and code != 0 for code in codes),
            "codes",
            "unknown transfer code",
        )
        if start is not None and end is not None:
            violations.check(end > start, "end_time", "must be after start_time")
        violations.raise_if_any()
        query = (account_id, start, end, sorted(codes))
        after = decode_page_token(page_token, query, int)
        if await self._store.read(lambda unit: unit.find_account(account_id)) is None:
            raise _account_not_found(account_id)
        rows = await self._store.read(
            lambda unit: unit.list_transfers(account_id, after or 0, start, end, codes, size + 1)
        )
        return page_of(rows, size, lambda transfer: transfer.sequence, query)

    async def balance_at(self, account_id: str, moment: int | None) -> tuple[int, int]:
        _require_id(account_id, "account_id")
        if moment is None:
            raise InvalidArgument([FieldViolation("time", "required")])
        if await self._store.read(lambda unit: unit.find_account(account_id)) is None:
            raise _account_not_found(account_id)
        last = await self._store.read(lambda unit: unit.last_transfer_at(account_id, moment))
        if last is None:
            return 0, 0
        return last.balance_after(account_id), last.sequence

    async def totals(self, unit: str) -> list[KindTotal]:
        if unit != POINTS and not PRIZE_UNIT.matches(unit):
            raise InvalidArgument(
                [FieldViolation("unit", f'must be "points" or "prize:<slug>", got {shown(unit)}')]
            )
        return await self._store.read(lambda unit_of_work: unit_of_work.totals(unit))

    # -- the ledger's own work

    async def sweep(self) -> SweepReport:
        """Expire lots and holds whose time has come, in bounded transactions."""
        total = SweepReport()
        while True:

            def work(unit: LedgerUnit) -> tuple[SweepReport, bool]:
                book, lot_accounts, hold_ids = unit.load_expired(self._clock.now_us(), SWEEP_LIMIT)
                expired = book.expire_lots(lot_accounts)
                voided = book.expire_holds(hold_ids)
                unit.save(book)
                report = SweepReport(len(expired), sum(t.amount for t in expired), len(voided))
                return report, len(lot_accounts) == SWEEP_LIMIT or len(hold_ids) == SWEEP_LIMIT

            report, more = await self._store.write(work)
            total = SweepReport(
                total.lots_expired + report.lots_expired,
                total.amount_expired + report.amount_expired,
                total.pending_expired + report.pending_expired,
            )
            if not more:
                break
        if total.lots_expired or total.pending_expired:
            log.info(
                "expiry_swept",
                lots_expired=total.lots_expired,
                amount_expired=total.amount_expired,
                pending_expired=total.pending_expired,
            )
        return total

    async def run_sweeper(self, interval_seconds: float) -> None:
        """Sweep on a schedule read from the injected clock."""
        interval = int(interval_seconds * MICROS_PER_SECOND)
        while True:
            await self._clock.sleep_until(self._clock.now_us() + interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("expiry_sweep_failed")

    async def watch(self, after_sequence: int, account_id: str) -> AsyncIterator[Transfer]:
        """Every committed transfer after `after_sequence`, in commit order, forever."""
        if account_id:
            _require_id(account_id, "account_id")
            if await self._store.read(lambda unit: unit.find_account(account_id)) is None:
                raise _account_not_found(account_id)

        async def page(after: int) -> list[Transfer]:
            return await self._store.read(
                lambda unit: unit.transfers_after(after, account_id, FEED_PAGE)
            )

        async for transfer in serve_pages(page, after_sequence, self._commits):
            yield transfer


def _require_id(value: str, field: str) -> None:
    """Ids on reads follow the same rules as on writes, so a malformed one is
    INVALID_ARGUMENT rather than NOT_FOUND."""
    violations = Violations()
    check_id(violations, field, value, LEDGER_ID)
    violations.raise_if_any()


def _account_not_found(account_id: str) -> NotFound:
    return NotFound("ACCOUNT_NOT_FOUND", f"no account {account_id}", {"account_id": account_id})
