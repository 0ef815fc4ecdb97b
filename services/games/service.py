"""Use cases of the games service: validation, idempotency and settlement
through the kit's LedgerOutbox, over the store.

A spin, step by step (each member's spins run one at a time, so nonces stay in order):
1. a pending spin of the member is settled first (it holds the current nonce);
2. if the spin costs points, the member's balance is checked: too little is
   FAILED_PRECONDITION with nothing drawn and the nonce unchanged;
3. one writer transaction checks the daily limit, draws, decides the landing
   (known sold-out segments and win caps give the fallback), stores the spin as
   pending, appends the audit entry and records the ledger chain in the outbox;
4. the chain is posted; the result is applied in one more transaction: settled
   (nonce + 1), or the pool could not pay (the segment is marked sold out in a new
   odds version and a fallback chain with its own ids is recorded and posted), or
   the member could not pay (rejected, nonce unchanged).
If the process dies anywhere, the outbox relay posts the recorded chain again
(same ids: the ledger commits it once) and applies the result the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import structlog
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from services.games import domain, ledger, store
from services.games.store import GamesStore, PlayEntry, SeedPair, SpinRecord
from services.kit.clock import Clock, to_datetime
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
    Violations,
)
from services.kit.outbox import LedgerOutbox, Settled, all_accepted

if TYPE_CHECKING:
    from services.games.catch import CatchService

log = structlog.get_logger()

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
FALLBACK_SUFFIX = ":fallback"
CATCH_ENTRY_PREFIX = "catch:"
FAILED_CODES_NAME = ledger_pb.TransferResultCode.Name


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: Counter[str] = Counter()

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] += 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                del self._locks[key]

    def held(self, key: str) -> bool:
        return key in self._locks and self._locks[key].locked()


@dataclass(frozen=True, slots=True)
class Allowance:
    member_id: str
    unlimited: bool
    spins_left: int
    reset_us: int
    cost_points: int


@dataclass(frozen=True, slots=True)
class SpinView:
    spin: SpinRecord
    pair: SeedPair
    wheel: store.WheelVersion
    spins_left: int
    points_balance: int | None


@dataclass(frozen=True, slots=True)
class Recorded:
    """A drawn spin as recorded, its chain, and what its response will show."""

    spin: SpinRecord
    request: ledger_pb.PostTransfersRequest
    view: SpinView


@dataclass(frozen=True, slots=True)
class Verification:
    view: SpinView
    draw: domain.Draw
    verified: bool


@dataclass(frozen=True, slots=True)
class WheelStats:
    version: int
    counts: list[int]
    fit: domain.GoodnessOfFit


def page_size(requested: int, violations: Violations) -> int:
    violations.check(requested >= 0, "page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def check_id(value: str, field: str, violations: Violations, pattern=domain.ID_PATTERN) -> None:
    violations.check(pattern.fullmatch(value) is not None, field, f"must match {pattern.pattern}")


class _SpinRefused(Exception):
    """Raised out of the writer so nothing of the attempt is kept."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class GameUseCases:
    """What both games work over. Both share `members`: one member's plays,
    spins and catch submissions alike, run one at a time."""

    def __init__(
        self,
        games_store: GamesStore,
        accounts: ledger.GamesLedger,
        outbox: LedgerOutbox,
        clock: Clock,
        members: KeyedLocks,
        seed_source: Callable[[], bytes] = lambda: secrets.token_bytes(domain.SERVER_SEED_BYTES),
    ) -> None:
        self._store = games_store
        self._writer = games_store.writer
        self._accounts = accounts
        self._outbox = outbox
        self._clock = clock
        self._members = members
        self._new_seed = seed_source


class GamesService(GameUseCases):
    """Spin-the-wheel, the audit log and recovery; catch-to-earn is CatchService."""

    def __init__(self, *args, catch: CatchService, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._catch = catch

    # ------------------------------------------------------------ wheels

    async def create_wheel(
        self, wheel_id: str, config: domain.WheelConfig
    ) -> tuple[store.WheelVersion, bool]:
        violations = Violations()
        check_id(wheel_id, "wheel_id", violations)
        violations.raise_if_any()
        domain.validate_wheel_config(config)
        now = self._clock.now_us()

        def create(connection):
            existing = store.wheel_version(connection, wheel_id)
            created = create_once(
                existing.config if existing else None,
                config,
                lambda: store.insert_wheel(connection, wheel_id, config, now),
                AlreadyExists(
                    "WHEEL_EXISTS_WITH_DIFFERENT_CONFIG",
                    f"wheel {wheel_id} exists with another configuration; use UpdateWheel",
                    {"wheel_id": wheel_id},
                ),
            )
            return store.wheel_version(connection, wheel_id), created

        wheel, created = await self._writer.submit(create)
        if created:
            log.info("wheel_created", wheel_id=wheel_id, config_sha256=wheel.config_sha256)
        return wheel, created

    async def update_wheel(
        self, wheel_id: str, config: domain.WheelConfig, expected_version: int
    ) -> store.WheelVersion:
        violations = Violations()
        check_id(wheel_id, "wheel_id", violations)
        violations.check(expected_version >= 0, "expected_odds_version", "must not be negative")
        violations.raise_if_any()
        domain.validate_wheel_config(config)
        now = self._clock.now_us()

        def update(connection):
            current = self._wheel_or_raise(connection, wheel_id)
            if expected_version and current.version != expected_version:
                raise FailedPrecondition(
                    "ODDS_VERSION_CHANGED",
                    f"the current odds version is {current.version}, not {expected_version}",
                    {"odds_version": str(current.version)},
                )
            store.insert_wheel_version(connection, wheel_id, config, (), now)
            return store.wheel_version(connection, wheel_id)

        wheel = await self._writer.submit(update)
        log.info("wheel_updated", wheel_id=wheel_id, odds_version=wheel.version)
        return wheel

    @staticmethod
    def _wheel_or_raise(connection, wheel_id: str, version: int = 0) -> store.WheelVersion:
        wheel = store.wheel_version(connection, wheel_id, version)
        if wheel is None:
            raise wheel_not_found(wheel_id, version)
        return wheel

    async def get_wheel(
        self, wheel_id: str, member_id: str, version: int
    ) -> tuple[store.WheelVersion, Allowance | None]:
        violations = Violations()
        check_id(wheel_id, "wheel_id", violations)
        if member_id:
            check_id(member_id, "member_id", violations, domain.MEMBER_ID_PATTERN)
        violations.check(version >= 0, "odds_version", "must not be negative")
        violations.raise_if_any()
        now = self._clock.now_us()

        def read(connection):
            wheel = self._wheel_or_raise(connection, wheel_id, version)
            allowance = self._allowance(connection, wheel, member_id, now) if member_id else None
            return wheel, allowance

        return await self._writer.submit(read)

    @staticmethod
    def _allowance(connection, wheel: store.WheelVersion, member_id: str, now_us: int) -> Allowance:
        config = wheel.config
        zone = domain.zone_of(config.time_zone)
        used = store.spins_today(
            connection, wheel.wheel_id, member_id, domain.local_day(now_us, zone).isoformat()
        )
        limit = config.spins_per_day
        return Allowance(
            member_id=member_id,
            unlimited=limit == 0,
            spins_left=max(0, limit - used) if limit else 0,
            reset_us=domain.next_day_start_us(now_us, zone),
            cost_points=config.cost_points,
        )

    async def list_wheels(
        self, requested_size: int, page_token: str
    ) -> tuple[list[store.WheelVersion], str]:
        violations = Violations()
        size = page_size(requested_size, violations)
        violations.raise_if_any()
        wheels = await self._store.list_wheels(page_token, size + 1)
        if len(wheels) > size:
            return wheels[:size], wheels[size - 1].wheel_id
        return wheels, ""

    async def stock_wheel(
        self, wheel_id: str, unit: str, quantity: int, request_id: str
    ) -> tuple[str, int, str, store.WheelVersion]:
        violations = Violations()
        check_id(wheel_id, "wheel_id", violations)
        check_id(request_id, "request_id", violations, domain.REQUEST_ID_PATTERN)
        violations.check(quantity >= 1, "quantity", "must be at least 1")
        violations.raise_if_any()
        wheel = await self._writer.submit(lambda c: self._wheel_or_raise(c, wheel_id))
        if unit not in wheel.config.prize_units:
            raise InvalidArgument(
                [FieldViolation("unit", f"the wheel pays from {wheel.config.prize_units}")]
            )
        await self._accounts.ensure(ledger.issuance(unit), ledger.pool(wheel_id, unit))
        request = ledger.funding(wheel_id, unit, quantity, request_id)
        (result,) = (await self._accounts.post(request)).results
        if result.code == ledger_pb.TRANSFER_RESULT_CODE_EXISTS_WITH_DIFFERENT_FIELDS:
            raise AlreadyExists(
                "REQUEST_ID_REUSED",
                f"request id {request_id} already stocked this pool with another quantity",
                {"field": result.field},
            )
        if result.code not in (
            ledger_pb.TRANSFER_RESULT_CODE_OK,
            ledger_pb.TRANSFER_RESULT_CODE_EXISTS,
        ):
            raise FailedPrecondition(
                "STOCKING_REFUSED",
                f"the ledger refused the stocking: {FAILED_CODES_NAME(result.code)}",
                {"ledger_code": FAILED_CODES_NAME(result.code), "field": result.field},
            )
        restocked = domain.segments_paid_from(wheel.config, unit)
        now = self._clock.now_us()

        def clear_sold_out(connection):
            current = store.wheel_version(connection, wheel_id)
            remaining = [i for i in current.sold_out if i not in restocked]
            if len(remaining) != len(current.sold_out):
                store.insert_wheel_version(connection, wheel_id, current.config, remaining, now)
            return store.wheel_version(connection, wheel_id)

        wheel = await self._writer.submit(clear_sold_out)
        pool_id = domain.pool_account(wheel_id, unit)
        stock = await self._accounts.available(pool_id)
        log.info("wheel_stocked", wheel_id=wheel_id, unit=unit, quantity=quantity, stock=stock)
        return pool_id, stock, result.transfer.id, wheel

    # ------------------------------------------------------------ seeds

    def _active_pair(self, connection, member_id: str, now_us: int) -> SeedPair:
        pair = store.active_seed_pair(connection, member_id)
        if pair is None:
            # The first client seed is random too, until the member chooses one.
            pair = store.insert_seed_pair(
                connection, member_id, self._new_seed(), secrets.token_hex(8), now_us
            )
        return pair

    async def get_seed_pair(self, member_id: str) -> SeedPair:
        violations = Violations()
        check_id(member_id, "member_id", violations, domain.MEMBER_ID_PATTERN)
        violations.raise_if_any()
        now = self._clock.now_us()
        return await self._writer.submit(lambda c: self._active_pair(c, member_id, now))

    async def set_client_seed(self, member_id: str, client_seed: str) -> SeedPair:
        violations = Violations()
        check_id(member_id, "member_id", violations, domain.MEMBER_ID_PATTERN)
        check_id(client_seed, "client_seed", violations, domain.CLIENT_SEED_PATTERN)
        violations.raise_if_any()
        now = self._clock.now_us()
        async with self._members.hold(member_id):

            def change(connection):
                self._refuse_while_pending(connection, member_id)
                pair = self._active_pair(connection, member_id, now)
                store.set_client_seed(connection, pair.pair_id, client_seed)
                return replace(pair, client_seed=client_seed)

            return await self._writer.submit(change)

    @staticmethod
    def _refuse_while_pending(connection, member_id: str) -> None:
        pending = store.pending_spin_of(connection, member_id)
        if pending is not None:
            raise FailedPrecondition(
                "SPIN_IN_PROGRESS",
                "a spin of this member is being settled; try again shortly",
                {"spin_id": pending.spin_id},
            )

    async def rotate_seed(self, member_id: str, client_seed: str) -> tuple[SeedPair, SeedPair]:
        violations = Violations()
        check_id(member_id, "member_id", violations, domain.MEMBER_ID_PATTERN)
        if client_seed:
            check_id(client_seed, "client_seed", violations, domain.CLIENT_SEED_PATTERN)
        violations.raise_if_any()
        if self._members.held(member_id):
            raise FailedPrecondition(
                "SPIN_IN_PROGRESS", "a spin of this member is being settled; try again shortly"
            )
        now = self._clock.now_us()
        async with self._members.hold(member_id):

            def rotate(connection):
                self._refuse_while_pending(connection, member_id)
                old = self._active_pair(connection, member_id, now)
                store.reveal_seed_pair(connection, old.pair_id, now)
                new = store.insert_seed_pair(
                    connection, member_id, self._new_seed(), client_seed or old.client_seed, now
                )
                return replace(old, revealed_us=now), new

            revealed, new = await self._writer.submit(rotate)
        log.info("seed_rotated", member_id=member_id, revealed=revealed.commitment)
        return revealed, new

    # ------------------------------------------------------------ spins

    async def spin(self, wheel_id: str, member_id: str, request_id: str) -> SpinView:
        violations = Violations()
        check_id(wheel_id, "wheel_id", violations)
        check_id(member_id, "member_id", violations, domain.MEMBER_ID_PATTERN)
        check_id(request_id, "request_id", violations, domain.REQUEST_ID_PATTERN)
        violations.raise_if_any()
        spin_id = domain.spin_id(member_id, request_id)
        async with self._members.hold(member_id):
            existing, pending, wheel = await self._store.spin_context(spin_id, member_id, wheel_id)
            if existing is not None:
                if existing.wheel_id != wheel_id:
                    raise AlreadyExists(
                        "REQUEST_ID_REUSED",
                        f"request id {request_id} was used for wheel {existing.wheel_id}",
                        {"spin_id": spin_id},
                    )
                finished = await self._finish(existing)
                if finished.status == "rejected":
                    raise spin_refused(finished)
                return await self._view(finished)
            if pending is not None:
                # It holds the member's current nonce, so it must end first.
                await self._finish(pending)
            if wheel is None:
                raise wheel_not_found(wheel_id)
            config = wheel.config
            await self._accounts.ensure(
                ledger.member_wallet(member_id, domain.POINTS),
                ledger.REVENUE,
                *(ledger.member_wallet(member_id, unit) for unit in config.prize_units),
                *(ledger.pool(wheel_id, unit) for unit in config.prize_units),
            )
            if config.cost_points:
                available = await self._accounts.probably_available(member_id, config.cost_points)
                if available < config.cost_points:
                    await self._reject_before_draw(
                        spin_id, wheel_id, member_id, "INSUFFICIENT_POINTS"
                    )
                    raise FailedPrecondition(
                        "INSUFFICIENT_POINTS",
                        f"a spin costs {config.cost_points} points; {available} available",
                        {"cost_points": str(config.cost_points), "available": str(available)},
                    )
            now = self._clock.now_us()
            try:
                recorded = await self._writer.submit(
                    lambda c: self._draw_and_record(
                        c, spin_id, wheel_id, member_id, request_id, now
                    )
                )
            except _SpinRefused as refused:
                reason = getattr(refused.error, "reason", "REFUSED")
                await self._reject_before_draw(spin_id, wheel_id, member_id, reason)
                raise refused.error from None
            settled = await self._settle(recorded.spin, recorded.request)
            self._accounts.remember(member_id, settled.points_balance_after)
            if settled.status == "rejected":
                raise spin_refused(settled)
            # The seed pair cannot rotate and the day's count cannot move while
            # this member's lock is held, so what the record saw still holds.
            return await self._view(settled, replace(recorded.view, spin=settled))

    def _draw_and_record(
        self, connection, spin_id: str, wheel_id: str, member_id: str, request_id: str, now: int
    ) -> Recorded:
        wheel = self._wheel_or_raise(connection, wheel_id)
        config = wheel.config
        if not domain.in_window(config, now):
            raise _SpinRefused(
                FailedPrecondition(
                    "WHEEL_NOT_ACTIVE", f"wheel {wheel_id} is outside its active window"
                )
            )
        zone = domain.zone_of(config.time_zone)
        day = domain.local_day(now, zone).isoformat()
        used = store.spins_today(connection, wheel_id, member_id, day)
        if config.spins_per_day and used >= config.spins_per_day:
            raise _SpinRefused(
                ResourceExhausted(
                    "SPIN_LIMIT_REACHED",
                    f"{config.spins_per_day} spins per day; the next day starts at "
                    f"{to_datetime(domain.next_day_start_us(now, zone)).isoformat()}",
                    {"spins_per_day": str(config.spins_per_day)},
                )
            )
        pair = self._active_pair(connection, member_id, now)
        draw = domain.draw_segment(
            pair.server_seed, pair.client_seed, pair.next_nonce, config.weights
        )
        wins = store.wins_today(connection, wheel_id, member_id, day, draw.segment_index)
        landing = domain.land(config, draw.segment_index, wheel.sold_out, wins)
        spin = SpinRecord(
            spin_id=spin_id,
            wheel_id=wheel_id,
            version=wheel.version,
            member_id=member_id,
            request_id=request_id,
            pair_id=pair.pair_id,
            client_seed=pair.client_seed,
            nonce=pair.next_nonce,
            draw_value=draw.value,
            drawn_index=draw.segment_index,
            landed_index=landing.segment_index,
            fallback_reason=landing.fallback_reason,
            prize=landing.prize,
            status="pending",
            reason=None,
            entry_id=spin_id,
            transfer_ids=(),
            points_balance_after=None,
            day=day,
            spins_today=used + 1,
            create_us=now,
        )
        request = ledger.spin_chain(spin_id, wheel_id, member_id, config.cost_points, landing.prize)
        store.insert_spin(connection, spin)
        self._append_spin_play(connection, spin, "pending", now)
        if request.transfers:
            self._outbox.record(connection, spin_id, request, now)
        else:
            # Nothing to post (a free spin that wins nothing): settled right here.
            spin = self._mark_settled(connection, spin, None, now)
        spins_left = max(0, config.spins_per_day - used - 1) if config.spins_per_day else 0
        return Recorded(spin, request, SpinView(spin, pair, wheel, spins_left, None))

    def _append_spin_play(self, connection, spin: SpinRecord, status: str, now: int) -> None:
        pair = store.seed_pair_by_id(connection, spin.pair_id)
        settled = status in ("settled", "fallback")
        store.append_play(
            connection,
            PlayEntry(
                play_id=spin.spin_id,
                kind="spin",
                game_id=spin.wheel_id,
                member_id=spin.member_id,
                status=status,
                reason=spin.reason or spin.fallback_reason,
                create_us=now,
                detail={
                    "proof": {
                        "server_seed_sha256": pair.commitment,
                        "client_seed": spin.client_seed,
                        "nonce": spin.nonce,
                        "odds_version": spin.version,
                        # A rejected spin's draw stays secret: its nonce is drawn again.
                        **(
                            {}
                            if status == "rejected"
                            else {"draw_value": spin.draw_value, "drawn_index": spin.drawn_index}
                        ),
                    },
                    "landed_segment_index": spin.landed_index if status != "rejected" else -1,
                    "prize": {
                        "points": spin.prize.points,
                        "unit": spin.prize.unit,
                        "quantity": spin.prize.quantity,
                    },
                    "transfer_ids": list(spin.transfer_ids),
                    "counters_before": {"nonce": spin.nonce, "spins_today": spin.spins_today - 1},
                    "counters_after": {
                        "nonce": spin.nonce + (1 if settled else 0),
                        "spins_today": spin.spins_today - (0 if status != "rejected" else 1),
                    },
                },
            ),
        )

    async def _reject_before_draw(
        self, spin_id: str, wheel_id: str, member_id: str, reason: str
    ) -> None:
        now = self._clock.now_us()
        await self._writer.submit(
            lambda c: store.append_play(
                c,
                PlayEntry(spin_id, "spin", wheel_id, member_id, "rejected", reason, now),
            )
        )
        log.info("spin_rejected", spin_id=spin_id, reason=reason)

    async def _finish(self, spin: SpinRecord) -> SpinRecord:
        """A recorded spin as it ends: a pending one is settled now. Its chain is
        rebuilt from the record, the same request the outbox holds."""
        if spin.status != "pending":
            return spin
        wheel = await self._writer.submit(
            lambda c: store.wheel_version(c, spin.wheel_id, spin.version)
        )
        request = ledger.spin_chain(
            spin.spin_id,
            spin.wheel_id,
            spin.member_id,
            wheel.config.cost_points,
            spin.prize,
            attempt="fallback:" if spin.entry_id.endswith(FALLBACK_SUFFIX) else "",
        )
        return await self._settle(spin, request)

    async def _settle(
        self, spin: SpinRecord, request: ledger_pb.PostTransfersRequest
    ) -> SpinRecord:
        if not request.transfers:
            return spin  # settled when it was recorded
        response = await self._outbox.settle(spin.entry_id, request)
        return await self._apply_spin(spin.entry_id, response)

    async def on_settled(self, settled: Settled) -> None:
        """The outbox relay's handler: applies what a recovered settlement means."""
        if settled.entry_id.startswith(CATCH_ENTRY_PREFIX):
            await self._catch.apply(settled.entry_id, settled.response)
            return
        spin = await self._apply_spin(settled.entry_id, settled.response)
        log.info("spin_recovered", spin_id=spin.spin_id, status=spin.status)

    async def _apply_spin(
        self, entry_id: str, response: ledger_pb.PostTransfersResponse
    ) -> SpinRecord:
        spin_id = entry_id.removesuffix(FALLBACK_SUFFIX)
        now = self._clock.now_us()

        def apply(connection):
            spin = store.spin_by_id(connection, spin_id)
            if spin.status != "pending" or spin.entry_id != entry_id:
                return spin, None  # applied already by another task
            if all_accepted(response):
                return self._mark_settled(connection, spin, response, now), None
            failure = first_failure(response)
            failed_transfer = response.results[failure].id if failure is not None else ""
            code = FAILED_CODES_NAME(response.results[failure].code) if failure is not None else ""
            pool_empty = failed_transfer.endswith(":prize") and code.endswith(
                "INSUFFICIENT_BALANCE"
            )
            if pool_empty and not entry_id.endswith(FALLBACK_SUFFIX):
                return self._fall_back(connection, spin, now)
            reason = (
                "INSUFFICIENT_POINTS"
                if failed_transfer.endswith(":cost") and code.endswith("INSUFFICIENT_BALANCE")
                else f"LEDGER_{code.removeprefix('TRANSFER_RESULT_CODE_')}"
            )
            rejected = replace(spin, status="rejected", reason=reason)
            store.update_spin(connection, spin_id, now, status="rejected", reason=reason)
            self._append_spin_play(connection, rejected, "rejected", now)
            log.info("spin_rejected", spin_id=spin_id, reason=reason)
            return rejected, None

        spin, fallback_request = await self._writer.submit(apply)
        if fallback_request is not None:
            return await self._settle(spin, fallback_request)
        return spin

    def _mark_settled(self, connection, spin, response, now) -> SpinRecord:
        results = response.results if response else ()
        ids = tuple(result.transfer.id for result in results)
        balance = next(
            (
                value
                for result in reversed(results)
                if (value := member_points_balance(result.transfer, spin.spin_id)) is not None
            ),
            None,
        )
        settled = replace(spin, status="settled", transfer_ids=ids, points_balance_after=balance)
        store.update_spin(
            connection,
            spin.spin_id,
            now,
            status="settled",
            transfer_ids=ids,
            points_balance_after=balance,
        )
        store.advance_nonce(connection, spin.pair_id)
        self._append_spin_play(
            connection, settled, "fallback" if spin.fallback_reason else "settled", now
        )
        log.info(
            "spin_settled",
            spin_id=spin.spin_id,
            landed=spin.landed_index,
            fallback_reason=spin.fallback_reason,
        )
        return settled

    def _fall_back(self, connection, spin: SpinRecord, now: int):
        """The pool could not pay: publish the segment as sold out (a new odds
        version) and record the fallback chain under its own ids."""
        current = store.wheel_version(connection, spin.wheel_id)
        drawn_prize = spin.prize
        sold_out = set(current.sold_out) | {
            index
            for index in domain.segments_paid_from(current.config, drawn_prize.pool_unit)
            if current.config.segments[index].prize.amount >= drawn_prize.amount
        }
        if sold_out != set(current.sold_out):
            store.insert_wheel_version(
                connection, spin.wheel_id, current.config, sorted(sold_out), now
            )
        drawn_version = store.wheel_version(connection, spin.wheel_id, spin.version)
        fallback = drawn_version.config.fallback_segment_index
        prize = drawn_version.config.segments[fallback].prize
        entry_id = spin.spin_id + FALLBACK_SUFFIX
        changed = replace(
            spin,
            landed_index=fallback,
            fallback_reason=domain.FallbackReason.SOLD_OUT,
            prize=prize,
            entry_id=entry_id,
        )
        store.update_spin(
            connection,
            spin.spin_id,
            now,
            landed_index=fallback,
            fallback_reason=domain.FallbackReason.SOLD_OUT,
            prize=prize,
            entry_id=entry_id,
        )
        request = ledger.spin_chain(
            spin.spin_id,
            spin.wheel_id,
            spin.member_id,
            drawn_version.config.cost_points,
            prize,
            attempt="fallback:",
        )
        log.info("spin_fell_back", spin_id=spin.spin_id, reason="SOLD_OUT")
        if not request.transfers:
            return self._mark_settled(connection, changed, None, now), None
        self._outbox.record(connection, entry_id, request, now)
        return changed, request

    async def _view(self, spin: SpinRecord, known: SpinView | None = None) -> SpinView:
        """What a spin response shows; `known` spares reading what the caller has."""
        balance = spin.points_balance_after
        if balance is None:
            # The spin moved none of the member's points: read the balance, if
            # the ledger answers; the spin itself is settled either way.
            with contextlib.suppress(Unavailable):
                balance = await self._accounts.available(spin.member_id)
        if known is not None:
            return replace(known, points_balance=balance)

        def read(connection):
            pair = store.seed_pair_by_id(connection, spin.pair_id)
            wheel = store.wheel_version(connection, spin.wheel_id, spin.version)
            allowance = self._allowance(connection, wheel, spin.member_id, self._clock.now_us())
            return SpinView(spin, pair, wheel, allowance.spins_left, balance)

        return await self._writer.submit(read)

    async def verify_spin(self, spin_id: str) -> Verification:
        violations = Violations()
        violations.check(
            domain.ID_PATTERN.fullmatch(spin_id) is not None, "spin_id", "must be a spin id"
        )
        violations.raise_if_any()
        spin = await self._writer.submit(lambda c: store.spin_by_id(c, spin_id))
        if spin is None or spin.status == "rejected":
            raise NotFound("SPIN_NOT_FOUND", f"no settled spin {spin_id}", {"spin_id": spin_id})
        view = await self._view(spin)
        if view.pair.revealed_us is None:
            raise FailedPrecondition(
                "SEED_NOT_REVEALED",
                "the server seed of this spin is still in use; RotateSeed reveals it",
                {"server_seed_sha256": view.pair.commitment},
            )
        draw = domain.draw_segment(
            view.pair.server_seed, spin.client_seed, spin.nonce, view.wheel.config.weights
        )
        verified = (
            domain.seed_commitment(view.pair.server_seed) == view.pair.commitment
            and draw.value == spin.draw_value
            and draw.segment_index == spin.drawn_index
        )
        return Verification(view, draw, verified)

    async def wheel_stats(self, wheel_id: str, version: int) -> WheelStats:
        violations = Violations()
        check_id(wheel_id, "wheel_id", violations)
        violations.check(version >= 0, "odds_version", "must not be negative")
        violations.raise_if_any()
        wheel = await self._writer.submit(lambda c: self._wheel_or_raise(c, wheel_id, version))
        counts_by_index = await self._store.draw_counts(wheel_id, wheel.version)
        counts = [counts_by_index.get(i, 0) for i in range(len(wheel.config.segments))]
        return WheelStats(
            wheel.version, counts, domain.chi_square_test(counts, wheel.config.weights)
        )

    # ------------------------------------------------------------ audit

    async def list_plays(
        self,
        member_id: str,
        game_id: str,
        start_us: int | None,
        end_us: int | None,
        requested_size: int,
        page_token: str,
    ) -> tuple[list[store.PlayRecord], str]:
        violations = Violations()
        if member_id:
            check_id(member_id, "member_id", violations, domain.MEMBER_ID_PATTERN)
        if game_id:
            check_id(game_id, "game_id", violations)
        violations.check(bool(member_id or game_id), "member_id", "give member_id, game_id or both")
        size = page_size(requested_size, violations)
        after = decode_offset(page_token, violations)
        if start_us is not None and end_us is not None:
            violations.check(start_us < end_us, "end_time", "must be after start_time")
        violations.raise_if_any()
        plays = await self._store.list_plays(
            member_id, game_id, start_us or 0, end_us or 2**62, after, size + 1
        )
        # Sequences follow commit order, and entries are appended with the clock's
        # time, so paging by sequence keeps time order.
        if len(plays) > size:
            return plays[:size], str(plays[size - 1].sequence)
        return plays, ""

    # ------------------------------------------------------------ recovery

    async def settle_pending(self) -> int:
        return await self._outbox.settle_pending(self.on_settled)

    async def relay(self, interval_seconds: float) -> None:
        await self._outbox.relay(self.on_settled, interval_seconds)


def create_once(
    existing_config, config, insert: Callable[[], object], conflict: AlreadyExists
) -> bool:
    """Idempotent creation by id: insert when absent, accept the same
    configuration again, refuse another one. True when this call inserted."""
    if existing_config is None:
        insert()
        return True
    if existing_config != config:
        raise conflict
    return False


def decode_offset(token: str, violations: Violations) -> int:
    if not token:
        return 0
    if not token.isdigit() or len(token) > 18:
        violations.add("page_token", "is not a token this service issued")
        return 0
    return int(token)


def first_failure(response: ledger_pb.PostTransfersResponse) -> int | None:
    """The index of the transfer that caused a chain to fail."""
    for index, result in enumerate(response.results):
        if result.code not in (
            ledger_pb.TRANSFER_RESULT_CODE_OK,
            ledger_pb.TRANSFER_RESULT_CODE_EXISTS,
            ledger_pb.TRANSFER_RESULT_CODE_LINKED_TRANSFER_FAILED,
        ):
            return index
    return None


def member_points_balance(transfer: ledger_pb.Transfer, spin_id: str) -> int | None:
    """The member's points balance after a transfer of this spin, if it touched it."""
    if not transfer.id.startswith(f"spin:{spin_id}:"):
        return None
    if transfer.code == ledger_pb.TRANSFER_CODE_GAME_COST:
        return transfer.debit_balance_after
    # Points prizes go to the member's id itself; prize units to "<member>/<unit>".
    if (
        transfer.code == ledger_pb.TRANSFER_CODE_GAME_PRIZE
        and "/" not in transfer.credit_account_id
    ):
        return transfer.credit_balance_after
    return None


def wheel_not_found(wheel_id: str, version: int = 0) -> NotFound:
    return NotFound(
        "WHEEL_NOT_FOUND",
        f"no wheel {wheel_id}" + (f" with odds version {version}" if version else ""),
        {"wheel_id": wheel_id},
    )


def spin_refused(spin: SpinRecord) -> FailedPrecondition:
    return FailedPrecondition(
        spin.reason or "SPIN_REJECTED",
        f"the ledger refused spin {spin.spin_id}: {spin.reason}",
        {"spin_id": spin.spin_id},
    )
