"""loyalty.games.v1 <-> the games' use cases; errors are mapped by the server kit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from loyalty.games.v1 import games_service_pb2 as pb
from loyalty.games.v1 import games_service_pb2_grpc as pb_grpc

from services.games.catch import Catch, CatchView, Revealed
from services.games.domain.calendar import Allowance
from services.games.domain.catch import (
    BasketSample,
    CatchClaim,
    CatchConfig,
    CatchVerdict,
    ObjectType,
)
from services.games.domain.draw import ALGORITHM, seed_commitment
from services.games.domain.records import (
    CatchGame,
    LeaderboardRow,
    Play,
    PlayKind,
    PlayStatus,
    SeedPair,
    SpinRecord,
    WheelVersion,
)
from services.games.domain.wheel import (
    NOTHING,
    FallbackReason,
    Prize,
    Segment,
    WheelConfig,
    published_odds,
)
from services.games.plays import Plays
from services.games.seeds import Seeds
from services.games.spins import Spins, SpinView
from services.games.wheels import Wheels
from services.kit.proto_time import optional_micros, timestamp

FALLBACK_REASONS = {
    FallbackReason.SOLD_OUT: pb.FALLBACK_REASON_SOLD_OUT,
    FallbackReason.CAP_REACHED: pb.FALLBACK_REASON_CAP_REACHED,
}
PLAY_STATUSES = {
    PlayStatus.PENDING: pb.PLAY_STATUS_PENDING,
    PlayStatus.SETTLED: pb.PLAY_STATUS_SETTLED,
    PlayStatus.FALLBACK: pb.PLAY_STATUS_FALLBACK,
    PlayStatus.REJECTED: pb.PLAY_STATUS_REJECTED,
    PlayStatus.FAILED: pb.PLAY_STATUS_REJECTED,
}
PLAY_KINDS = {PlayKind.SPIN: pb.PLAY_KIND_SPIN, PlayKind.CATCH: pb.PLAY_KIND_CATCH}


# ---------------------------------------------------------------- to the domain


def prize_from_proto(message: pb.Prize) -> Prize:
    kind = message.WhichOneof("kind")
    if kind == "points":
        # Zero points would read as "nothing"; -1 makes validation name the field.
        return Prize(points=message.points or -1)
    if kind == "item":
        return Prize(unit=message.item.unit, quantity=message.item.quantity)
    return NOTHING


def wheel_config_from_proto(message: pb.WheelConfig) -> WheelConfig:
    return WheelConfig(
        display_name=message.display_name,
        segments=tuple(
            Segment(
                label=segment.label,
                weight=segment.weight,
                prize=prize_from_proto(segment.prize),
                max_wins_per_member_per_day=segment.max_wins_per_member_per_day,
                color=segment.color,
                icon=segment.icon,
                short_label=segment.short_label,
            )
            for segment in message.segments
        ),
        fallback_segment_index=message.fallback_segment_index,
        cost_points=message.cost_points,
        spins_per_day=message.spins_per_day,
        time_zone=message.time_zone,
        start_us=optional_micros(message, "start_time", "config.start_time"),
        end_us=optional_micros(message, "end_time", "config.end_time"),
    )


def catch_config_from_proto(message: pb.CatchGameConfig) -> CatchConfig:
    return CatchConfig(
        display_name=message.display_name,
        duration_millis=message.duration_millis,
        spawn_interval_millis=message.spawn_interval_millis,
        field_width=message.field_width,
        basket_width=message.basket_width,
        basket_top_speed=message.basket_top_speed,
        catch_window_millis=message.catch_window_millis,
        object_types=tuple(
            ObjectType(kind.name, kind.points, kind.spawn_weight, kind.fall_millis, kind.width)
            for kind in message.object_types
        ),
        session_score_cap=message.session_score_cap,
        daily_points_cap=message.daily_points_cap,
        time_zone=message.time_zone,
        submit_grace_millis=message.submit_grace_millis,
        # 0 means the documented default, which the domain's own defaults are.
        **{
            name: getattr(message, name)
            for name in ("reveal_lead_millis", "min_reaction_millis", "basket_max_acceleration")
            if getattr(message, name)
        },
    )


# ---------------------------------------------------------------- to protobuf


def prize_to_proto(prize: Prize) -> pb.Prize | None:
    """The prize, or None (the field left unset) for nothing."""
    if prize.unit:
        return pb.Prize(item=pb.PrizeItem(unit=prize.unit, quantity=prize.quantity))
    if prize.points:
        return pb.Prize(points=prize.points)
    return None


def wheel_config_to_proto(config: WheelConfig) -> pb.WheelConfig:
    message = pb.WheelConfig(
        display_name=config.display_name,
        segments=[
            pb.Segment(
                label=segment.label,
                weight=segment.weight,
                prize=prize_to_proto(segment.prize),
                max_wins_per_member_per_day=segment.max_wins_per_member_per_day,
                color=segment.color,
                icon=segment.icon,
                short_label=segment.short_label,
            )
            for segment in config.segments
        ],
        fallback_segment_index=config.fallback_segment_index,
        cost_points=config.cost_points,
        spins_per_day=config.spins_per_day,
        time_zone=config.time_zone,
    )
    if config.start_us is not None:
        message.start_time.CopyFrom(timestamp(config.start_us))
    if config.end_us is not None:
        message.end_time.CopyFrom(timestamp(config.end_us))
    return message


def allowance_to_proto(allowance: Allowance) -> pb.MemberAllowance:
    return pb.MemberAllowance(
        member_id=allowance.member_id,
        unlimited=allowance.unlimited,
        spins_left_today=allowance.spins_left,
        reset_time=timestamp(allowance.reset_us),
        cost_points=allowance.cost_points,
    )


def wheel_to_proto(wheel: WheelVersion, allowance: Allowance | None = None) -> pb.Wheel:
    config = wheel.config
    message = pb.Wheel(
        id=wheel.wheel_id,
        config=wheel_config_to_proto(config),
        odds_version=wheel.version,
        config_sha256=wheel.config_sha256,
        algorithm=ALGORITHM,
        odds=[
            pb.SegmentOdds(
                index=odds.index,
                label=config.segments[odds.index].label,
                weight=odds.weight,
                total_weight=odds.total_weight,
                basis_points=odds.basis_points,
                percent=odds.percent,
                sold_out=odds.index in wheel.sold_out,
                fallback=odds.index == config.fallback_segment_index,
                prize=prize_to_proto(config.segments[odds.index].prize),
                draw_weight=config.segments[odds.index].weight,
            )
            for odds in published_odds(config, wheel.sold_out)
        ],
        create_time=timestamp(wheel.wheel_create_us),
        update_time=timestamp(wheel.create_us),
    )
    if allowance is not None:
        message.allowance.CopyFrom(allowance_to_proto(allowance))
    return message


def seed_pair_to_proto(pair: SeedPair) -> pb.SeedPair:
    return pb.SeedPair(
        member_id=pair.member_id,
        server_seed_sha256=pair.commitment,
        client_seed=pair.client_seed,
        nonce=pair.next_nonce,
    )


def spin_outcome(spin: SpinRecord) -> int:
    if spin.fallback_reason:
        return pb.SPIN_OUTCOME_FALLBACK
    return pb.SPIN_OUTCOME_NO_PRIZE if spin.prize.is_nothing else pb.SPIN_OUTCOME_WON


def spin_to_proto(view: SpinView) -> pb.Spin:
    spin = view.spin
    return pb.Spin(
        spin_id=spin.spin_id,
        wheel_id=spin.wheel_id,
        member_id=spin.member_id,
        request_id=spin.request_id,
        outcome=spin_outcome(spin),
        fallback_reason=FALLBACK_REASONS.get(spin.fallback_reason, 0),
        landed_segment_index=spin.landed_index,
        prize=prize_to_proto(spin.prize),
        transfer_ids=spin.transfer_ids,
        points_balance_after=view.points_balance,
        proof=pb.SpinProof(
            algorithm=ALGORITHM,
            server_seed_sha256=view.pair.commitment,
            server_seed=view.pair.server_seed.hex() if view.pair.revealed_us else "",
            client_seed=spin.client_seed,
            nonce=spin.nonce,
            odds_version=spin.version,
            config_sha256=view.wheel.config_sha256,
            total_weight=sum(view.wheel.config.weights),
            draw_value=spin.draw_value,
            drawn_segment_index=spin.drawn_index,
        ),
        create_time=timestamp(spin.create_us),
        spins_left_today=view.spins_left,
    )


def catch_config_to_proto(config: CatchConfig) -> pb.CatchGameConfig:
    return pb.CatchGameConfig(
        display_name=config.display_name,
        duration_millis=config.duration_millis,
        spawn_interval_millis=config.spawn_interval_millis,
        field_width=config.field_width,
        basket_width=config.basket_width,
        basket_top_speed=config.basket_top_speed,
        catch_window_millis=config.catch_window_millis,
        object_types=[
            pb.CatchObjectType(
                name=kind.name,
                points=kind.points,
                spawn_weight=kind.spawn_weight,
                fall_millis=kind.fall_millis,
                width=kind.width,
            )
            for kind in config.object_types
        ],
        session_score_cap=config.session_score_cap,
        daily_points_cap=config.daily_points_cap,
        time_zone=config.time_zone,
        submit_grace_millis=config.submit_grace_millis,
        reveal_lead_millis=config.reveal_lead_millis,
        min_reaction_millis=config.min_reaction_millis,
        basket_max_acceleration=config.basket_max_acceleration,
    )


def catch_game_to_proto(game: CatchGame) -> pb.CatchGame:
    return pb.CatchGame(
        id=game.game_id,
        config=catch_config_to_proto(game.config),
        create_time=timestamp(game.create_us),
    )


def session_to_proto(view: CatchView) -> pb.CatchSession:
    session = view.session
    return pb.CatchSession(
        session_id=session.session_id,
        game_id=session.game_id,
        member_id=session.member_id,
        start_time=timestamp(session.start_us),
        expire_time=timestamp(session.expire_us),
        rules=catch_config_to_proto(view.config),
        seed_sha256=seed_commitment(session.seed),
    )


def revealed_to_proto(revealed: Revealed) -> pb.SpawnedObject:
    spawned = revealed.object
    return pb.SpawnedObject(
        object_id=spawned.object_id,
        type=spawned.type,
        spawn_millis=spawned.spawn_millis,
        x=spawned.x,
        fall_millis=spawned.fall_millis,
        points=spawned.points,
        width=spawned.width,
        reveal_millis=revealed.reveal_millis,
    )


def verdict_to_proto(verdict: CatchVerdict) -> pb.CatchVerdict:
    return pb.CatchVerdict(
        object_id=verdict.object_id,
        code=pb.CatchVerdictCode.Value(f"CATCH_VERDICT_CODE_{verdict.code}"),
        points=verdict.points,
    )


def catch_result_to_proto(view: CatchView) -> pb.CatchResult:
    session = view.session
    return pb.CatchResult(
        session_id=session.session_id,
        score=session.score or 0,
        awarded_points=session.awarded or 0,
        verdicts=[verdict_to_proto(verdict) for verdict in session.verdicts],
        transfer_id=session.transfer_id or "",
        daily_points_left=session.daily_points_left or 0,
        submit_time=timestamp(session.submit_us or 0),
        findings=[pb.TraceFinding.Value(f"TRACE_FINDING_{f}") for f in session.findings],
    )


def play_to_proto(play: Play) -> pb.Play:
    entry, detail = play.entry, play.entry.detail
    message = pb.Play(
        sequence=play.sequence,
        play_id=entry.play_id,
        kind=PLAY_KINDS[entry.kind],
        game_id=entry.game_id,
        member_id=entry.member_id,
        status=PLAY_STATUSES[entry.status],
        reason=entry.reason or "",
        landed_segment_index=-1 if detail.landed_index is None else detail.landed_index,
        transfer_ids=detail.transfer_ids,
        verdicts=[verdict_to_proto(verdict) for verdict in detail.verdicts],
        create_time=timestamp(entry.create_us),
        score=detail.score or 0,
    )
    for name in ("counters_before", "counters_after"):
        counters = getattr(detail, name)
        if counters is not None:
            getattr(message, name).CopyFrom(
                pb.Counters(
                    nonce=counters.nonce,
                    spins_today=counters.spins_today,
                    points_today=counters.points_today,
                )
            )
    if detail.prize is not None and not detail.prize.is_nothing:
        message.prize.CopyFrom(prize_to_proto(detail.prize))
    if detail.proof is not None:
        proof = detail.proof
        message.proof.CopyFrom(
            pb.SpinProof(
                algorithm=ALGORITHM,
                server_seed_sha256=proof.server_seed_sha256,
                client_seed=proof.client_seed,
                nonce=proof.nonce,
                odds_version=proof.odds_version,
                draw_value=proof.draw_value or 0,
                drawn_segment_index=-1 if proof.drawn_index is None else proof.drawn_index,
            )
        )
    return message


def leaderboard_entry_to_proto(row: LeaderboardRow) -> pb.LeaderboardEntry:
    return pb.LeaderboardEntry(
        rank=row.rank,
        member_id=row.member_id,
        best_score=row.best_score,
        achieve_time=timestamp(row.achieve_us),
    )


class GamesServicer(pb_grpc.GamesServiceServicer):
    def __init__(
        self, wheels: Wheels, seeds: Seeds, spins: Spins, plays: Plays, catch: Catch
    ) -> None:
        self._wheels = wheels
        self._seeds = seeds
        self._spins = spins
        self._plays = plays
        self._catch = catch

    async def CreateWheel(
        self, request: pb.CreateWheelRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateWheelResponse:
        result = await self._wheels.create_wheel(
            request.wheel_id, wheel_config_from_proto(request.config)
        )
        return pb.CreateWheelResponse(wheel=wheel_to_proto(result.wheel), created=result.created)

    async def UpdateWheel(
        self, request: pb.UpdateWheelRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateWheelResponse:
        # AIP-134: without a mask, the fields the request sets are the ones to change.
        paths = (
            list(request.update_mask.paths)
            if request.HasField("update_mask")
            else [field.name for field, _ in request.config.ListFields()]
        )
        wheel = await self._wheels.update_wheel(
            request.wheel_id,
            wheel_config_from_proto(request.config),
            paths,
            request.expected_odds_version,
        )
        return pb.UpdateWheelResponse(wheel=wheel_to_proto(wheel))

    async def GetWheel(
        self, request: pb.GetWheelRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetWheelResponse:
        view = await self._wheels.get_wheel(
            request.wheel_id, request.member_id, request.odds_version
        )
        return pb.GetWheelResponse(wheel=wheel_to_proto(view.wheel, view.allowance))

    async def ListWheels(
        self, request: pb.ListWheelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWheelsResponse:
        page = await self._wheels.list_wheels(request.page_size, request.page_token)
        return pb.ListWheelsResponse(
            wheels=[wheel_to_proto(wheel) for wheel in page.items],
            next_page_token=page.next_page_token,
        )

    async def StockWheel(
        self, request: pb.StockWheelRequest, context: grpc.aio.ServicerContext
    ) -> pb.StockWheelResponse:
        stocked = await self._wheels.stock_wheel(
            request.wheel_id, request.unit, request.quantity, request.request_id
        )
        return pb.StockWheelResponse(
            pool_account_id=stocked.pool_account_id,
            stock=stocked.stock,
            transfer_id=stocked.transfer_id,
            wheel=wheel_to_proto(stocked.wheel),
        )

    async def GetSeedPair(
        self, request: pb.GetSeedPairRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetSeedPairResponse:
        pair = await self._seeds.get_seed_pair(request.member_id)
        return pb.GetSeedPairResponse(seed_pair=seed_pair_to_proto(pair))

    async def SetClientSeed(
        self, request: pb.SetClientSeedRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetClientSeedResponse:
        pair = await self._seeds.set_client_seed(request.member_id, request.client_seed)
        return pb.SetClientSeedResponse(seed_pair=seed_pair_to_proto(pair))

    async def RotateSeed(
        self, request: pb.RotateSeedRequest, context: grpc.aio.ServicerContext
    ) -> pb.RotateSeedResponse:
        rotation = await self._seeds.rotate_seed(request.member_id, request.client_seed)
        old = rotation.revealed
        return pb.RotateSeedResponse(
            revealed=pb.RevealedSeed(
                server_seed=old.server_seed.hex(),
                server_seed_sha256=old.commitment,
                client_seed=old.client_seed,
                next_nonce=old.next_nonce,
            ),
            seed_pair=seed_pair_to_proto(rotation.current),
        )

    async def Spin(
        self, request: pb.SpinRequest, context: grpc.aio.ServicerContext
    ) -> pb.SpinResponse:
        view = await self._spins.spin(request.wheel_id, request.member_id, request.request_id)
        return pb.SpinResponse(spin=spin_to_proto(view))

    async def VerifySpin(
        self, request: pb.VerifySpinRequest, context: grpc.aio.ServicerContext
    ) -> pb.VerifySpinResponse:
        result = await self._spins.verify_spin(request.spin_id)
        return pb.VerifySpinResponse(
            spin=spin_to_proto(result.view),
            recomputed_draw_value=result.draw.value,
            recomputed_segment_index=result.draw.segment_index,
            verified=result.verified,
        )

    async def CreateCatchGame(
        self, request: pb.CreateCatchGameRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateCatchGameResponse:
        result = await self._catch.create_catch_game(
            request.game_id, catch_config_from_proto(request.config)
        )
        return pb.CreateCatchGameResponse(
            game=catch_game_to_proto(result.game), created=result.created
        )

    async def GetCatchGame(
        self, request: pb.GetCatchGameRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCatchGameResponse:
        game = await self._catch.get_catch_game(request.game_id)
        return pb.GetCatchGameResponse(game=catch_game_to_proto(game))

    async def StartCatch(
        self, request: pb.StartCatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.StartCatchResponse:
        view = await self._catch.start_catch(request.game_id, request.member_id, request.request_id)
        return pb.StartCatchResponse(session=session_to_proto(view))

    async def SubmitCatch(
        self, request: pb.SubmitCatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitCatchResponse:
        claims = [CatchClaim(c.object_id, c.catch_millis, c.basket_x) for c in request.catches]
        trace = [BasketSample(sample.millis, sample.x) for sample in request.trace]
        view = await self._catch.submit_catch(
            request.session_id, request.member_id, claims, request.claimed_score, trace
        )
        return pb.SubmitCatchResponse(result=catch_result_to_proto(view))

    async def WatchCatchObjects(
        self, request: pb.WatchCatchObjectsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchCatchObjectsResponse]:
        async for revealed in self._catch.watch_objects(request.session_id, request.member_id):
            yield pb.WatchCatchObjectsResponse(object=revealed_to_proto(revealed))

    async def GetLeaderboard(
        self, request: pb.GetLeaderboardRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetLeaderboardResponse:
        board = await self._catch.leaderboard(
            request.game_id,
            optional_micros(request, "week_time"),
            request.member_id,
            request.page_size,
            request.page_token,
        )
        response = pb.GetLeaderboardResponse(
            entries=[leaderboard_entry_to_proto(row) for row in board.rows],
            week_start_time=timestamp(board.week.start_us),
            week_end_time=timestamp(board.week.end_us),
            next_page_token=board.next_page_token,
        )
        if board.member_row is not None:
            response.member_entry.CopyFrom(leaderboard_entry_to_proto(board.member_row))
        return response

    async def ListPlays(
        self, request: pb.ListPlaysRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListPlaysResponse:
        page = await self._plays.list_plays(
            request.member_id,
            request.game_id,
            optional_micros(request, "start_time"),
            optional_micros(request, "end_time"),
            request.page_size,
            request.page_token,
        )
        return pb.ListPlaysResponse(
            plays=[play_to_proto(play) for play in page.items],
            next_page_token=page.next_page_token,
        )

    async def WatchPlays(
        self, request: pb.WatchPlaysRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchPlaysResponse]:
        async for result in self._plays.watch(request.after_sequence):
            yield pb.WatchPlaysResponse(sequence=result.sequence, play=play_to_proto(result.play))

    async def GetWheelStats(
        self, request: pb.GetWheelStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetWheelStatsResponse:
        stats = await self._wheels.wheel_stats(request.wheel_id, request.odds_version)
        fit = stats.fit
        return pb.GetWheelStatsResponse(
            odds_version=stats.version,
            total_spins=sum(stats.counts),
            segments=[
                pb.SegmentStats(index=index, observed=stats.counts[index], expected=expected)
                for index, expected in zip(fit.positive_indexes, fit.expected, strict=True)
            ],
            chi_square=fit.chi_square,
            degrees_of_freedom=fit.degrees_of_freedom,
            p_value=fit.p_value,
        )
