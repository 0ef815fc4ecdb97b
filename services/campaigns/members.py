"""Members: their marketing profiles, and the wallet each one has in the ledger."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog

from services.campaigns.base import UseCases, existing_member, raise_if_any
from services.campaigns.domain.model import Member
from services.campaigns.domain.validation import check_member, check_member_id
from services.campaigns.store import CampaignsUnit
from services.kit.errors import FailedPrecondition

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Upserted:
    member: Member
    created: bool


# What an update does to a profile: the current one (a bare profile with only
# its id when the member is new) in, the one to store out. Pure.
Change = Callable[[Member], Member]


class Members(UseCases):
    async def upsert(self, member_id: str, change: Change) -> Upserted:
        """Create the member or change their profile as `change` says, in one
        transaction: fields a partial update does not name keep their values."""
        raise_if_any(check_member_id, member_id, "member.member_id")
        # The request's own fields are checked before anything changes, the wallet too.
        raise_if_any(check_member, replace(change(Member(member_id)), member_id=member_id))
        await self._ledger.open_wallet(member_id)
        now = self._clock.now_us()

        def work(unit: CampaignsUnit) -> Upserted:
            current = unit.member(member_id)
            # The computed tiers are the progress feed's, whatever the request says.
            changed = replace(
                change(current or Member(member_id)),
                member_id=member_id,
                standings=unit.standings(member_id),
            )
            raise_if_any(check_member, changed)
            referrer = changed.referrer_member_id
            before = current.referrer_member_id if current is not None else ""
            if before not in ("", referrer):
                raise FailedPrecondition(
                    "REFERRER_ALREADY_SET",
                    f"member {member_id} was referred by {before}",
                    {"referrer_member_id": before},
                )
            if referrer and referrer != before and unit.member(referrer) is None:
                raise FailedPrecondition(
                    "REFERRER_NOT_FOUND",
                    f"referrer {referrer} is not a member",
                    {"referrer_member_id": referrer},
                )
            stored = replace(
                changed, create_us=current.create_us if current else now, update_us=now
            )
            if current is not None and replace(current, update_us=now) == stored:
                return Upserted(current, False)
            if current is None:
                unit.insert_member(stored)
            else:
                unit.put_member(stored)
            return Upserted(stored, current is None)

        upserted = await self._store.write(work)
        log.info("member_upserted", member_id=member_id, created=upserted.created)
        return upserted

    async def get(self, member_id: str) -> Member:
        raise_if_any(check_member_id, member_id)
        return await self._store.read(lambda unit: existing_member(unit, member_id))
