"""Wheels: create, update, read and list them, stock their prize pools, and
compare their observed draws with their odds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import structlog

from services.games.base import Games, create_once, require, wheel_not_found
from services.games.domain import calendar
from services.games.domain.calendar import Allowance
from services.games.domain.records import Stocking, StockingStatus, WheelVersion
from services.games.domain.stats import GoodnessOfFit, chi_square_test
from services.games.domain.wheel import (
    WheelConfig,
    check_update_paths,
    segments_paid_from,
    updated_config,
    validate_wheel_config,
)
from services.games.ledger import issuance, pool, stocking, stocking_id
from services.games.store import GamesUnit
from services.kit.clock import Clock
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    Violations,
)
from services.kit.ids import (
    LEDGER_ID,
    MEMBER_ID,
    REQUEST_ID,
    RESOURCE_ID,
    check_id,
    prize_pool_account,
)
from services.kit.outbox import OutboxEntry, Settlement
from services.kit.paging import Page, decode_page_token, page_of, page_size
from services.kit.text import shown

log = structlog.get_logger()

WHEEL_STOCKING = "wheel_stocking"


@dataclass(frozen=True, slots=True)
class WheelCreated:
    wheel: WheelVersion
    created: bool


@dataclass(frozen=True, slots=True)
class WheelView:
    wheel: WheelVersion
    allowance: Allowance | None


@dataclass(frozen=True, slots=True)
class Stocked:
    pool_account_id: str
    stock: int
    transfer_id: str
    wheel: WheelVersion


@dataclass(frozen=True, slots=True)
class RecordedStocking:
    """A stocking as recorded, and its entry while it is pending."""

    stocking: Stocking
    entry: OutboxEntry | None


@dataclass(frozen=True, slots=True)
class StockingApplied:
    stocking: Stocking
    wheel: WheelVersion


@dataclass(frozen=True, slots=True)
class WheelStats:
    version: int
    counts: list[int]
    fit: GoodnessOfFit


def allowance(unit: GamesUnit, wheel: WheelVersion, member_id: str, now_us: int) -> Allowance:
    config = wheel.config
    zone = calendar.zone(config.time_zone)
    used = unit.spins_today(wheel.wheel_id, member_id, calendar.local_day(now_us, zone).isoformat())
    return Allowance(
        member_id=member_id,
        unlimited=config.spins_per_day == 0,
        spins_left=calendar.spins_left(config.spins_per_day, used),
        reset_us=calendar.next_day_start_us(now_us, zone),
        cost_points=config.cost_points,
    )


def wheel_or_raise(unit: GamesUnit, wheel_id: str, version: int = 0) -> WheelVersion:
    wheel = unit.wheel_version(wheel_id, version)
    if wheel is None:
        raise wheel_not_found(wheel_id, version)
    return wheel


class StockingHandler:
    """Applies a stocking's ledger answer, in the transaction that closes its entry:
    a committed stocking clears its pool's sold-out marks in a new odds version."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def __call__(self, unit: GamesUnit, settlement: Settlement) -> StockingApplied:
        now = self._clock.now_us()
        recorded = unit.stocking(settlement.entry.entry_id)
        assert recorded is not None, settlement.entry.entry_id
        answer = settlement.answer
        if answer is not None and answer.accepted:
            done = replace(recorded, status=StockingStatus.SETTLED)
        else:
            refusal = answer.refusals[0] if answer is not None and answer.refusals else None
            reason = (
                "REQUEST_ID_REUSED"
                if refusal is not None and refusal.code == "EXISTS_WITH_DIFFERENT_FIELDS"
                else f"LEDGER_{refusal.code}"
                if refusal is not None
                else "LEDGER_INVALID_ARGUMENT"
            )
            done = replace(recorded, status=StockingStatus.REFUSED, reason=reason)
        unit.save_stocking(done, now)
        current = wheel_or_raise(unit, done.wheel_id)
        if done.status == StockingStatus.SETTLED:
            restocked = set(segments_paid_from(current.config, done.unit))
            remaining = [i for i in current.sold_out if i not in restocked]
            if len(remaining) != len(current.sold_out):
                current = unit.add_wheel_version(done.wheel_id, current.config, remaining, now)
        return StockingApplied(done, current)


class Wheels:
    def __init__(self, games: Games) -> None:
        self._games = games
        self._store = games.store

    async def create_wheel(self, wheel_id: str, config: WheelConfig) -> WheelCreated:
        require(("wheel_id", wheel_id, RESOURCE_ID))
        validate_wheel_config(config)
        now = self._games.clock.now_us()

        def create(unit: GamesUnit) -> WheelCreated:
            existing = unit.wheel_version(wheel_id)

            def insert() -> None:
                unit.insert_wheel(wheel_id, now)
                unit.add_wheel_version(wheel_id, config, (), now)

            created = create_once(
                existing.config if existing else None,
                config,
                insert,
                AlreadyExists(
                    "WHEEL_EXISTS_WITH_DIFFERENT_CONFIG",
                    f"wheel {shown(wheel_id)} exists with another configuration; use UpdateWheel",
                    {"wheel_id": wheel_id},
                ),
            )
            return WheelCreated(wheel_or_raise(unit, wheel_id), created)

        result = await self._store.write(create)
        if result.created:
            log.info("wheel_created", wheel_id=wheel_id, config_sha256=result.wheel.config_sha256)
        return result

    async def update_wheel(
        self,
        wheel_id: str,
        patch: WheelConfig,
        paths: Sequence[str],
        expected_version: int,
    ) -> WheelVersion:
        """Changes the fields `paths` names to their values in `patch` (AIP-134)."""
        violations = Violations()
        check_id(violations, "wheel_id", wheel_id, RESOURCE_ID)
        violations.check(expected_version >= 0, "expected_odds_version", "must not be negative")
        violations.raise_if_any()
        check_update_paths(paths)
        now = self._games.clock.now_us()

        def update(unit: GamesUnit) -> WheelVersion:
            current = wheel_or_raise(unit, wheel_id)
            if expected_version and current.version != expected_version:
                raise FailedPrecondition(
                    "ODDS_VERSION_CHANGED",
                    f"the current odds version is {current.version}, not {expected_version}",
                    {"odds_version": str(current.version)},
                )
            config = updated_config(current.config, patch, paths)
            validate_wheel_config(config)
            # New weights or prizes make a new wheel: sold-out marks start afresh.
            return unit.add_wheel_version(wheel_id, config, (), now)

        wheel = await self._store.write(update)
        log.info("wheel_updated", wheel_id=wheel_id, odds_version=wheel.version, fields=list(paths))
        return wheel

    async def get_wheel(self, wheel_id: str, member_id: str, version: int) -> WheelView:
        violations = Violations()
        check_id(violations, "wheel_id", wheel_id, RESOURCE_ID)
        if member_id:
            check_id(violations, "member_id", member_id, MEMBER_ID)
        violations.check(version >= 0, "odds_version", "must not be negative")
        violations.raise_if_any()
        now = self._games.clock.now_us()

        def read(unit: GamesUnit) -> WheelView:
            wheel = wheel_or_raise(unit, wheel_id, version)
            return WheelView(wheel, allowance(unit, wheel, member_id, now) if member_id else None)

        return await self._store.read(read)

    async def list_wheels(self, requested_size: int, page_token: str) -> Page[WheelVersion]:
        violations = Violations()
        size = page_size(violations, requested_size)
        violations.raise_if_any()
        query = ("wheels",)
        after = decode_page_token(page_token, query, str)
        wheels = await self._store.read(lambda unit: unit.list_wheels(after, size + 1))
        return page_of(wheels, size, lambda wheel: wheel.wheel_id, query)

    async def stock_wheel(
        self, wheel_id: str, unit_name: str, quantity: int, request_id: str
    ) -> Stocked:
        violations = Violations()
        check_id(violations, "wheel_id", wheel_id, RESOURCE_ID)
        check_id(violations, "request_id", request_id, REQUEST_ID)
        violations.check(quantity >= 1, "quantity", "must be at least 1")
        violations.raise_if_any()
        wheel = await self._store.read(lambda unit: wheel_or_raise(unit, wheel_id))
        if unit_name not in wheel.config.prize_units:
            raise InvalidArgument(
                [
                    FieldViolation(
                        "unit",
                        f"the wheel pays from {wheel.config.prize_units}, not {shown(unit_name)}",
                    )
                ]
            )
        transfer_id = stocking_id(wheel_id, unit_name, request_id)
        if not LEDGER_ID.matches(transfer_id):
            raise InvalidArgument(
                [FieldViolation("request_id", "too long for a ledger id with this wheel and unit")]
            )
        games = self._games
        await games.ledger.ensure(issuance(unit_name), pool(wheel_id, unit_name))
        now = games.clock.now_us()

        def record(unit: GamesUnit) -> RecordedStocking:
            found = unit.stocking(transfer_id)
            if found is not None:
                if found.quantity != quantity:
                    raise AlreadyExists(
                        "REQUEST_ID_REUSED",
                        f"request id {shown(request_id)} already stocked this pool with"
                        f" {found.quantity}, not {quantity}",
                        {"field": "quantity"},
                    )
                return RecordedStocking(found, unit.outbox.entry(transfer_id))
            found = Stocking(
                transfer_id,
                wheel_id,
                unit_name,
                quantity,
                request_id,
                StockingStatus.PENDING,
                None,
                now,
            )
            unit.insert_stocking(found)
            entry = unit.outbox.record(
                transfer_id,
                WHEEL_STOCKING,
                stocking(wheel_id, unit_name, quantity, request_id),
                now,
            )
            return RecordedStocking(found, entry)

        recording = await self._store.write(record)
        recorded, entry = recording.stocking, recording.entry
        if entry is not None:
            applied = await games.outbox.settle(entry)
            recorded = applied.stocking if applied is not None else None
        if recorded is None or recorded.status == StockingStatus.PENDING:
            recorded = await self._store.read(lambda unit: unit.stocking(transfer_id))
        if recorded.status == StockingStatus.REFUSED:
            if recorded.reason == "REQUEST_ID_REUSED":
                raise AlreadyExists(
                    "REQUEST_ID_REUSED",
                    f"request id {shown(request_id)} already stocked this pool differently",
                    {"field": "quantity"},
                )
            raise FailedPrecondition(
                "STOCKING_REFUSED",
                f"the ledger refused the stocking: {recorded.reason}",
                {"reason": recorded.reason or ""},
            )
        current = await self._store.read(lambda unit: wheel_or_raise(unit, wheel_id))
        pool_id = prize_pool_account(wheel_id, unit_name)
        stock = await games.ledger.available(pool_id)
        log.info("wheel_stocked", wheel_id=wheel_id, unit=unit_name, quantity=quantity, stock=stock)
        return Stocked(pool_id, stock, transfer_id, current)

    async def wheel_stats(self, wheel_id: str, version: int) -> WheelStats:
        violations = Violations()
        check_id(violations, "wheel_id", wheel_id, RESOURCE_ID)
        violations.check(version >= 0, "odds_version", "must not be negative")
        violations.raise_if_any()

        def read(unit: GamesUnit) -> WheelStats:
            wheel = wheel_or_raise(unit, wheel_id, version)
            by_index = unit.draw_counts(wheel_id, wheel.version)
            counts = [by_index.get(i, 0) for i in range(len(wheel.config.segments))]
            return WheelStats(wheel.version, counts, chi_square_test(counts, wheel.config.weights))

        return await self._store.read(read)
