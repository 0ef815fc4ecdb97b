"""Steps over the campaigns use cases with no gRPC in between (the `service`
fixture of tests/campaigns/conftest.py), shared by the service-tier tests."""

from __future__ import annotations

from services.campaigns.domain.model import Activity, CampaignSpec, Member, RefusalReason
from services.campaigns.domain.outcome import Outcome
from tests.support.campaign_specs import member


async def join(service, profile: Member | None = None) -> None:
    """The member as a whole profile (what an update with "*" sends)."""
    profile = profile or member()
    await service.campaigns.members.upsert(profile.member_id, lambda _current: profile)


async def launch(service, campaign_id: str, spec: CampaignSpec) -> None:
    await service.campaigns.management.create(campaign_id, spec)
    await service.campaigns.management.act(campaign_id, "schedule")


async def track(service, tracked: Activity) -> Outcome:
    """Track at the activity's own time (the clock never runs backwards)."""
    service.clock.set(max(service.clock.now_us(), tracked.occur_us))
    return (await service.campaigns.tracking.track(tracked)).outcome


def points_of(outcome: Outcome, campaign_id: str) -> int:
    return sum(a.points for a in outcome.decision.applied if a.campaign_id == campaign_id)


def refusal_of(outcome: Outcome, campaign_id: str) -> RefusalReason | None:
    return next((r.reason for r in outcome.decision.refused if r.campaign_id == campaign_id), None)
