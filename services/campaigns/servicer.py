"""Protobuf <-> domain translation for CampaignsService; the kit maps errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import Enum
from functools import cache
from typing import TYPE_CHECKING

import grpc
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb
from loyalty.campaigns.v1 import campaigns_service_pb2_grpc as pb_grpc

from services.campaigns.base import CampaignView
from services.campaigns.domain.evaluation import Decision
from services.campaigns.domain.model import (
    Activity,
    Birthday,
    CampaignKind,
    CampaignSpec,
    CampaignState,
    Conditions,
    Limits,
    Member,
    MemberLimit,
    Purchase,
    ReferralStage,
    Refund,
    Reward,
    Stacking,
    StackingMode,
)
from services.campaigns.domain.outcome import Outcome
from services.campaigns.domain.public import PublicCampaign
from services.campaigns.domain.records import CampaignFigures
from services.kit.errors import FieldViolation, InvalidArgument
from services.kit.masks import apply_update, check_mask
from services.kit.proto_time import timestamp
from services.kit.schedule import LimitPeriod, LocalTime, ScheduleSpec, ZoneMode

if TYPE_CHECKING:
    from services.campaigns.server import Campaigns

NANOS_PER_SECOND = 1_000_000_000
# A member's fields an update never changes.
MEMBER_FIXED = ("member_id", "create_time", "update_time")
# A spec's parts an update without a mask changes field by field.
SPEC_GROUPS = ("reward", "conditions", "schedule", "limits", "stacking")


def _enum_in(enum_type, proto_enum, prefix: str, value: int, field: str, default=None):
    """A proto enum value as a domain Enum; UNSPECIFIED gives `default` or a violation."""
    if value == 0 and default is not None:
        return default
    if value == 0:
        raise InvalidArgument([FieldViolation(field, "is required")])
    if value not in proto_enum.values():
        raise InvalidArgument([FieldViolation(field, f"unknown value {value}")])
    return enum_type(proto_enum.Name(value).removeprefix(prefix))


@cache
def _enum_out(proto_enum, prefix: str, value: Enum | None) -> int:
    """Cached: the generated enum wrapper's lookup is slow and breakdowns repeat it."""
    return proto_enum.Value(prefix + value.value) if value is not None else 0


def _instant(message, field: str, path: str) -> int | None:
    """A client's Timestamp as microseconds, None when unset. Its range is the
    domain's to check (validation.check_instant), with one message for every
    side it misses on; only nanos outside a second are refused here."""
    if not message.HasField(field):
        return None
    value = getattr(message, field)
    if not 0 <= value.nanos < NANOS_PER_SECOND:
        raise InvalidArgument([FieldViolation(path, "nanos must be 0 to 999,999,999")])
    return value.seconds * 1_000_000 + value.nanos // 1_000


# Members.


def member_in(message: pb.Member) -> Member:
    birthday = message.birthday if message.HasField("birthday") else None
    return Member(
        member_id=message.member_id,
        time_zone=message.time_zone,
        birthday=Birthday(birthday.month, birthday.day, birthday.year) if birthday else None,
        tier=message.tier,
        segments=tuple(message.segments),
        referrer_member_id=message.referrer_member_id,
        opt_ins=tuple(message.opt_ins),
    )


def member_out(member: Member) -> pb.Member:
    message = pb.Member(
        member_id=member.member_id,
        time_zone=member.time_zone,
        tier=member.tier,
        segments=member.segments,
        referrer_member_id=member.referrer_member_id,
        opt_ins=member.opt_ins,
        tiers=member.tiers,
        create_time=timestamp(member.create_us),
        update_time=timestamp(member.update_us),
    )
    if member.birthday is not None:
        b = member.birthday
        message.birthday.CopyFrom(pb.Birthday(month=b.month, day=b.day, year=b.year))
    return message


# Activities.


def activity_in(message: pb.Activity) -> Activity:
    purchase = refund = None
    if message.HasField("purchase"):
        p = message.purchase
        purchase = Purchase(p.amount_minor, p.currency, tuple(p.skus))
    if message.HasField("refund"):
        refund = Refund(message.refund.purchase_activity_id, message.refund.amount_minor)
    return Activity(
        activity_id=message.activity_id,
        member_id=message.member_id,
        type=message.type,
        occur_us=_instant(message, "occur_time", "activity.occur_time"),
        purchase=purchase,
        refund=refund,
        attributes=tuple(sorted(message.attributes.items())),
    )


def activity_out(activity: Activity) -> pb.Activity:
    message = pb.Activity(
        activity_id=activity.activity_id,
        member_id=activity.member_id,
        type=activity.type,
        attributes=dict(activity.attributes),
    )
    if activity.occur_us is not None:
        message.occur_time.CopyFrom(timestamp(activity.occur_us))
    if activity.purchase is not None:
        bought = activity.purchase
        message.purchase.CopyFrom(
            pb.Purchase(
                amount_minor=bought.amount_minor, currency=bought.currency, skus=bought.skus
            )
        )
    if activity.refund is not None:
        message.refund.CopyFrom(
            pb.Refund(
                purchase_activity_id=activity.refund.purchase_activity_id,
                amount_minor=activity.refund.amount_minor,
            )
        )
    return message


def _decision_out(decision: Decision, activity_id: str) -> dict:
    return {
        "base_points": decision.base_points,
        "base_campaign_id": decision.base_campaign_id,
        "applied": [
            pb.AppliedCampaign(
                campaign_id=a.campaign_id,
                campaign_version=a.version,
                kind=_enum_out(pb.CampaignKind, "CAMPAIGN_KIND_", a.kind),
                points=a.points,
                explanation=a.explanation,
                transfer_ids=[leg.transfer_id(activity_id) for leg in a.legs],
            )
            for a in decision.applied
        ],
        "refused": [
            pb.RefusedCampaign(
                campaign_id=r.campaign_id,
                campaign_version=r.version,
                reason=_enum_out(pb.RefusalReason, "REFUSAL_REASON_", r.reason),
                explanation=r.explanation,
            )
            for r in decision.refused
        ],
    }


def breakdown_out(outcome: Outcome, member_id: str) -> pb.Breakdown:
    message = pb.Breakdown(
        activity_id=outcome.activity_id,
        total_points=outcome.decision.points_for(member_id),
        transfer_ids=outcome.transfer_ids,
        balance=outcome.balance,
        **_decision_out(outcome.decision, outcome.activity_id),
    )
    if outcome.expire_us is not None:
        message.expire_time.CopyFrom(timestamp(outcome.expire_us))
    no_points = outcome.decision.no_points
    if no_points is not None:
        message.no_points.CopyFrom(
            pb.NoPoints(
                reason=_enum_out(pb.RefusalReason, "REFUSAL_REASON_", no_points.reason),
                explanation=no_points.explanation,
            )
        )
    if outcome.clawback is not None:
        c = outcome.clawback
        message.clawback.CopyFrom(
            pb.Clawback(
                purchase_activity_id=c.purchase_activity_id,
                points_reversed=c.points_reversed,
                points_unrecovered=c.points_unrecovered,
                transfer_ids=c.transfer_ids,
            )
        )
    return message


# Campaigns.


def _local_in(message: pb.LocalDateTime) -> LocalTime:
    return LocalTime(
        message.year, message.month, message.day, message.hours, message.minutes, message.seconds
    )


def _local_out(moment: LocalTime) -> pb.LocalDateTime:
    return pb.LocalDateTime(
        year=moment.year,
        month=moment.month,
        day=moment.day,
        hours=moment.hours,
        minutes=moment.minutes,
        seconds=moment.seconds,
    )


def spec_in(message: pb.CampaignSpec) -> CampaignSpec:
    r, c, s, lim, st = (
        message.reward,
        message.conditions,
        message.schedule,
        message.limits,
        message.stacking,
    )
    kind = _enum_in(CampaignKind, pb.CampaignKind, "CAMPAIGN_KIND_", message.kind, "spec.kind")
    stage = None
    if kind is CampaignKind.REFERRAL_BONUS:
        stage = _enum_in(
            ReferralStage,
            pb.ReferralStage,
            "REFERRAL_STAGE_",
            r.referral_stage,
            "spec.reward.referral_stage",
        )
    schedule = ScheduleSpec(
        time_zone=s.time_zone,
        start=_local_in(s.start) if s.HasField("start") else None,
        duration_seconds=s.duration.seconds if s.HasField("duration") else 0,
        rrule=s.rrule,
        exclusions=tuple(_local_in(e) for e in s.exclusions),
        zone_mode=_enum_in(
            ZoneMode,
            pb.ZoneMode,
            "ZONE_MODE_",
            s.zone_mode,
            "spec.schedule.zone_mode",
            default=ZoneMode.CAMPAIGN,
        ),
        end_us=_instant(s, "end_time", "spec.schedule.end_time"),
    )
    limits = Limits(
        member_limits=tuple(
            MemberLimit(
                _enum_in(
                    LimitPeriod,
                    pb.LimitPeriod,
                    "LIMIT_PERIOD_",
                    limit.period,
                    f"spec.limits.member_limits[{index}].period",
                ),
                limit.max_points,
            )
            for index, limit in enumerate(lim.member_limits)
        ),
        max_members=lim.max_members,
    )
    return CampaignSpec(
        display_name=message.display_name,
        kind=kind,
        schedule=schedule,
        reward=Reward(
            points_per_unit=r.points_per_unit,
            minor_units_per_unit=r.minor_units_per_unit or 100,
            points=r.points,
            multiplier_percent=r.multiplier_percent,
            probability_ppm=r.probability_ppm,
            referral_stage=stage,
            referrer_points=r.referrer_points,
            referred_points=r.referred_points,
        ),
        conditions=Conditions(
            activity_types=tuple(c.activity_types),
            min_spend_minor=c.min_spend_minor,
            currency=c.currency,
            skus=tuple(c.skus),
            attributes=tuple(sorted(c.attributes.items())),
            tiers=tuple(c.tiers),
            segments=tuple(c.segments),
            required_opt_in=c.required_opt_in,
        ),
        budget_points=message.budget_points,
        limits=limits,
        stacking=Stacking(
            group=st.group,
            mode=_enum_in(
                StackingMode,
                pb.StackingMode,
                "STACKING_MODE_",
                st.mode,
                "spec.stacking.mode",
                default=StackingMode.STACKABLE,
            ),
            priority=st.priority,
        ),
        description=message.description,
    )


def spec_out(spec: CampaignSpec) -> pb.CampaignSpec:
    s = spec.schedule
    schedule = pb.Schedule(
        rrule=s.rrule,
        exclusions=[_local_out(e) for e in s.exclusions],
        time_zone=s.time_zone,
        zone_mode=_enum_out(pb.ZoneMode, "ZONE_MODE_", s.zone_mode),
    )
    if s.start is not None:
        schedule.start.CopyFrom(_local_out(s.start))
        schedule.duration.seconds = s.duration_seconds
    if s.end_us is not None:
        schedule.end_time.CopyFrom(timestamp(s.end_us))
    c = spec.conditions
    return pb.CampaignSpec(
        display_name=spec.display_name,
        kind=_enum_out(pb.CampaignKind, "CAMPAIGN_KIND_", spec.kind),
        reward=_reward_out(spec.reward),
        conditions=pb.Conditions(
            activity_types=c.activity_types,
            min_spend_minor=c.min_spend_minor,
            currency=c.currency,
            skus=c.skus,
            attributes=dict(c.attributes),
            tiers=c.tiers,
            segments=c.segments,
            required_opt_in=c.required_opt_in,
        ),
        schedule=schedule,
        budget_points=spec.budget_points,
        limits=pb.Limits(
            member_limits=[_limit_out(limit) for limit in spec.limits.member_limits],
            max_members=spec.limits.max_members,
        ),
        stacking=pb.Stacking(
            group=spec.stacking.group,
            mode=_enum_out(pb.StackingMode, "STACKING_MODE_", spec.stacking.mode),
            priority=spec.stacking.priority,
        ),
        description=spec.description,
    )


def _reward_out(reward: Reward) -> pb.Reward:
    return pb.Reward(
        points_per_unit=reward.points_per_unit,
        minor_units_per_unit=reward.minor_units_per_unit,
        points=reward.points,
        multiplier_percent=reward.multiplier_percent,
        probability_ppm=reward.probability_ppm,
        referral_stage=_enum_out(pb.ReferralStage, "REFERRAL_STAGE_", reward.referral_stage),
        referrer_points=reward.referrer_points,
        referred_points=reward.referred_points,
    )


def _limit_out(limit: MemberLimit) -> pb.MemberLimit:
    return pb.MemberLimit(
        period=_enum_out(pb.LimitPeriod, "LIMIT_PERIOD_", limit.period),
        max_points=limit.max_points,
    )


def public_out(face: PublicCampaign) -> pb.PublicCampaign:
    message = pb.PublicCampaign(
        campaign_id=face.campaign_id,
        display_name=face.display_name,
        description=face.description,
        kind=_enum_out(pb.CampaignKind, "CAMPAIGN_KIND_", face.kind),
        state=_enum_out(pb.PublicState, "PUBLIC_STATE_", face.state),
        reward=_reward_out(face.reward),
        windows=[
            pb.Occurrence(
                start_time=timestamp(item.window.start_us),
                end_time=timestamp(item.window.end_us),
                local_start=item.local_start,
                local_end=item.local_end,
                time_zone=item.zone_name,
            )
            for item in face.windows
        ],
        activity_types=face.activity_types,
        min_spend_minor=face.min_spend_minor,
        currency=face.currency,
        member_limits=[_limit_out(limit) for limit in face.member_limits],
    )
    if face.end_us is not None:
        message.end_time.CopyFrom(timestamp(face.end_us))
    return message


def campaign_out(view: CampaignView) -> pb.Campaign:
    campaign = view.campaign
    return pb.Campaign(
        campaign_id=campaign.campaign_id,
        version=campaign.version,
        spec=spec_out(campaign.spec),
        status=_enum_out(pb.CampaignStatus, "CAMPAIGN_STATUS_", campaign.status),
        state=_enum_out(pb.CampaignState, "CAMPAIGN_STATE_", view.state),
        budget_account_id=campaign.budget_account_id,
        budget_used=campaign.budget_used,
        budget_remaining=campaign.budget_remaining,
        create_time=timestamp(campaign.create_us),
        update_time=timestamp(campaign.update_us),
    )


def _refusals(figures: CampaignFigures, day: str | None) -> list[pb.RefusalCount]:
    return [
        pb.RefusalCount(reason=_enum_out(pb.RefusalReason, "REFUSAL_REASON_", reason), count=count)
        for reason, count in sorted(
            figures.refusals_on(day).items(), key=lambda item: item[0].value
        )
    ]


class CampaignsServicer(pb_grpc.CampaignsServiceServicer):
    """Each RPC reaches its use case in one call."""

    def __init__(self, campaigns: Campaigns) -> None:
        self._members = campaigns.members
        self._management = campaigns.management
        self._tracking = campaigns.tracking
        self._stats = campaigns.stats
        self._transitions = campaigns.transitions
        self._public = campaigns.public
        self._feed = campaigns.feed

    async def UpsertMember(
        self, request: pb.UpsertMemberRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpsertMemberResponse:
        def change(current: Member) -> Member:
            return member_in(
                apply_update(
                    member_out(current), request.member, request.update_mask, fixed=MEMBER_FIXED
                )
            )

        upserted = await self._members.upsert(request.member.member_id, change)
        return pb.UpsertMemberResponse(member=member_out(upserted.member), created=upserted.created)

    async def GetMember(
        self, request: pb.GetMemberRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetMemberResponse:
        return pb.GetMemberResponse(member=member_out(await self._members.get(request.member_id)))

    async def TrackActivity(
        self, request: pb.TrackActivityRequest, context: grpc.aio.ServicerContext
    ) -> pb.TrackActivityResponse:
        activity = activity_in(request.activity)
        tracked = await self._tracking.track(activity)
        return pb.TrackActivityResponse(
            breakdown=breakdown_out(tracked.outcome, activity.member_id),
            replayed=tracked.replayed,
        )

    async def DryRunActivity(
        self, request: pb.DryRunActivityRequest, context: grpc.aio.ServicerContext
    ) -> pb.DryRunActivityResponse:
        activity = activity_in(request.activity)
        outcome = await self._tracking.dry_run(activity)
        return pb.DryRunActivityResponse(breakdown=breakdown_out(outcome, activity.member_id))

    async def CreateCampaign(
        self, request: pb.CreateCampaignRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateCampaignResponse:
        view = await self._management.create(request.campaign_id, spec_in(request.spec))
        return pb.CreateCampaignResponse(campaign=campaign_out(view))

    async def UpdateCampaign(
        self, request: pb.UpdateCampaignRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateCampaignResponse:
        check_mask(request.update_mask, pb.CampaignSpec.DESCRIPTOR)

        def change(current: CampaignSpec) -> CampaignSpec:
            merged = apply_update(
                spec_out(current), request.spec, request.update_mask, groups=SPEC_GROUPS
            )
            return spec_in(merged)

        view = await self._management.update(request.campaign_id, change, request.expected_version)
        return pb.UpdateCampaignResponse(campaign=campaign_out(view))

    async def GetCampaign(
        self, request: pb.GetCampaignRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCampaignResponse:
        view = await self._management.get(request.campaign_id)
        return pb.GetCampaignResponse(campaign=campaign_out(view))

    async def ListCampaigns(
        self, request: pb.ListCampaignsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCampaignsResponse:
        states = {
            _enum_in(CampaignState, pb.CampaignState, "CAMPAIGN_STATE_", state, f"states[{index}]")
            for index, state in enumerate(request.states)
        }
        page = await self._management.list_campaigns(
            states,
            _instant(request, "start_time", "start_time"),
            _instant(request, "end_time", "end_time"),
            request.page_size,
            request.page_token,
        )
        return pb.ListCampaignsResponse(
            campaigns=[campaign_out(view) for view in page.items],
            next_page_token=page.next_page_token,
        )

    async def GetPublicCampaign(
        self, request: pb.GetPublicCampaignRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPublicCampaignResponse:
        face = await self._public.get(request.campaign_id, request.member_id)
        return pb.GetPublicCampaignResponse(campaign=public_out(face))

    async def ListPublicCampaigns(
        self, request: pb.ListPublicCampaignsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListPublicCampaignsResponse:
        page = await self._public.list_campaigns(
            request.member_id, request.page_size, request.page_token
        )
        return pb.ListPublicCampaignsResponse(
            campaigns=[public_out(face) for face in page.items],
            next_page_token=page.next_page_token,
        )

    async def _act(self, request, action: str) -> pb.Campaign:
        return campaign_out(await self._management.act(request.campaign_id, action))

    async def ScheduleCampaign(
        self, request: pb.ScheduleCampaignRequest, context: grpc.aio.ServicerContext
    ) -> pb.ScheduleCampaignResponse:
        return pb.ScheduleCampaignResponse(campaign=await self._act(request, "schedule"))

    async def PauseCampaign(
        self, request: pb.PauseCampaignRequest, context: grpc.aio.ServicerContext
    ) -> pb.PauseCampaignResponse:
        return pb.PauseCampaignResponse(campaign=await self._act(request, "pause"))

    async def ResumeCampaign(
        self, request: pb.ResumeCampaignRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResumeCampaignResponse:
        return pb.ResumeCampaignResponse(campaign=await self._act(request, "resume"))

    async def CancelCampaign(
        self, request: pb.CancelCampaignRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelCampaignResponse:
        return pb.CancelCampaignResponse(campaign=await self._act(request, "cancel"))

    async def ArchiveCampaign(
        self, request: pb.ArchiveCampaignRequest, context: grpc.aio.ServicerContext
    ) -> pb.ArchiveCampaignResponse:
        return pb.ArchiveCampaignResponse(campaign=await self._act(request, "archive"))

    async def GetSchedule(
        self, request: pb.GetScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetScheduleResponse:
        found = await self._management.schedule(
            request.campaign_id,
            request.count,
            _instant(request, "after_time", "after_time"),
            request.time_zone,
        )
        return pb.GetScheduleResponse(
            occurrences=[
                pb.Occurrence(
                    start_time=timestamp(occurrence.window.start_us),
                    end_time=timestamp(occurrence.window.end_us),
                    local_start=occurrence.local_start.isoformat(),
                    local_end=occurrence.local_end.isoformat(),
                    time_zone=found.zone_name,
                )
                for occurrence in found.occurrences
            ]
        )

    async def GetCampaignStats(
        self, request: pb.GetCampaignStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCampaignStatsResponse:
        stats = await self._stats.stats(request.campaign_id)
        figures, campaign = stats.figures, stats.campaign
        return pb.GetCampaignStatsResponse(
            stats=pb.CampaignStats(
                campaign_id=campaign.campaign_id,
                points_awarded=figures.points,
                activities=figures.activities,
                unique_members=figures.members,
                budget_funded=campaign.budget_funded,
                budget_used=campaign.budget_used,
                budget_left=campaign.budget_remaining,
                ledger_budget_balance=stats.ledger_balance,
                reconciled=stats.reconciled,
                refusals=_refusals(figures, None),
                days=[
                    pb.DayStats(
                        date=day.day,
                        points_awarded=day.points,
                        activities=day.activities,
                        unique_members=day.members,
                        refusals=_refusals(figures, day.day),
                    )
                    for day in figures.days
                ],
            )
        )

    async def WatchCampaigns(
        self, request: pb.WatchCampaignsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchCampaignsResponse]:
        async for transition in self._transitions.watch(request.after_sequence):
            change = transition.change
            yield pb.WatchCampaignsResponse(
                transition=pb.CampaignTransition(
                    sequence=transition.sequence,
                    campaign_id=change.campaign_id,
                    from_state=_enum_out(pb.CampaignState, "CAMPAIGN_STATE_", change.before),
                    to_state=_enum_out(pb.CampaignState, "CAMPAIGN_STATE_", change.after),
                    effect_time=timestamp(change.effect_us),
                )
            )

    async def WatchActivities(
        self, request: pb.WatchActivitiesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchActivitiesResponse]:
        async for event in self._feed.watch(request.after_sequence):
            yield pb.WatchActivitiesResponse(
                sequence=event.sequence,
                activity=activity_out(event.activity),
                points=event.points,
                time_zone=event.time_zone,
                record_time=timestamp(event.record_us),
                credits=[
                    pb.MemberPoints(member_id=credit.member_id, points=credit.points)
                    for credit in event.credits
                ],
            )
