"""loyalty.rewards.v1 <-> the rewards domain; errors are mapped by the server kit."""

from __future__ import annotations

import grpc
from loyalty.rewards.v1 import rewards_service_pb2 as pb
from loyalty.rewards.v1 import rewards_service_pb2_grpc as pb_grpc

from services.kit.enums import known
from services.kit.ids import POINTS
from services.kit.proto_time import micros, optional_micros, timestamp
from services.rewards.catalog import Catalog, CatalogEntry
from services.rewards.codes import Codes
from services.rewards.domain.catalog import (
    EarlyAccess,
    Limits,
    Money,
    Reward,
    RewardKind,
    RewardSpec,
)
from services.rewards.domain.offers import Offer, OfferSpec, Preferences
from services.rewards.domain.redemptions import Redemption, RedemptionState
from services.rewards.offers import Offers, VisitView
from services.rewards.redemptions import Redemptions
from services.rewards.reports import Reports


def _set_time(message, field: str, value: int | None) -> None:
    if value is not None:
        getattr(message, field).CopyFrom(timestamp(value))


def spec_from_proto(message: pb.RewardSpec) -> RewardSpec:
    return RewardSpec(
        title=message.title,
        description=message.description,
        image_url=message.image_url,
        category=message.category,
        price=message.price,
        price_unit=message.price_unit or POINTS,
        value=Money(message.value.amount_minor, message.value.currency),
        kind=known(RewardKind, message.kind),
        credit_points=message.credit_points,
        prize_unit=message.prize_unit,
        code_length=message.code_length,
        start_us=optional_micros(message, "start_time", "spec.start_time"),
        end_us=optional_micros(message, "end_time", "spec.end_time"),
        time_zone=message.time_zone or "UTC",
        tiers=tuple(message.tiers),
        segments=tuple(message.segments),
        early_access=tuple(
            EarlyAccess(
                entry.tier, micros(entry.start_time, f"spec.early_access[{index}].start_time")
            )
            for index, entry in enumerate(message.early_access)
        ),
        limits=Limits(
            message.limits.per_day,
            message.limits.per_week,
            message.limits.per_month,
            message.limits.total,
        ),
        hidden=message.hidden,
    )


def spec_to_proto(spec: RewardSpec) -> pb.RewardSpec:
    message = pb.RewardSpec(
        title=spec.title,
        description=spec.description,
        image_url=spec.image_url,
        category=spec.category,
        price=spec.price,
        price_unit=spec.price_unit,
        value=pb.Money(amount_minor=spec.value.amount_minor, currency=spec.value.currency),
        kind=int(spec.kind),
        credit_points=spec.credit_points,
        prize_unit=spec.prize_unit,
        code_length=spec.code_length,
        time_zone=spec.time_zone,
        tiers=spec.tiers,
        segments=spec.segments,
        early_access=[
            pb.EarlyAccess(tier=entry.tier, start_time=timestamp(entry.start_us))
            for entry in spec.early_access
        ],
        limits=pb.Limits(
            per_day=spec.limits.per_day,
            per_week=spec.limits.per_week,
            per_month=spec.limits.per_month,
            total=spec.limits.total,
        ),
        hidden=spec.hidden,
    )
    _set_time(message, "start_time", spec.start_us)
    _set_time(message, "end_time", spec.end_us)
    return message


def reward_to_proto(reward: Reward) -> pb.Reward:
    return pb.Reward(
        reward_id=reward.reward_id,
        version=reward.version,
        spec=spec_to_proto(reward.spec),
        archived=reward.archived,
        create_time=timestamp(reward.created_us),
        update_time=timestamp(reward.updated_us),
        stock_account_id=reward.stock_account,
        stock_unit=reward.stock_unit,
    )


def redemption_to_proto(redemption: Redemption, *, with_code: bool = True) -> pb.Redemption:
    return pb.Redemption(
        redemption_id=redemption.redemption_id,
        member_id=redemption.member_id,
        reward_id=redemption.reward_id,
        reward_version=redemption.reward_version,
        quantity=redemption.quantity,
        request_id=redemption.request_id,
        state=int(redemption.state),
        price_total=redemption.price_total,
        price_unit=redemption.price_unit,
        code=redemption.shown_code if with_code else "",
        failure_reason=redemption.failure_reason,
        history=[
            pb.RedemptionEvent(
                state=int(event.state), time=timestamp(event.at_us), reason=event.reason
            )
            for event in redemption.history
        ],
        create_time=timestamp(redemption.created_us),
        offer_id=redemption.offer_id,
    )


def _entry_to_proto(entry: CatalogEntry) -> pb.CatalogEntry:
    spec = entry.reward.spec
    message = pb.CatalogEntry(
        reward_id=entry.reward.reward_id,
        title=spec.title,
        description=spec.description,
        image_url=spec.image_url,
        category=spec.category,
        price=spec.price,
        price_unit=spec.price_unit,
        kind=int(spec.kind),
        affordable=entry.affordable,
        points_to_go=entry.points_to_go,
        labels=[int(label) for label in entry.labels],
        limit_left=-1 if entry.limit_left is None else entry.limit_left,
    )
    _set_time(message, "available_from", entry.available_from)
    _set_time(message, "available_until", spec.end_us)
    return message


def preferences_from_proto(message: pb.Preferences) -> Preferences:
    return Preferences(
        choices=tuple(sorted((choice.key, tuple(choice.values)) for choice in message.choices)),
        favourite_categories=tuple(message.favourite_categories),
    )


def preferences_to_proto(preferences: Preferences) -> pb.Preferences:
    return pb.Preferences(
        choices=[pb.Preference(key=key, values=values) for key, values in preferences.choices],
        favourite_categories=preferences.favourite_categories,
    )


def offer_spec_from_proto(message: pb.OfferSpec) -> OfferSpec:
    return OfferSpec(
        title=message.title,
        description=message.description,
        category=message.category,
        tags=tuple(message.tags),
        weight=message.weight or 1,
        reward_id=message.reward_id,
        price_points=message.price_points,
        bonus_points=message.bonus_points,
        start_us=optional_micros(message, "start_time", "spec.start_time"),
        end_us=optional_micros(message, "end_time", "spec.end_time"),
    )


def offer_to_proto(offer: Offer) -> pb.Offer:
    spec = offer.spec
    message = pb.OfferSpec(
        title=spec.title,
        description=spec.description,
        category=spec.category,
        tags=spec.tags,
        weight=spec.weight,
        reward_id=spec.reward_id,
        price_points=spec.price_points,
        bonus_points=spec.bonus_points,
    )
    _set_time(message, "start_time", spec.start_us)
    _set_time(message, "end_time", spec.end_us)
    return pb.Offer(offer_id=offer.offer_id, spec=message, archived=offer.archived)


def visit_to_proto(view: VisitView) -> pb.VisitOffer:
    message = pb.VisitOffer(
        member_id=view.visit.member_id,
        visit_id=view.visit.visit_id,
        state=int(view.visit.state),
        points_awarded=view.visit.points_awarded,
        draw=view.visit.draw,
    )
    if view.offer is not None:
        message.offer.CopyFrom(offer_to_proto(view.offer))
    if view.redemption is not None:
        message.redemption.CopyFrom(redemption_to_proto(view.redemption))
    return message


class RewardsServicer(pb_grpc.RewardsServiceServicer):
    def __init__(
        self,
        catalog: Catalog,
        codes: Codes,
        redemptions: Redemptions,
        offers: Offers,
        reports: Reports,
    ) -> None:
        self._catalog = catalog
        self._codes = codes
        self._redemptions = redemptions
        self._offers = offers
        self._reports = reports

    # -- catalog

    async def CreateReward(
        self, request: pb.CreateRewardRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateRewardResponse:
        reward = await self._catalog.create(request.reward_id, spec_from_proto(request.spec))
        return pb.CreateRewardResponse(reward=reward_to_proto(reward))

    async def UpdateReward(
        self, request: pb.UpdateRewardRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateRewardResponse:
        reward = await self._catalog.update(
            request.reward_id, spec_from_proto(request.spec), request.expected_version
        )
        return pb.UpdateRewardResponse(reward=reward_to_proto(reward))

    async def ArchiveReward(
        self, request: pb.ArchiveRewardRequest, context: grpc.aio.ServicerContext
    ) -> pb.ArchiveRewardResponse:
        reward = await self._catalog.archive(request.reward_id)
        return pb.ArchiveRewardResponse(reward=reward_to_proto(reward))

    async def GetReward(
        self, request: pb.GetRewardRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRewardResponse:
        reward = await self._catalog.get(request.reward_id)
        return pb.GetRewardResponse(reward=reward_to_proto(reward))

    async def ListRewards(
        self, request: pb.ListRewardsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRewardsResponse:
        page = await self._catalog.list(
            request.page_size, request.page_token, request.include_archived
        )
        return pb.ListRewardsResponse(
            rewards=[reward_to_proto(reward) for reward in page.items],
            next_page_token=page.next_page_token,
        )

    async def StockReward(
        self, request: pb.StockRewardRequest, context: grpc.aio.ServicerContext
    ) -> pb.StockRewardResponse:
        left = await self._catalog.stock(request.reward_id, request.quantity, request.request_id)
        return pb.StockRewardResponse(stock_left=left)

    async def ListCatalog(
        self, request: pb.ListCatalogRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCatalogResponse:
        catalog = await self._catalog.member_catalog(
            request.member_id, request.category, request.page_size, request.page_token
        )
        return pb.ListCatalogResponse(
            entries=[_entry_to_proto(entry) for entry in catalog.page.items],
            next_page_token=catalog.page.next_page_token,
            points_available=catalog.points_available,
        )

    # -- codes

    async def ImportCodes(
        self, request: pb.ImportCodesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ImportCodesResponse:
        result = await self._codes.import_chunk(
            request.reward_id, request.import_id, request.first_line, list(request.lines)
        )
        return pb.ImportCodesResponse(
            added=result.added,
            problems=[
                pb.LineProblem(
                    line=problem.line,
                    reason=problem.reason,
                    detail=problem.detail,
                    first_seen_line=problem.first_seen_line,
                )
                for problem in result.problems
            ],
            problems_total=result.problems_total,
            codes_free=result.codes_free,
            replayed=result.replayed,
        )

    async def GenerateCodes(
        self, request: pb.GenerateCodesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GenerateCodesResponse:
        generated = await self._codes.generate(
            request.reward_id, request.count, request.length, request.request_id
        )
        return pb.GenerateCodesResponse(added=generated.added, codes_free=generated.codes_free)

    # -- redemptions

    async def Redeem(
        self, request: pb.RedeemRequest, context: grpc.aio.ServicerContext
    ) -> pb.RedeemResponse:
        redemption = await self._redemptions.redeem(
            request.member_id, request.reward_id, request.quantity, request.request_id
        )
        return pb.RedeemResponse(redemption=redemption_to_proto(redemption))

    async def ClaimPrize(
        self, request: pb.ClaimPrizeRequest, context: grpc.aio.ServicerContext
    ) -> pb.ClaimPrizeResponse:
        redemption = await self._redemptions.claim_prize(
            request.member_id, request.prize_unit, request.request_id
        )
        return pb.ClaimPrizeResponse(redemption=redemption_to_proto(redemption))

    async def GetRedemption(
        self, request: pb.GetRedemptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRedemptionResponse:
        redemption = await self._redemptions.get(request.member_id, request.redemption_id)
        return pb.GetRedemptionResponse(redemption=redemption_to_proto(redemption))

    async def ListMyRedemptions(
        self, request: pb.ListMyRedemptionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMyRedemptionsResponse:
        page = await self._redemptions.list_mine(
            request.member_id, request.page_size, request.page_token
        )
        return pb.ListMyRedemptionsResponse(
            redemptions=[redemption_to_proto(r) for r in page.items],
            next_page_token=page.next_page_token,
        )

    async def ListRedemptions(
        self, request: pb.ListRedemptionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRedemptionsResponse:
        state = known(RedemptionState, request.state)
        page = await self._redemptions.list(
            request.reward_id,
            None if state == RedemptionState.UNSPECIFIED else state,
            request.page_size,
            request.page_token,
        )
        return pb.ListRedemptionsResponse(
            redemptions=[redemption_to_proto(r, with_code=False) for r in page.items],
            next_page_token=page.next_page_token,
        )

    async def FulfilRedemption(
        self, request: pb.FulfilRedemptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.FulfilRedemptionResponse:
        redemption = await self._redemptions.fulfil(request.redemption_id, request.note)
        return pb.FulfilRedemptionResponse(redemption=redemption_to_proto(redemption))

    async def CancelRedemption(
        self, request: pb.CancelRedemptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelRedemptionResponse:
        redemption = await self._redemptions.cancel(request.redemption_id, request.reason)
        return pb.CancelRedemptionResponse(redemption=redemption_to_proto(redemption))

    async def RefundRedemption(
        self, request: pb.RefundRedemptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.RefundRedemptionResponse:
        redemption = await self._redemptions.refund(request.redemption_id, request.reason)
        return pb.RefundRedemptionResponse(redemption=redemption_to_proto(redemption))

    # -- preferences and offers

    async def SetPreferences(
        self, request: pb.SetPreferencesRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetPreferencesResponse:
        preferences = await self._offers.set_preferences(
            request.member_id, preferences_from_proto(request.preferences)
        )
        return pb.SetPreferencesResponse(preferences=preferences_to_proto(preferences))

    async def GetPreferences(
        self, request: pb.GetPreferencesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPreferencesResponse:
        preferences = await self._offers.preferences(request.member_id)
        return pb.GetPreferencesResponse(preferences=preferences_to_proto(preferences))

    async def UpsertOffer(
        self, request: pb.UpsertOfferRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpsertOfferResponse:
        offer = await self._offers.upsert(request.offer_id, offer_spec_from_proto(request.spec))
        return pb.UpsertOfferResponse(offer=offer_to_proto(offer))

    async def ArchiveOffer(
        self, request: pb.ArchiveOfferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ArchiveOfferResponse:
        offer = await self._offers.archive(request.offer_id)
        return pb.ArchiveOfferResponse(offer=offer_to_proto(offer))

    async def ListOffers(
        self, request: pb.ListOffersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListOffersResponse:
        page = await self._offers.list(request.page_size, request.page_token)
        return pb.ListOffersResponse(
            offers=[offer_to_proto(offer) for offer in page.items],
            next_page_token=page.next_page_token,
        )

    async def GetMyOffer(
        self, request: pb.GetMyOfferRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetMyOfferResponse:
        view = await self._offers.my_offer(request.member_id, request.visit_id)
        return pb.GetMyOfferResponse(visit=visit_to_proto(view))

    async def AcceptOffer(
        self, request: pb.AcceptOfferRequest, context: grpc.aio.ServicerContext
    ) -> pb.AcceptOfferResponse:
        view = await self._offers.accept(request.member_id, request.visit_id)
        return pb.AcceptOfferResponse(visit=visit_to_proto(view))

    # -- reports

    async def GetRewardReport(
        self, request: pb.GetRewardReportRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRewardReportResponse:
        report = await self._reports.reward(request.reward_id)
        figures = report.figures
        return pb.GetRewardReportResponse(
            report=pb.RewardReport(
                reward_id=report.reward_id,
                redemptions=figures.redemptions,
                units=figures.units,
                points_burned=figures.points_burned,
                reversed=figures.reversed,
                failed=figures.failed,
                stock_left=report.stock_left,
                codes_left=report.codes.free,
                codes_total=report.codes.total,
                codes_low=report.codes_low,
                value_redeemed=pb.Money(
                    amount_minor=report.value_redeemed.amount_minor,
                    currency=report.value_redeemed.currency,
                ),
            )
        )

    async def GetProgramReport(
        self, request: pb.GetProgramReportRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetProgramReportResponse:
        report = await self._reports.program(
            optional_micros(request, "start_time"), optional_micros(request, "end_time")
        )
        return pb.GetProgramReportResponse(
            outstanding_points=report.outstanding_points,
            points_issued=report.points_issued,
            points_redeemed=report.points_redeemed,
            points_expired=report.points_expired,
            redemption_rate=report.redemption_rate,
            value_redeemed=[
                pb.Money(amount_minor=money.amount_minor, currency=money.currency)
                for money in report.value_redeemed
            ],
            redemptions=report.redemptions,
        )
