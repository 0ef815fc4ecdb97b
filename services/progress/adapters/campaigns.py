"""Campaigns' WatchActivities as progress events.

Fields read from each WatchActivitiesResponse (see docs/progress.md):
`sequence`; `activity.activity_id`, `.member_id`, `.type`, `.occur_time`,
`.attributes`, `.purchase.amount_minor`, `.refund.purchase_activity_id`,
`.refund.amount_minor`; `points` (what it credited its member, negative for
a refund) and `time_zone` (the member's zone as campaigns knew it);
`record_time` (when it settled, for the lag)."""

from __future__ import annotations

from typing import Any

from loyalty.campaigns.v1 import campaigns_service_pb2 as campaigns_pb

from services.kit.feeds import FeedItem
from services.progress.adapters.contract import find_contract
from services.progress.domain.events import ActivityEvent, Event

FEED = "campaigns"
CONTRACT = find_contract(
    campaigns_pb,
    "CampaignsService",
    "WatchActivities",
    "WatchActivitiesRequest",
    "WatchActivitiesResponse",
)


def item_of(response: Any) -> FeedItem[list[Event]]:
    activity = response.activity
    # An unset Timestamp or Purchase reads as zeros: no HasField for them.
    at = response.record_time.ToMicroseconds()
    activity_id, member_id = activity.activity_id, activity.member_id
    if not member_id or not activity_id:
        return FeedItem(response.sequence, [], at)
    if activity.HasField("refund"):
        refund = activity.refund
        amount_minor, refunds_activity_id = refund.amount_minor, refund.purchase_activity_id
    else:
        amount_minor, refunds_activity_id = activity.purchase.amount_minor, ""
    attributes = activity.attributes
    event = ActivityEvent(
        activity_id=activity_id,
        member_id=member_id,
        type=activity.type,
        occur_us=activity.occur_time.ToMicroseconds(),
        points=response.points,
        time_zone=response.time_zone,
        amount_minor=amount_minor,
        refunds_activity_id=refunds_activity_id,
        attributes=tuple(sorted(attributes.items())) if attributes else (),
    )
    return FeedItem(response.sequence, [event], at)
