"""What players see of campaigns: each one's public face, for one member
(domain/public.py), never a budget or a targeting rule."""

from __future__ import annotations

from dataclasses import dataclass

from services.campaigns.base import UseCases, campaign_not_found, existing_member
from services.campaigns.domain.evaluation import Candidate
from services.campaigns.domain.model import Campaign, Member
from services.campaigns.domain.public import PublicCampaign, PublicState, public_face
from services.campaigns.domain.validation import check_campaign_id, check_member_id
from services.campaigns.store import CampaignsUnit
from services.kit.errors import Violations
from services.kit.paging import Page, decode_page_token, page_of, page_size

MAX_PAGE = 500
# What a member can still earn from.
LISTED = frozenset({PublicState.LIVE, PublicState.UPCOMING, PublicState.PAUSED})


@dataclass(frozen=True, slots=True)
class _Read:
    member: Member
    campaigns: list[Campaign]


class PublicCampaigns(UseCases):
    async def get(self, campaign_id: str, member_id: str) -> PublicCampaign:
        """NOT_FOUND, as for an unknown id, when the member may not see it."""
        violations = Violations()
        check_campaign_id(violations, campaign_id)
        check_member_id(violations, member_id)
        violations.raise_if_any()

        def work(unit: CampaignsUnit) -> _Read:
            campaign = unit.campaign(campaign_id)
            return _Read(existing_member(unit, member_id), [campaign] if campaign else [])

        read = await self._store.read(work)
        face = next(iter(self._faces(read)), None)
        if face is None:
            raise campaign_not_found(campaign_id)
        return face

    async def list_campaigns(
        self, member_id: str, requested_size: int, page_token: str
    ) -> Page[PublicCampaign]:
        violations = Violations()
        check_member_id(violations, member_id)
        size = page_size(violations, requested_size, MAX_PAGE)
        violations.raise_if_any()
        query = ("public", member_id)
        after = decode_page_token(page_token, query, str) or ""
        read = await self._store.read(
            lambda unit: _Read(existing_member(unit, member_id), unit.campaigns(after))
        )
        listed = []
        for face in self._faces(read):
            if face.state in LISTED:
                listed.append(face)
                if len(listed) > size:
                    break
        return page_of(listed, size, lambda face: face.campaign_id, query)

    def _faces(self, read: _Read):
        now = self._clock.now_us()
        for campaign in read.campaigns:
            entry = Candidate(campaign, self._catalog.schedule_of(campaign))
            face = public_face(entry, read.member, now)
            if face is not None:
                yield face
