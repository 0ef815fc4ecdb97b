"""Catch-to-earn: a short game of catching falling items, scored on the server
from the session's seeded spawn schedule and paid through the outbox exactly
once per session (one transaction scores and records the award, kind
"catch_award"; a second closes it and applies the ledger's answer)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import structlog

from services.games.base import Games, create_once, require
from services.games.domain import calendar
from services.games.domain.catch import (
    BasketSample,
    CatchClaim,
    CatchConfig,
    SpawnedObject,
    award_after_caps,
    daily_points_left,
    reveal_millis,
    score_catches,
    spawn_schedule,
    submission_fingerprint,
    validate_catch_claims,
    validate_catch_config,
)
from services.games.domain.records import (
    CatchGame,
    CatchSession,
    Counters,
    LeaderboardRow,
    PlayDetail,
    PlayEntry,
    PlayKind,
    PlayStatus,
    SessionStatus,
    catch_session_id,
)
from services.games.domain.wheel import Prize
from services.games.ledger import catch_award, catch_award_id, issuance, member_wallet
from services.games.store import GamesUnit
from services.kit.clock import Clock
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ServiceError,
    Violations,
)
from services.kit.ids import MEMBER_ID, POINTS, REQUEST_ID, RESOURCE_ID, check_id
from services.kit.outbox import OutboxEntry, Settlement
from services.kit.paging import decode_page_token, page_of, page_size
from services.kit.text import shown

log = structlog.get_logger()

CATCH_AWARD = "catch_award"
IMPLAUSIBLE_TRACE = "IMPLAUSIBLE_TRACE"


@dataclass(frozen=True, slots=True)
class CatchGameCreated:
    game: CatchGame
    created: bool


@dataclass(frozen=True, slots=True)
class CatchView:
    session: CatchSession
    config: CatchConfig


@dataclass(frozen=True, slots=True)
class Revealed:
    """An object of a session as the server reveals it."""

    object: SpawnedObject
    reveal_millis: int


@dataclass(frozen=True, slots=True)
class Submitted:
    """A scored submission, and the award's entry when there is one to post."""

    session: CatchSession
    entry: OutboxEntry | None


@dataclass(frozen=True, slots=True)
class Refused:
    """A submission refused after validation; its audit entry is written."""

    error: ServiceError


@dataclass(frozen=True, slots=True)
class Leaderboard:
    rows: list[LeaderboardRow]
    member_row: LeaderboardRow | None
    week: calendar.Week
    next_page_token: str


def game_or_raise(unit: GamesUnit, game_id: str) -> CatchGame:
    game = unit.catch_game(game_id)
    if game is None:
        raise NotFound("GAME_NOT_FOUND", f"no catch game {shown(game_id)}", {"game_id": game_id})
    return game


def catch_entry(
    session: CatchSession, status: PlayStatus, reason: str | None, now: int, detail: PlayDetail
) -> PlayEntry:
    return PlayEntry(
        session.session_id,
        PlayKind.CATCH,
        session.game_id,
        session.member_id,
        status,
        reason,
        now,
        detail,
    )


class CatchHandlers:
    """The outbox handler of catch awards, inside the transaction that closes the entry."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def kinds(self) -> dict:
        return {CATCH_AWARD: self.settle_award}

    def settle_award(self, unit: GamesUnit, settlement: Settlement) -> CatchSession:
        now = self._clock.now_us()
        session = unit.catch_session_settled_by(settlement.entry.entry_id)
        assert session is not None and session.status == SessionStatus.PENDING
        answer = settlement.answer
        if answer is not None and answer.accepted:
            done, reason = replace(session, status=SessionStatus.SETTLED), None
        else:
            refusal = answer.refusals[0].code if answer is not None and answer.refusals else None
            reason = f"LEDGER_{refusal or 'INVALID_ARGUMENT'}"
            done = replace(session, status=SessionStatus.FAILED)
        unit.save_catch_session(done)
        status = PlayStatus.SETTLED if reason is None else PlayStatus.FAILED
        detail = PlayDetail(
            prize=Prize(points=done.awarded or 0),
            score=done.score,
            transfer_ids=(settlement.entry.entry_id,),
        )
        unit.append_play(catch_entry(done, status, reason, now, detail))
        log.info("catch_settled", session_id=done.session_id, status=done.status.value)
        return done


class Catch:
    def __init__(self, games: Games) -> None:
        self._games = games
        self._store = games.store

    async def create_catch_game(self, game_id: str, config: CatchConfig) -> CatchGameCreated:
        require(("game_id", game_id, RESOURCE_ID))
        validate_catch_config(config)
        now = self._games.clock.now_us()

        def create(unit: GamesUnit) -> CatchGameCreated:
            existing = unit.catch_game(game_id)
            game = CatchGame(game_id, config, now)
            created = create_once(
                existing.config if existing else None,
                config,
                lambda: unit.insert_catch_game(game),
                AlreadyExists(
                    "GAME_EXISTS_WITH_DIFFERENT_CONFIG",
                    f"catch game {shown(game_id)} exists with other rules",
                    {"game_id": game_id},
                ),
            )
            return CatchGameCreated(game if created else existing, created)

        return await self._store.write(create)

    async def get_catch_game(self, game_id: str) -> CatchGame:
        require(("game_id", game_id, RESOURCE_ID))
        return await self._store.read(lambda unit: game_or_raise(unit, game_id))

    async def start_catch(self, game_id: str, member_id: str, request_id: str) -> CatchView:
        require(
            ("game_id", game_id, RESOURCE_ID),
            ("member_id", member_id, MEMBER_ID),
            ("request_id", request_id, REQUEST_ID),
        )
        session_id = catch_session_id(game_id, member_id, request_id)
        games = self._games
        now = games.clock.now_us()
        seed = games.new_seed()

        def start(unit: GamesUnit) -> CatchView:
            config = game_or_raise(unit, game_id).config
            session = unit.catch_session(session_id)
            if session is None:
                session = CatchSession(
                    session_id,
                    game_id,
                    member_id,
                    request_id,
                    seed,
                    now,
                    now + (config.duration_millis + config.submit_grace_millis) * 1_000,
                )
                unit.insert_catch_session(session)
            return CatchView(session, config)

        view = await self._store.write(start)
        log.info("catch_started", session_id=session_id, game_id=game_id, member_id=member_id)
        return view

    async def watch_objects(self, session_id: str, member_id: str) -> AsyncIterator[Revealed]:
        """The session's objects, each at its reveal time by the clock (a session that
        is over gives them all at once: nothing is left to play)."""
        require(("session_id", session_id, RESOURCE_ID), ("member_id", member_id, MEMBER_ID))
        session = await self._owned_session(session_id, member_id)
        config = (await self.get_catch_game(session.game_id)).config
        clock = self._games.clock
        playing = session.status == SessionStatus.OPEN and clock.now_us() <= session.expire_us
        for spawned in spawn_schedule(config, session.seed, session_id):
            revealed = reveal_millis(config, spawned)
            if playing:
                await clock.sleep_until(session.start_us + revealed * 1_000)
            yield Revealed(spawned, revealed)

    async def _session(self, session_id: str) -> CatchSession:
        session = await self._store.read(lambda unit: unit.catch_session(session_id))
        if session is None:
            raise NotFound(
                "SESSION_NOT_FOUND",
                f"no catch session {shown(session_id)}",
                {"session_id": session_id},
            )
        return session

    async def _owned_session(self, session_id: str, member_id: str) -> CatchSession:
        session = await self._session(session_id)
        if session.member_id != member_id:
            raise PermissionDenied(
                "NOT_SESSION_OWNER",
                "this session belongs to another member",
                {"session_id": session_id},
            )
        return session

    async def submit_catch(
        self,
        session_id: str,
        member_id: str,
        claims: list[CatchClaim],
        claimed_score: int,
        trace: list[BasketSample],
    ) -> CatchView:
        violations = Violations()
        check_id(violations, "session_id", session_id, RESOURCE_ID)
        check_id(violations, "member_id", member_id, MEMBER_ID)
        violations.check(claimed_score >= 0, "claimed_score", "must not be negative")
        violations.raise_if_any()
        games = self._games
        # The owner is checked in the transaction, which records a foreign submission.
        session = await self._session(session_id)
        config = (await self.get_catch_game(session.game_id)).config
        validate_catch_claims(claims, config, trace)
        if claimed_score > config.session_score_cap:
            raise InvalidArgument(
                [
                    FieldViolation(
                        "claimed_score", f"above the session cap {config.session_score_cap}"
                    )
                ],
                reason="SCORE_ABOVE_CAP",
            )
        fingerprint = submission_fingerprint(claims, claimed_score, trace)
        await games.ledger.ensure(issuance(POINTS), member_wallet(member_id, POINTS))
        async with games.members.hold(member_id):
            now = games.clock.now_us()
            outcome = await self._store.write(
                lambda unit: self._score(
                    unit, session_id, member_id, config, claims, trace, fingerprint, now
                )
            )
            if isinstance(outcome, Refused):
                raise outcome.error
            session, entry = outcome.session, outcome.entry
            if entry is None and session.status == SessionStatus.PENDING:
                # A replay of a submission whose award is still pending.
                entry = await self._store.read(
                    lambda unit: unit.outbox.entry(session.transfer_id or "")
                )
            if entry is not None:
                applied = await games.outbox.settle(entry)
                session = applied or await self._store.read(
                    lambda unit: unit.catch_session(session_id)
                )
        return CatchView(session, config)

    def _score(
        self,
        unit: GamesUnit,
        session_id: str,
        member_id: str,
        config: CatchConfig,
        claims: list[CatchClaim],
        trace: list[BasketSample],
        fingerprint: str,
        now: int,
    ) -> Submitted | Refused:
        session = unit.catch_session(session_id)
        assert session is not None
        refusal: ServiceError | None = None
        if session.member_id != member_id:
            refusal = PermissionDenied(
                "NOT_SESSION_OWNER",
                "this session belongs to another member",
                {"session_id": session_id},
            )
        elif session.status != SessionStatus.OPEN:
            if session.fingerprint == fingerprint:
                return Submitted(session, None)
            refusal = FailedPrecondition(
                "SESSION_ALREADY_SUBMITTED",
                "this session was already submitted",
                {"session_id": session_id},
            )
        elif now > session.expire_us:
            refusal = FailedPrecondition(
                "SESSION_EXPIRED",
                "the submission came after the session's expiry",
                {"session_id": session_id},
            )
        elif now < session.start_us + config.duration_millis * 1_000:
            refusal = FailedPrecondition(
                "SUBMITTED_TOO_SOON",
                "the game cannot have ended yet: submit after its full duration",
                {"session_id": session_id},
            )
        if refusal is not None:
            unit.append_play(
                PlayEntry(
                    session_id,
                    PlayKind.CATCH,
                    session.game_id,
                    member_id,
                    PlayStatus.REJECTED,
                    refusal.reason,
                    now,
                )
            )
            log.info("catch_rejected", session_id=session_id, reason=refusal.reason)
            return Refused(refusal)
        zone = calendar.zone(config.time_zone)
        day = calendar.local_day(session.start_us, zone).isoformat()
        earned = unit.points_today(session.game_id, member_id, day)
        spawns = spawn_schedule(config, session.seed, session_id)
        result = score_catches(config, spawns, claims, trace)
        award = award_after_caps(result.score, config, earned)
        transfer_id = catch_award_id(session_id) if award else None
        scored = replace(
            session,
            status=SessionStatus.PENDING if award else SessionStatus.SETTLED,
            fingerprint=fingerprint,
            score=min(result.score, config.session_score_cap),
            awarded=award,
            verdicts=result.verdicts,
            transfer_id=transfer_id,
            day=day,
            week=calendar.week_start(session.start_us, zone).isoformat(),
            daily_points_left=daily_points_left(config, earned, award),
            submit_us=now,
            findings=result.findings,
        )
        unit.save_catch_session(scored)
        detail = PlayDetail(
            prize=Prize(points=award),
            score=scored.score,
            verdicts=result.verdicts,
            transfer_ids=(transfer_id,) if transfer_id else (),
            counters_before=Counters(points_today=earned),
            counters_after=Counters(points_today=earned + award),
        )
        status = PlayStatus.PENDING if award else PlayStatus.SETTLED
        reason = None
        if result.findings:
            # Scored for the record, paid nothing, ranked nowhere.
            status, reason = PlayStatus.REJECTED, IMPLAUSIBLE_TRACE
            log.info("catch_implausible", session_id=session_id, findings=list(result.findings))
        unit.append_play(catch_entry(scored, status, reason, now, detail))
        if not award:
            return Submitted(scored, None)
        request = catch_award(session_id, session.game_id, member_id, award)
        return Submitted(scored, unit.outbox.record(transfer_id, CATCH_AWARD, request, now))

    async def leaderboard(
        self,
        game_id: str,
        week_us: int | None,
        member_id: str,
        requested_size: int,
        page_token: str,
    ) -> Leaderboard:
        violations = Violations()
        check_id(violations, "game_id", game_id, RESOURCE_ID)
        if member_id:
            check_id(violations, "member_id", member_id, MEMBER_ID)
        size = page_size(violations, requested_size)
        violations.raise_if_any()
        game = await self.get_catch_game(game_id)
        zone = calendar.zone(game.config.time_zone)
        week = calendar.week_of(
            week_us if week_us is not None else self._games.clock.now_us(), zone
        )
        query = ("leaderboard", game_id, week.key)
        after = decode_page_token(page_token, query, int) or 0

        def read(unit: GamesUnit) -> Leaderboard:
            rows = unit.leaderboard(game_id, week.key, after, size + 1)
            mine = unit.leaderboard_entry(game_id, week.key, member_id) if member_id else None
            page = page_of(rows, size, lambda row: row.rank, query)
            return Leaderboard(page.items, mine, week, page.next_page_token)

        return await self._store.read(read)
