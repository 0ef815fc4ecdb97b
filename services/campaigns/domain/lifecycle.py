"""Manager actions on a campaign and the state members see.

The member-visible state is derived from the manager's intent, the clock and
the budget whenever it is read, so no background job can miss a transition.
"""

from __future__ import annotations

from dataclasses import replace

from services.campaigns.domain.model import (
    Campaign,
    CampaignKind,
    CampaignState,
    CampaignStatus,
    Pause,
)
from services.kit.errors import FailedPrecondition
from services.kit.schedule import Schedule

# action -> (statuses it may start from, status it leads to)
ACTIONS: dict[str, tuple[frozenset[CampaignStatus], CampaignStatus]] = {
    "schedule": (frozenset({CampaignStatus.DRAFT}), CampaignStatus.SCHEDULED),
    "pause": (frozenset({CampaignStatus.SCHEDULED}), CampaignStatus.PAUSED),
    "resume": (frozenset({CampaignStatus.PAUSED}), CampaignStatus.SCHEDULED),
    "cancel": (
        frozenset({CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.PAUSED}),
        CampaignStatus.CANCELLED,
    ),
    "archive": (frozenset({CampaignStatus.CANCELLED}), CampaignStatus.ARCHIVED),
}


def smallest_award(campaign: Campaign) -> int:
    """The fewest points one award can take from the budget."""
    reward = campaign.spec.reward
    if campaign.spec.kind is CampaignKind.MULTIPLIER:
        return 1
    if campaign.spec.kind is CampaignKind.REFERRAL_BONUS:
        return max(1, min(p for p in (reward.referrer_points, reward.referred_points) if p > 0))
    return max(1, reward.points)


def derive_state(campaign: Campaign, schedule: Schedule, now_us: int) -> CampaignState:
    status = campaign.status
    if status is CampaignStatus.DRAFT:
        return CampaignState.DRAFT
    if status in (CampaignStatus.CANCELLED, CampaignStatus.ARCHIVED):
        return CampaignState.ENDED
    window = schedule.window_at(now_us)
    if window is None and not schedule.occurrences(now_us, 1):
        return CampaignState.ENDED
    if status is CampaignStatus.PAUSED:
        return CampaignState.PAUSED
    if campaign.spec.is_bonus and campaign.budget_remaining < smallest_award(campaign):
        return CampaignState.BUDGET_EXHAUSTED
    return CampaignState.LIVE if window is not None else CampaignState.SCHEDULED


def apply_action(
    campaign: Campaign, action: str, state: CampaignState, now_us: int
) -> Campaign | None:
    """The campaign after the action; None when it is already there (a retry).
    FAILED_PRECONDITION when the action does not fit the campaign now. A pause
    and its resume are kept, so activities are judged by when they happened."""
    sources, target = ACTIONS[action]
    if campaign.status is target:
        return None
    if campaign.status not in sources and not (
        action == "archive" and state is CampaignState.ENDED
    ):
        raise FailedPrecondition(
            "CAMPAIGN_STATUS_CONFLICT",
            f"cannot {action} campaign {campaign.campaign_id} while it is "
            f"{campaign.status.value.lower()}",
            {"campaign_id": campaign.campaign_id, "status": campaign.status.value},
        )
    pauses = campaign.pauses
    if action == "pause":
        pauses += (Pause(now_us),)
    elif action == "resume" and pauses and pauses[-1].end_us is None:
        pauses = (*pauses[:-1], replace(pauses[-1], end_us=now_us))
    return replace(campaign, status=target, update_us=now_us, pauses=pauses)
