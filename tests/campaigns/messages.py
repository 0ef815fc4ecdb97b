"""Protobuf builders for integration tests."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import duration_pb2, timestamp_pb2
from loyalty.campaigns.v1 import campaigns_service_pb2 as pb

from tests.campaigns.builders import ZONE, at


def stamp(micros: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=micros // 1_000_000, nanos=micros % 1_000_000 * 1000)


def local(text: str) -> pb.LocalDateTime:
    m = datetime.fromisoformat(text)
    return pb.LocalDateTime(
        year=m.year, month=m.month, day=m.day, hours=m.hour, minutes=m.minute, seconds=m.second
    )


def window(start: str, hours: float, zone: str = ZONE, **fields) -> pb.Schedule:
    return pb.Schedule(
        start=local(start),
        duration=duration_pb2.Duration(seconds=int(hours * 3600)),
        time_zone=zone,
        **fields,
    )


def always(zone: str = ZONE) -> pb.Schedule:
    return pb.Schedule(time_zone=zone)


def campaign(name: str, kind: int, reward: pb.Reward, budget: int, **fields) -> pb.CampaignSpec:
    """A spec, always live unless a schedule is given."""
    return pb.CampaignSpec(
        display_name=name,
        kind=kind,
        reward=reward,
        budget_points=budget,
        schedule=fields.pop("schedule", always()),
        **fields,
    )


def base_rule(points_per_unit: int = 1, **fields) -> pb.CampaignSpec:
    reward = pb.Reward(points_per_unit=points_per_unit)
    return campaign("1 point per euro", pb.CAMPAIGN_KIND_BASE_RULE, reward, 0, **fields)


def fixed(points: int, budget: int = 10_000, **fields) -> pb.CampaignSpec:
    reward = pb.Reward(points=points)
    return campaign(
        f"{points} bonus points", pb.CAMPAIGN_KIND_FIXED_BONUS, reward, budget, **fields
    )


def multiplier(percent: int, budget: int = 10_000, **fields) -> pb.CampaignSpec:
    reward = pb.Reward(multiplier_percent=percent)
    return campaign(f"{percent}% points", pb.CAMPAIGN_KIND_MULTIPLIER, reward, budget, **fields)


def member(member_id: str = "m-1", **fields) -> pb.Member:
    return pb.Member(member_id=member_id, **fields)


def purchase(
    activity_id: str, amount_minor: int, occur_us: int, member_id: str = "m-1", **fields
) -> pb.Activity:
    return pb.Activity(
        activity_id=activity_id,
        member_id=member_id,
        type="purchase",
        occur_time=stamp(occur_us),
        purchase=pb.Purchase(amount_minor=amount_minor, currency="EUR"),
        **fields,
    )


def activity(activity_id: str, kind: str, occur_us: int, member_id: str = "m-1", **fields):
    return pb.Activity(
        activity_id=activity_id,
        member_id=member_id,
        type=kind,
        occur_time=stamp(occur_us),
        **fields,
    )


__all__ = ["ZONE", "at"]
