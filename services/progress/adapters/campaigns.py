"""Campaigns' WatchActivities as progress events.

Fields read from each WatchActivitiesResponse (see docs/progress.md):
`sequence`; `activity.activity_id`, `.member_id`, `.type`, `.occur_time`,
`.attributes`, `.purchase.amount_minor`, `.refund.purchase_activity_id`,
`.refund.amount_minor`; `points` (what it earned) and `time_zone` (the
member's zone as campaigns knew it); `record_time` (when campaigns
accepted it, for the lag)."""

from __future__ import annotations

from typing import Any

from loyalty.campaigns.v1 import campaigns_service_pb2 as campaigns_pb

from services.kit.feeds import FeedItem
from services.progress.adapters.contract import find_contract
from services.progress.domain.events import ActivityEvent, Event

FEED = "campaigns"
# The real RPC, once campaigns has it.
CONTRACT = find_contract(
    campaigns_pb,
    "CampaignsService",
    "WatchActivities",
    "WatchActivitiesRequest",
    "WatchActivitiesResponse",
)


def item_of(response: Any) -> FeedItem[list[Event]]:
    activity = response.activity
    at = response.record_time.ToMicroseconds() if response.HasField("record_time") else 0
    if not activity.member_id or not activity.activity_id:
        return FeedItem(response.sequence, [], at)
    refund = activity.refund if activity.HasField("refund") else None
    event = ActivityEvent(
        activity_id=activity.activity_id,
        member_id=activity.member_id,
        type=activity.type,
        occur_us=activity.occur_time.ToMicroseconds(),
        points=response.points,
        time_zone=response.time_zone,
        amount_minor=(
            refund.amount_minor
            if refund is not None
            else activity.purchase.amount_minor
            if activity.HasField("purchase")
            else 0
        ),
        refunds_activity_id=refund.purchase_activity_id if refund is not None else "",
        attributes=tuple(sorted(activity.attributes.items())),
    )
    return FeedItem(response.sequence, [event], at)
