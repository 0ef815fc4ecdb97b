"""Domain objects for the campaigns tests that need no server: specs,
candidates, members and activities (tests/support/campaigns.py has their
protobuf counterparts)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from services.campaigns.domain.evaluation import Candidate
from services.campaigns.domain.model import (
    Activity,
    Campaign,
    CampaignKind,
    CampaignSpec,
    CampaignStatus,
    Member,
    Pause,
    Purchase,
    Reward,
    Stacking,
)
from services.kit.clock import from_datetime
from services.kit.schedule import LocalTime, Schedule, ScheduleSpec

ZONE = "Europe/Paris"


def at(text: str, zone: str = ZONE) -> int:
    """UTC microseconds of a local ISO time in a zone."""
    return from_datetime(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)))


def local(text: str) -> LocalTime:
    moment = datetime.fromisoformat(text)
    return LocalTime(
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second
    )


def always(zone: str = ZONE) -> ScheduleSpec:
    return ScheduleSpec(time_zone=zone)


def window(start: str, hours: float, zone: str = ZONE, **fields) -> ScheduleSpec:
    return ScheduleSpec(
        time_zone=zone, start=local(start), duration_seconds=int(hours * 3600), **fields
    )


def spec(kind: CampaignKind, schedule: ScheduleSpec | None = None, **fields) -> CampaignSpec:
    budget = 0 if kind is CampaignKind.BASE_RULE else 1_000_000
    values = {"budget_points": budget} | fields
    return CampaignSpec(
        display_name=f"{kind.value.lower()} campaign",
        kind=kind,
        schedule=schedule or always(),
        **values,
    )


def base_rule(points_per_unit: int = 1, **fields) -> CampaignSpec:
    return spec(CampaignKind.BASE_RULE, reward=Reward(points_per_unit=points_per_unit), **fields)


def multiplier(percent: int, group: str = "", **fields) -> CampaignSpec:
    return spec(
        CampaignKind.MULTIPLIER,
        reward=Reward(multiplier_percent=percent),
        stacking=Stacking(group=group),
        **fields,
    )


def fixed(points: int, **fields) -> CampaignSpec:
    return spec(CampaignKind.FIXED_BONUS, reward=Reward(points=points), **fields)


def candidate(
    campaign_id: str, campaign_spec: CampaignSpec, used: int = 0, paused: bool = False
) -> Candidate:
    status = CampaignStatus.PAUSED if paused else CampaignStatus.SCHEDULED
    campaign = Campaign(
        campaign_id=campaign_id,
        version=1,
        spec=campaign_spec,
        status=status,
        create_us=0,
        update_us=0,
        budget_funded=campaign_spec.budget_points,
        budget_used=used,
        pauses=(Pause(0),) if paused else (),
    )
    return Candidate(campaign, Schedule(campaign_spec.schedule))


def member(member_id: str = "m-1", **fields) -> Member:
    return replace(Member(member_id=member_id), **fields)


def purchase(
    amount_minor: int,
    occur: str = "2026-03-07T12:00:00",
    activity_id: str = "a-1",
    zone: str = ZONE,
    **fields,
) -> Activity:
    """A purchase in EUR at a local time in `zone`."""
    bought = Purchase(amount_minor=amount_minor, currency="EUR", skus=fields.pop("skus", ()))
    return activity("purchase", occur, activity_id, zone, purchase=bought, **fields)


def activity(
    kind: str,
    occur: str = "2026-03-07T12:00:00",
    activity_id: str = "a-1",
    zone: str = ZONE,
    **fields,
) -> Activity:
    """An activity of any type at a local time in `zone`."""
    return Activity(
        activity_id=activity_id,
        member_id=fields.pop("member_id", "m-1"),
        type=kind,
        occur_us=at(occur, zone),
        **fields,
    )
