"""Use cases of catch-to-earn: a short game of catching falling items, scored on
the server from the session's seeded spawn schedule and paid through the outbox
exactly once per session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import structlog
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from services.games import domain, ledger, store
from services.games.service import (
    CATCH_ENTRY_PREFIX,
    FAILED_CODES_NAME,
    GameUseCases,
    check_id,
    create_once,
    decode_offset,
    page_size,
)
from services.games.store import CatchSessionRecord, PlayEntry
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Violations,
)
from services.kit.outbox import all_accepted

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class CatchView:
    session: CatchSessionRecord
    config: domain.CatchConfig
    spawns: list[domain.SpawnedObject]


@dataclass(frozen=True, slots=True)
class Leaderboard:
    rows: list[store.LeaderboardRow]
    member_row: store.LeaderboardRow | None
    week_start_us: int
    week_end_us: int
    next_offset: int | None


class CatchService(GameUseCases):
    """Catch-to-earn's use cases."""

    async def create_catch_game(
        self, game_id: str, config: domain.CatchConfig
    ) -> tuple[domain.CatchConfig, int, bool]:
        violations = Violations()
        check_id(game_id, "game_id", violations)
        violations.raise_if_any()
        domain.validate_catch_config(config)
        now = self._clock.now_us()

        def create(connection):
            existing = store.catch_game(connection, game_id)
            created = create_once(
                existing[0] if existing else None,
                config,
                lambda: store.insert_catch_game(connection, game_id, config, now),
                AlreadyExists(
                    "GAME_EXISTS_WITH_DIFFERENT_CONFIG",
                    f"catch game {game_id} exists with other rules",
                    {"game_id": game_id},
                ),
            )
            return (config, now, True) if created else (*existing, False)

        return await self._writer.submit(create)

    async def get_catch_game(self, game_id: str) -> tuple[domain.CatchConfig, int]:
        violations = Violations()
        check_id(game_id, "game_id", violations)
        violations.raise_if_any()
        return await self._writer.submit(lambda c: self._game_or_raise(c, game_id))

    @staticmethod
    def _game_or_raise(connection, game_id: str) -> tuple[domain.CatchConfig, int]:
        game = store.catch_game(connection, game_id)
        if game is None:
            raise NotFound("GAME_NOT_FOUND", f"no catch game {game_id}", {"game_id": game_id})
        return game

    async def start_catch(self, game_id: str, member_id: str, request_id: str) -> CatchView:
        violations = Violations()
        check_id(game_id, "game_id", violations)
        check_id(member_id, "member_id", violations, domain.MEMBER_ID_PATTERN)
        check_id(request_id, "request_id", violations, domain.REQUEST_ID_PATTERN)
        violations.raise_if_any()
        session_id = domain.catch_session_id(game_id, member_id, request_id)
        now = self._clock.now_us()
        seed = self._new_seed()

        def start(connection):
            config, _ = self._game_or_raise(connection, game_id)
            session = store.catch_session(connection, session_id)
            if session is None:
                session = CatchSessionRecord(
                    session_id,
                    game_id,
                    member_id,
                    request_id,
                    seed,
                    now,
                    now + (config.duration_millis + config.submit_grace_millis) * 1_000,
                    "open",
                    None,
                    None,
                    None,
                    (),
                    None,
                    None,
                    None,
                )
                store.insert_catch_session(connection, session)
            return CatchView(
                session, config, domain.spawn_schedule(config, session.seed, session_id)
            )

        view = await self._writer.submit(start)
        log.info("catch_started", session_id=session_id, game_id=game_id, member_id=member_id)
        return view

    async def submit_catch(
        self,
        session_id: str,
        member_id: str,
        claims: list[domain.CatchClaim],
        claimed_score: int,
    ) -> CatchView:
        violations = Violations()
        check_id(session_id, "session_id", violations)
        check_id(member_id, "member_id", violations, domain.MEMBER_ID_PATTERN)
        violations.check(claimed_score >= 0, "claimed_score", "must not be negative")
        violations.raise_if_any()
        session = await self._writer.submit(lambda c: store.catch_session(c, session_id))
        if session is None:
            raise NotFound("SESSION_NOT_FOUND", f"no catch session {session_id}")
        config, _ = await self._writer.submit(lambda c: self._game_or_raise(c, session.game_id))
        domain.validate_catch_claims(claims, config)
        if claimed_score > config.session_score_cap:
            raise InvalidArgument(
                [
                    FieldViolation(
                        "claimed_score", f"above the session cap {config.session_score_cap}"
                    )
                ],
                reason="SCORE_ABOVE_CAP",
            )
        if session.member_id != member_id:
            await self._reject_catch(session, member_id, "NOT_SESSION_OWNER")
            raise PermissionDenied(
                "NOT_SESSION_OWNER",
                "this session belongs to another member",
                {"session_id": session_id},
            )
        fingerprint = domain.submission_fingerprint(claims, claimed_score)
        await self._accounts.ensure(
            ledger.issuance(domain.POINTS), ledger.member_wallet(member_id, domain.POINTS)
        )
        async with self._members.hold(member_id):
            now = self._clock.now_us()
            outcome = await self._writer.submit(
                lambda c: self._score_and_record(c, session_id, config, claims, fingerprint, now)
            )
            if isinstance(outcome, Exception):
                await self._reject_catch(session, member_id, outcome.reason)
                raise outcome
            session, request = outcome
            if request is not None:
                response = await self._outbox.settle(request.transfers[0].id, request)
                await self.apply(request.transfers[0].id, response)
            elif session.status == "pending":
                # A replay of a submission whose award is still pending.
                request = ledger.catch_award(
                    session_id, session.game_id, session.member_id, session.awarded
                )
                entry_id = session.transfer_id
                await self.apply(entry_id, await self._outbox.settle(entry_id, request))
        session = await self._writer.submit(lambda c: store.catch_session(c, session_id))
        return CatchView(session, config, domain.spawn_schedule(config, session.seed, session_id))

    def _score_and_record(self, connection, session_id, config, claims, fingerprint, now):
        """Returns (session, request to post or None), or the error to raise
        (returned, not raised, so the caller can append the rejection to the audit)."""
        session = store.catch_session(connection, session_id)
        if session.status != "open":
            if session.fingerprint == fingerprint:
                return session, None
            return FailedPrecondition(
                "SESSION_ALREADY_SUBMITTED",
                "this session was already submitted",
                {"session_id": session_id},
            )
        if now > session.expire_us:
            return FailedPrecondition(
                "SESSION_EXPIRED",
                "the submission came after the session's expiry",
                {"session_id": session_id},
            )
        if now < session.start_us + config.duration_millis * 1_000:
            return FailedPrecondition(
                "SUBMITTED_TOO_SOON",
                "the game cannot have ended yet: submit after its full duration",
                {"session_id": session_id},
            )
        zone = domain.zone_of(config.time_zone)
        day = domain.local_day(session.start_us, zone).isoformat()
        earned = store.points_today(connection, session.game_id, session.member_id, day)
        result = domain.score_catches(
            config, domain.spawn_schedule(config, session.seed, session_id), claims
        )
        award = domain.award_after_caps(result.score, config, earned)
        left = max(0, config.daily_points_cap - earned - award) if config.daily_points_cap else 0
        request = (
            ledger.catch_award(session_id, session.game_id, session.member_id, award)
            if award
            else None
        )
        transfer_id = request.transfers[0].id if request else None
        store.submit_catch_session(
            connection,
            session_id,
            status="pending" if request else "settled",
            fingerprint=fingerprint,
            score=min(result.score, config.session_score_cap),
            awarded=award,
            verdicts=result.verdicts,
            transfer_id=transfer_id,
            day=day,
            week=domain.week_start(session.start_us, zone).isoformat(),
            daily_points_left=left,
            now_us=now,
        )
        if request:
            self._outbox.record(connection, transfer_id, request, now)
        store.append_play(
            connection,
            PlayEntry(
                session_id,
                "catch",
                session.game_id,
                session.member_id,
                "pending" if request else "settled",
                None,
                now,
                {
                    "verdicts": [
                        {"object_id": v.object_id, "code": v.code, "points": v.points}
                        for v in result.verdicts
                    ],
                    "prize": {"points": award, "unit": "", "quantity": 0},
                    "transfer_ids": [transfer_id] if transfer_id else [],
                    "counters_before": {"points_today": earned},
                    "counters_after": {"points_today": earned + award},
                },
            ),
        )
        return store.catch_session(connection, session_id), request

    async def _reject_catch(self, session: CatchSessionRecord, member_id: str, reason: str) -> None:
        now = self._clock.now_us()
        await self._writer.submit(
            lambda c: store.append_play(
                c,
                PlayEntry(
                    session.session_id, "catch", session.game_id, member_id, "rejected", reason, now
                ),
            )
        )
        log.info("catch_rejected", session_id=session.session_id, reason=reason)

    async def apply(self, entry_id: str, response: ledger_pb.PostTransfersResponse) -> None:
        session_id = entry_id.removeprefix(CATCH_ENTRY_PREFIX).removesuffix(":award")
        status = "settled" if all_accepted(response) else "failed"
        now = self._clock.now_us()

        def finish(connection):
            session = store.catch_session(connection, session_id)
            if store.finish_catch_session(connection, session_id, status):
                store.append_play(
                    connection,
                    PlayEntry(
                        session_id,
                        "catch",
                        session.game_id,
                        session.member_id,
                        status,
                        None
                        if status == "settled"
                        else FAILED_CODES_NAME(response.results[0].code),
                        now,
                        {"transfer_ids": [entry_id]},
                    ),
                )

        await self._writer.submit(finish)
        log.info("catch_settled", session_id=session_id, status=status)

    async def leaderboard(
        self,
        game_id: str,
        week_us: int | None,
        member_id: str,
        requested_size: int,
        page_token: str,
    ) -> Leaderboard:
        violations = Violations()
        check_id(game_id, "game_id", violations)
        if member_id:
            check_id(member_id, "member_id", violations, domain.MEMBER_ID_PATTERN)
        size = page_size(requested_size, violations)
        offset = decode_offset(page_token, violations)
        violations.raise_if_any()
        config, _ = await self.get_catch_game(game_id)
        zone = domain.zone_of(config.time_zone)
        monday = domain.week_start(week_us if week_us is not None else self._clock.now_us(), zone)
        week = monday.isoformat()
        rows = await self._store.leaderboard(game_id, week, offset, size + 1)
        member_row = (
            await self._store.leaderboard_entry(game_id, week, member_id) if member_id else None
        )
        return Leaderboard(
            rows=rows[:size],
            member_row=member_row,
            week_start_us=domain.day_start_us(monday, zone),
            week_end_us=domain.day_start_us(monday + timedelta(days=7), zone),
            next_offset=offset + size if len(rows) > size else None,
        )
