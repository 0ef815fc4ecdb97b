"""Members: their marketing profiles, and the wallet each one has in the ledger."""

from __future__ import annotations

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


class Members(UseCases):
    async def upsert(self, member: Member) -> Upserted:
        raise_if_any(check_member, member)
        referrer = member.referrer_member_id
        if referrer and await self._store.read(lambda unit: unit.member(referrer)) is None:
            raise FailedPrecondition(
                "REFERRER_NOT_FOUND",
                f"referrer {referrer} is not a member",
                {"referrer_member_id": referrer},
            )
        await self._ledger.open_wallet(member.member_id)
        now = self._clock.now_us()

        def work(unit: CampaignsUnit) -> Upserted:
            current = unit.member(member.member_id)
            if current is not None and current.referrer_member_id not in ("", referrer):
                raise FailedPrecondition(
                    "REFERRER_ALREADY_SET",
                    f"member {member.member_id} was referred by {current.referrer_member_id}",
                    {"referrer_member_id": current.referrer_member_id},
                )
            created_us = current.create_us if current else now
            stored = replace(member, create_us=created_us, update_us=now)
            if current is not None and replace(current, update_us=now) == stored:
                return Upserted(current, False)
            unit.put_member(stored)
            return Upserted(stored, current is None)

        upserted = await self._store.write(work)
        log.info("member_upserted", member_id=member.member_id, created=upserted.created)
        return upserted

    async def get(self, member_id: str) -> Member:
        raise_if_any(check_member_id, member_id)
        return await self._store.read(lambda unit: existing_member(unit, member_id))
