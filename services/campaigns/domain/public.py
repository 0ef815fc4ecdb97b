"""A campaign's public face: what a member may see of it. Its name, its
description, when it is live for this member, what it pays and for what;
never its budget, what is left of it, or its targeting (tiers, segments,
opt-ins, the first-N quota), which decide who sees it at all."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from services.campaigns.domain.evaluation import Candidate, default_types, targets
from services.campaigns.domain.lifecycle import derive_state
from services.campaigns.domain.model import (
    CampaignKind,
    CampaignState,
    CampaignStatus,
    Member,
    MemberLimit,
    Reward,
)
from services.kit.schedule import Window, zone

SHOWN_WINDOWS = 5


class PublicState(Enum):
    UPCOMING = "UPCOMING"
    LIVE = "LIVE"
    PAUSED = "PAUSED"
    # No window left, cancelled, or its budget spent: members see "over", not why.
    ENDED = "ENDED"


@dataclass(frozen=True, slots=True)
class PublicWindow:
    window: Window
    local_start: str
    local_end: str
    zone_name: str


@dataclass(frozen=True, slots=True)
class PublicCampaign:
    campaign_id: str
    display_name: str
    description: str
    kind: CampaignKind
    state: PublicState
    reward: Reward
    windows: tuple[PublicWindow, ...]
    end_us: int | None
    # For what it pays, and how much at most: no targeting among these.
    activity_types: tuple[str, ...]
    min_spend_minor: int
    currency: str
    member_limits: tuple[MemberLimit, ...]


def public_face(entry: Candidate, member: Member, now_us: int) -> PublicCampaign | None:
    """The campaign as `member` may see it now; None when they may not see it at all
    (a draft, or a campaign that does not target them)."""
    campaign, schedule = entry.campaign, entry.schedule
    if campaign.status is CampaignStatus.DRAFT or not targets(campaign.spec.conditions, member):
        return None
    tz = zone(member.time_zone) if schedule.member_local and member.time_zone else schedule.zone
    windows = tuple(
        PublicWindow(window, start.isoformat(), end.isoformat(), tz.key)
        for window, start, end in schedule.occurrences(now_us, SHOWN_WINDOWS, tz)
    )
    state = derive_state(campaign, schedule, now_us)
    if state in (CampaignState.ENDED, CampaignState.BUDGET_EXHAUSTED):
        public = PublicState.ENDED
    elif state is CampaignState.PAUSED:
        public = PublicState.PAUSED
    elif schedule.window_at(now_us, tz) is not None:
        public = PublicState.LIVE
    else:
        # In a member's own zone the next window may lie beyond the campaign zone's last.
        public = PublicState.UPCOMING if windows else PublicState.ENDED
    spec = campaign.spec
    conditions = spec.conditions
    return PublicCampaign(
        campaign_id=campaign.campaign_id,
        display_name=spec.display_name,
        description=spec.description,
        kind=spec.kind,
        state=public,
        reward=spec.reward,
        windows=windows,
        end_us=spec.schedule.end_us,
        activity_types=conditions.activity_types or default_types(spec.kind),
        min_spend_minor=conditions.min_spend_minor,
        currency=conditions.currency,
        member_limits=spec.limits.member_limits,
    )
