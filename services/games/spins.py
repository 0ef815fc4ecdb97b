"""Spin-the-wheel: drawing a spin, settling it through the outbox, verifying it.

A spin costs two local commits:
1. one transaction checks the wheel's window and the daily limit, finds no spin
   of the member still pending (it would hold the nonce), draws from the seed
   pair, decides the landing (a segment known to be sold out, or whose daily win
   cap the member reached, gives the fallback), stores the spin as pending with
   its audit entry (which shows nothing of the draw) and records its ledger chain
   in the outbox, kind "spin";
2. the chain is posted, and closing the entry and applying the answer commit
   together (the kind's handler): settled (nonce + 1), or the pool could not pay
   (the segment is published as sold out in a new odds version and the fallback's
   chain is recorded, kind "spin_fallback", and settled the same way), or the
   member could not pay (rejected, nonce unchanged, the draw never shown).
If the process dies anywhere, the relay posts the recorded chain again (same
ids: the ledger commits it once) and applies the answer the same way.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

import structlog

from services.games.base import Games, require, wheel_not_found
from services.games.domain import calendar
from services.games.domain.draw import Draw, draw_segment, seed_commitment
from services.games.domain.records import (
    Counters,
    DrawProof,
    PlayDetail,
    PlayEntry,
    PlayKind,
    PlayStatus,
    SeedPair,
    SpinRecord,
    SpinStatus,
    WheelVersion,
)
from services.games.domain.records import (
    spin_id as derive_spin_id,
)
from services.games.domain.wheel import FallbackReason, land, sold_out_after_refusal
from services.games.ledger import REVENUE, member_wallet, pool, spin_chain, spin_transfer_ids
from services.games.store import GamesUnit
from services.games.wheels import allowance, wheel_or_raise
from services.kit.clock import Clock, to_datetime
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    ServiceError,
    Unavailable,
)
from services.kit.ids import (
    GAMES_REVENUE_ACCOUNT,
    MEMBER_ID,
    POINTS,
    REQUEST_ID,
    RESOURCE_ID,
    member_account,
    prize_pool_account,
)
from services.kit.outbox import OutboxEntry, Settlement
from services.kit.text import shown

log = structlog.get_logger()

SPIN = "spin"
SPIN_FALLBACK = "spin_fallback"
# Pending spins a draw waits for before it gives up (one is the rule; more means
# other replicas keep spinning for the same member).
MAX_BLOCKED = 3


@dataclass(frozen=True, slots=True)
class SpinView:
    """A spin as its response shows it."""

    spin: SpinRecord
    pair: SeedPair
    wheel: WheelVersion
    spins_left: int
    points_balance: int | None


@dataclass(frozen=True, slots=True)
class Known:
    """What is committed before a spin: a spin with its id, and the wheel."""

    spin: SpinRecord | None
    wheel: WheelVersion | None


@dataclass(frozen=True, slots=True)
class Recorded:
    """A drawn spin as recorded, the entry that settles it (None when there is
    nothing to post), and what its response will show."""

    spin: SpinRecord
    entry: OutboxEntry | None
    pair: SeedPair
    wheel: WheelVersion
    spins_left: int


@dataclass(frozen=True, slots=True)
class Refused:
    """A spin refused before its draw; its audit entry is written."""

    error: ServiceError


@dataclass(frozen=True, slots=True)
class Replay:
    """The spin with this request id exists already."""

    spin: SpinRecord


@dataclass(frozen=True, slots=True)
class Blocked:
    """Another spin of the member is pending: it holds the nonce and ends first."""

    pending: SpinRecord


@dataclass(frozen=True, slots=True)
class SpinApplied:
    """What settling an entry made of its spin, and the fallback chain it
    recorded when the pool could not pay."""

    spin: SpinRecord
    follow_up: OutboxEntry | None = None


@dataclass(frozen=True, slots=True)
class Verification:
    view: SpinView
    draw: Draw
    verified: bool


def spin_entry(
    spin: SpinRecord, pair: SeedPair, status: PlayStatus, now_us: int, spins_before: int
) -> PlayEntry:
    """The audit entry of a spin. A pending or rejected one carries nothing of
    its draw (records.disclosed says why)."""
    paid = status in (PlayStatus.SETTLED, PlayStatus.FALLBACK)
    proof = DrawProof(
        server_seed_sha256=pair.commitment,
        client_seed=spin.client_seed,
        nonce=spin.nonce,
        odds_version=spin.version,
        draw_value=spin.draw_value if paid else None,
        drawn_index=spin.drawn_index if paid else None,
    )
    before = Counters(nonce=spin.nonce, spins_today=spins_before)
    if status == PlayStatus.PENDING:
        detail = PlayDetail(proof=proof, counters_before=before)
    else:
        detail = PlayDetail(
            proof=proof,
            landed_index=spin.landed_index if paid else None,
            prize=spin.prize if paid else None,
            transfer_ids=spin.transfer_ids,
            counters_before=before,
            counters_after=Counters(
                nonce=spin.nonce + (1 if paid else 0),
                spins_today=spins_before + (1 if paid else 0),
            ),
        )
    reason = (
        spin.reason if status == PlayStatus.REJECTED else spin.fallback_reason if paid else None
    )
    return PlayEntry(
        spin.spin_id, PlayKind.SPIN, spin.wheel_id, spin.member_id, status, reason, now_us, detail
    )


def mark_settled(
    unit: GamesUnit, spin: SpinRecord, transfer_ids: tuple[str, ...], balance: int | None, now: int
) -> SpinRecord:
    settled = replace(
        spin, status=SpinStatus.SETTLED, transfer_ids=transfer_ids, points_balance_after=balance
    )
    unit.save_spin(settled, now)
    unit.advance_nonce(spin.pair_id)
    status = PlayStatus.FALLBACK if spin.fallback_reason else PlayStatus.SETTLED
    unit.append_play(
        spin_entry(settled, unit.seed_pair(spin.pair_id), status, now, spin.spins_today - 1)
    )
    # Per spin, so debug: at info a JSON line per spin costs the hot path.
    log.debug(
        "spin_settled",
        spin_id=spin.spin_id,
        landed=spin.landed_index,
        fallback=spin.fallback_reason,
    )
    return settled


def mark_rejected(unit: GamesUnit, spin: SpinRecord, reason: str, now: int) -> SpinRecord:
    rejected = replace(spin, status=SpinStatus.REJECTED, reason=reason)
    unit.save_spin(rejected, now)
    unit.append_play(
        spin_entry(
            rejected, unit.seed_pair(spin.pair_id), PlayStatus.REJECTED, now, spin.spins_today - 1
        )
    )
    # Nothing of the draw: its nonce is drawn again by the next spin.
    log.info("spin_rejected", spin_id=spin.spin_id, reason=reason)
    return rejected


class SpinHandlers:
    """The outbox handlers of spins, one per kind; each runs inside the
    transaction that closes its entry."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def kinds(self) -> dict:
        return {SPIN: self.settle_spin, SPIN_FALLBACK: self.settle_fallback}

    def settle_spin(self, unit: GamesUnit, settlement: Settlement) -> SpinApplied:
        return self._apply(unit, settlement, fallback=False)

    def settle_fallback(self, unit: GamesUnit, settlement: Settlement) -> SpinApplied:
        return self._apply(unit, settlement, fallback=True)

    def _apply(self, unit: GamesUnit, settlement: Settlement, fallback: bool) -> SpinApplied:
        now = self._clock.now_us()
        spin = unit.spin_settled_by(settlement.entry.entry_id)
        assert spin is not None and spin.status == SpinStatus.PENDING, settlement.entry.entry_id
        answer = settlement.answer
        if answer is None:
            return SpinApplied(mark_rejected(unit, spin, "LEDGER_INVALID_ARGUMENT", now))
        if answer.accepted:
            return SpinApplied(
                mark_settled(
                    unit, spin, answer.transfer_ids, answer.balance_after(spin.member_id), now
                )
            )
        # A transfer the chain does not hold has no refusal either.
        cost_id, prize_id = spin_transfer_ids(spin.spin_id, fallback)
        prize_refusal = answer.refusal_of(prize_id)
        if prize_refusal and prize_refusal.code == "INSUFFICIENT_BALANCE" and not fallback:
            return self._fall_back(
                unit, spin, wheel_or_raise(unit, spin.wheel_id, spin.version), now
            )
        cost_refusal = answer.refusal_of(cost_id)
        if cost_refusal and cost_refusal.code == "INSUFFICIENT_BALANCE":
            return SpinApplied(mark_rejected(unit, spin, "INSUFFICIENT_POINTS", now))
        first = answer.refusals[0].code if answer.refusals else "REFUSED"
        return SpinApplied(mark_rejected(unit, spin, f"LEDGER_{first}", now))

    def _fall_back(
        self, unit: GamesUnit, spin: SpinRecord, drawn: WheelVersion, now: int
    ) -> SpinApplied:
        """The pool could not pay: publish the segment as sold out (a new odds
        version) and record the fallback's chain under its own ids."""
        current = wheel_or_raise(unit, spin.wheel_id)
        sold_out = sold_out_after_refusal(current.config, current.sold_out, spin.prize)
        if sold_out != sorted(current.sold_out):
            unit.add_wheel_version(spin.wheel_id, current.config, sold_out, now)
        config = drawn.config
        fallback_index = config.fallback_segment_index
        prize = config.segments[fallback_index].prize
        chain = spin_chain(
            spin.spin_id, spin.wheel_id, spin.member_id, config.cost_points, prize, fallback=True
        )
        entry_id = f"{spin.spin_id}:fallback"
        changed = replace(
            spin,
            landed_index=fallback_index,
            fallback_reason=FallbackReason.SOLD_OUT,
            prize=prize,
            entry_id=entry_id,
        )
        log.info("spin_fell_back", spin_id=spin.spin_id, reason=FallbackReason.SOLD_OUT)
        if not chain.request.transfers:
            return SpinApplied(mark_settled(unit, changed, (), None, now))
        unit.save_spin(changed, now)
        return SpinApplied(changed, unit.outbox.record(entry_id, SPIN_FALLBACK, chain.request, now))


class Spins:
    def __init__(self, games: Games) -> None:
        self._games = games
        self._store = games.store
        # The newest odds version seen of each wheel, for the pay check.
        self._wheels: dict[str, WheelVersion] = {}

    async def spin(self, wheel_id: str, member_id: str, request_id: str) -> SpinView:
        require(
            ("wheel_id", wheel_id, RESOURCE_ID),
            ("member_id", member_id, MEMBER_ID),
            ("request_id", request_id, REQUEST_ID),
        )
        games = self._games
        spin_id = derive_spin_id(member_id, request_id)
        async with games.members.hold(member_id):
            # No read before the draw: its transaction finds a replay itself, and
            # the pay check works from the wheel's last version seen here.
            wheel = self._wheels.get(wheel_id)
            if wheel is None:
                known = await self._store.read(
                    lambda unit: Known(unit.spin(spin_id), unit.wheel_version(wheel_id))
                )
                if known.spin is not None:
                    return await self._replay(known.spin, wheel_id, request_id)
                if known.wheel is None:
                    raise wheel_not_found(wheel_id)
                wheel = self._seen(known.wheel)
            replay = await self._pay_check(wheel, spin_id, member_id)
            if replay is not None:
                return await self._replay(replay, wheel_id, request_id)
            outcome = await self._record(spin_id, wheel_id, member_id, request_id)
            if isinstance(outcome, Refused):
                raise outcome.error
            if isinstance(outcome, Replay):
                return await self._replay(outcome.spin, wheel_id, request_id)
            if outcome.wheel.version != wheel.version:
                # A newer version than the pay check saw: its accounts before its chain.
                await self._ensure_accounts(self._seen(outcome.wheel), member_id)
            settled = await self._settle(outcome.spin, outcome.entry)
            games.ledger.remember(member_id, settled.points_balance_after)
            if settled.status == SpinStatus.REJECTED:
                raise spin_refused(settled)
            # The seed pair cannot rotate and the day's count cannot move while
            # this spin was pending, so what the record saw still holds.
            view = SpinView(settled, outcome.pair, outcome.wheel, outcome.spins_left, None)
            return replace(view, points_balance=await self._balance(settled))

    def _seen(self, wheel: WheelVersion) -> WheelVersion:
        """Keeps the newest odds version seen of a wheel (versions never change)."""
        known = self._wheels.get(wheel.wheel_id)
        if known is None or known.version < wheel.version:
            self._wheels[wheel.wheel_id] = wheel
        return wheel

    async def _record(
        self, spin_id: str, wheel_id: str, member_id: str, request_id: str
    ) -> Recorded | Refused | Replay:
        """The draw's transaction. A pending spin of the member holds the nonce, so
        it is settled first (normally by the spin that recorded it; after a crash
        or an outage by whichever comes first, the relay or this) and the draw is
        tried again."""
        for _ in range(MAX_BLOCKED):
            now = self._games.clock.now_us()
            outcome = await self._store.write(
                lambda unit, now=now: self._draw(
                    unit, spin_id, wheel_id, member_id, request_id, now
                )
            )
            if not isinstance(outcome, Blocked):
                return outcome
            await self._finish(outcome.pending)
        raise FailedPrecondition(
            "SPIN_IN_PROGRESS",
            "another spin of this member is being settled; try again shortly",
            {"member_id": member_id},
        )

    async def _ensure_accounts(self, wheel: WheelVersion, member_id: str) -> None:
        """Opens the accounts the wheel's spins move (once per process)."""
        units = wheel.config.prize_units
        ledger = self._games.ledger
        # By id first: building the accounts' messages for every spin costs more.
        if ledger.all_opened(
            (
                member_account(member_id),
                GAMES_REVENUE_ACCOUNT,
                *(member_account(member_id, unit) for unit in units),
                *(prize_pool_account(wheel.wheel_id, unit) for unit in units),
            )
        ):
            return
        await ledger.ensure(
            member_wallet(member_id, POINTS),
            REVENUE,
            *(member_wallet(member_id, unit) for unit in units),
            *(pool(wheel.wheel_id, unit) for unit in units),
        )

    async def _pay_check(
        self, wheel: WheelVersion, spin_id: str, member_id: str
    ) -> SpinRecord | None:
        """Opens the accounts the spin moves and refuses, before anything is drawn,
        a paid spin the member's balance cannot cover. `wheel` may be older than
        the current version: a refusal is decided again on what is committed (the
        spin itself if it exists, which is replayed, and the current wheel)."""
        games = self._games
        await self._ensure_accounts(wheel, member_id)
        cost = wheel.config.cost_points
        if not cost:
            return None
        available = await games.ledger.probably_available(member_id, cost)
        if available >= cost:
            return None
        known = await self._store.read(
            lambda unit: Known(unit.spin(spin_id), unit.wheel_version(wheel.wheel_id))
        )
        if known.spin is not None:
            return known.spin
        current = self._seen(known.wheel) if known.wheel is not None else wheel
        cost = current.config.cost_points
        if available >= cost:
            return None
        error = FailedPrecondition(
            "INSUFFICIENT_POINTS",
            f"a spin costs {cost} points; {available} available",
            {"cost_points": str(cost), "available": str(available)},
        )
        now = games.clock.now_us()

        def refuse(unit: GamesUnit) -> SpinRecord | None:
            existing = unit.spin(spin_id)
            if existing is None:
                unit.append_play(rejection(spin_id, wheel.wheel_id, member_id, error.reason, now))
            return existing

        existing = await self._store.write(refuse)
        if existing is not None:
            return existing
        raise error

    def _draw(
        self,
        unit: GamesUnit,
        spin_id: str,
        wheel_id: str,
        member_id: str,
        request_id: str,
        now: int,
    ) -> Recorded | Refused | Replay | Blocked:
        existing = unit.spin(spin_id)
        if existing is not None:
            return Replay(existing)
        pending = unit.pending_spin_of(member_id)
        if pending is not None:
            return Blocked(pending)
        wheel = wheel_or_raise(unit, wheel_id)
        config = wheel.config
        refusal: ServiceError | None = None
        zone = calendar.zone(config.time_zone)
        day = calendar.local_day(now, zone).isoformat()
        used = unit.spins_today(wheel_id, member_id, day)
        if not calendar.in_window(now, config.start_us, config.end_us):
            refusal = FailedPrecondition(
                "WHEEL_NOT_ACTIVE", f"wheel {shown(wheel_id)} is outside its active window"
            )
        elif config.spins_per_day and used >= config.spins_per_day:
            # A rule of the wheel, not load: FAILED_PRECONDITION (RESOURCE_EXHAUSTED is
            # the gateway's rate limit, which a client may retry after a while).
            refusal = FailedPrecondition(
                "SPIN_LIMIT_REACHED",
                f"{config.spins_per_day} spins per day; the next day starts at "
                f"{to_datetime(calendar.next_day_start_us(now, zone)).isoformat()}",
                {"spins_per_day": str(config.spins_per_day)},
            )
        if refusal is not None:
            unit.append_play(rejection(spin_id, wheel_id, member_id, refusal.reason, now))
            return Refused(refusal)
        pair = self._games.active_pair(unit, member_id, now)
        draw = draw_segment(pair.server_seed, pair.client_seed, pair.next_nonce, config.weights)
        capped = config.segments[draw.segment_index].max_wins_per_member_per_day
        wins = unit.wins_today(wheel_id, member_id, day, draw.segment_index) if capped else 0
        landing = land(config, draw.segment_index, wheel.sold_out, wins)
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
            status=SpinStatus.PENDING,
            reason=None,
            entry_id=spin_id,
            transfer_ids=(),
            points_balance_after=None,
            day=day,
            spins_today=used + 1,
            create_us=now,
        )
        chain = spin_chain(spin_id, wheel_id, member_id, config.cost_points, landing.prize)
        unit.insert_spin(spin)
        unit.append_play(spin_entry(spin, pair, PlayStatus.PENDING, now, used))
        spins_left = calendar.spins_left(config.spins_per_day, used + 1)
        if not chain.request.transfers:
            # Nothing to post (a free spin that wins nothing): settled right here.
            settled = mark_settled(unit, spin, (), None, now)
            return Recorded(settled, None, pair, wheel, spins_left)
        entry = unit.outbox.record(spin_id, SPIN, chain.request, now)
        return Recorded(spin, entry, pair, wheel, spins_left)

    async def _settle(self, spin: SpinRecord, entry: OutboxEntry | None) -> SpinRecord:
        """Posts the spin's entry and applies the answer (and the fallback's, if
        the pool could not pay). UNAVAILABLE leaves it to the relay."""
        while entry is not None:
            applied = await self._games.outbox.settle(entry)
            if applied is None:
                # Applied by another task (the relay) first.
                found = await self._store.read(
                    lambda unit, spin_id=spin.spin_id: unit.spin(spin_id)
                )
                assert found is not None
                if found.status == SpinStatus.PENDING and found.entry_id != entry.entry_id:
                    entry = await self._store.read(
                        lambda unit, entry_id=found.entry_id: unit.outbox.entry(entry_id)
                    )
                    continue
                return found
            spin, entry = applied.spin, applied.follow_up
        return spin

    async def _finish(self, spin: SpinRecord) -> SpinRecord:
        """A recorded spin as it ends: a pending one is settled now, from the
        entry its outbox holds."""
        if spin.status != SpinStatus.PENDING:
            return spin
        entry = await self._store.read(lambda unit: unit.outbox.entry(spin.entry_id))
        if entry is None:
            # Closed by another task in the meantime.
            found = await self._store.read(lambda unit, spin_id=spin.spin_id: unit.spin(spin_id))
            assert found is not None
            return await self._finish(found) if found.entry_id != spin.entry_id else found
        return await self._settle(spin, entry)

    async def _replay(self, spin: SpinRecord, wheel_id: str, request_id: str) -> SpinView:
        if spin.wheel_id != wheel_id:
            raise AlreadyExists(
                "REQUEST_ID_REUSED",
                f"request id {shown(request_id)} was used for wheel {shown(spin.wheel_id)}",
                {"spin_id": spin.spin_id},
            )
        finished = await self._finish(spin)
        if finished.status == SpinStatus.REJECTED:
            raise spin_refused(finished)
        return await self._view(finished)

    async def _balance(self, spin: SpinRecord) -> int | None:
        if spin.points_balance_after is not None:
            return spin.points_balance_after
        # The spin moved none of the member's points: read the balance, if the
        # ledger answers; the spin itself is settled either way.
        with contextlib.suppress(Unavailable):
            return await self._games.ledger.available(spin.member_id)
        return None

    async def _view(self, spin: SpinRecord) -> SpinView:
        now = self._games.clock.now_us()

        def read(unit: GamesUnit) -> SpinView:
            pair = unit.seed_pair(spin.pair_id)
            wheel = wheel_or_raise(unit, spin.wheel_id, spin.version)
            left = allowance(unit, wheel, spin.member_id, now).spins_left
            return SpinView(spin, pair, wheel, left, None)

        view = await self._store.read(read)
        return replace(view, points_balance=await self._balance(spin))

    async def verify_spin(self, spin_id: str) -> Verification:
        require(("spin_id", spin_id, RESOURCE_ID))
        spin = await self._store.read(lambda unit: unit.spin(spin_id))
        if spin is None or spin.status != SpinStatus.SETTLED:
            # A pending or refused spin was not paid for: nothing of it is shown.
            raise NotFound(
                "SPIN_NOT_FOUND", f"no settled spin {shown(spin_id)}", {"spin_id": spin_id}
            )
        view = await self._view(spin)
        if view.pair.revealed_us is None:
            raise FailedPrecondition(
                "SEED_NOT_REVEALED",
                "the server seed of this spin is still in use; RotateSeed reveals it",
                {"server_seed_sha256": view.pair.commitment},
            )
        draw = draw_segment(
            view.pair.server_seed, spin.client_seed, spin.nonce, view.wheel.config.weights
        )
        verified = (
            seed_commitment(view.pair.server_seed) == view.pair.commitment
            and draw.value == spin.draw_value
            and draw.segment_index == spin.drawn_index
        )
        return Verification(view, draw, verified)


def rejection(spin_id: str, wheel_id: str, member_id: str, reason: str, now: int) -> PlayEntry:
    """The audit entry of a spin refused before anything was drawn."""
    return PlayEntry(spin_id, PlayKind.SPIN, wheel_id, member_id, PlayStatus.REJECTED, reason, now)


def spin_refused(spin: SpinRecord) -> FailedPrecondition:
    return FailedPrecondition(
        spin.reason or "SPIN_REJECTED",
        f"the ledger refused spin {spin.spin_id}: {spin.reason}",
        {"spin_id": spin.spin_id},
    )
