"""Preferences and a personal offer on every visit.

Rewards owns offer preferences (its own table, set by the member through the
gateway or by the brand with an admin token): what excludes an offer is this
service's rule, so it does not depend on another team's profile schema.

The first GetMyOffer of a visit draws the offer (domain/offers.py documents the
draw) and stores it in the same transaction, so asking again about the same
visit gives the same offer. Accepting an offer with a reward redeems it (request
id "offer/<visit id>", which no client can send); accepting one with bonus
points records `offer.points` with the acceptance, awarded through the ledger
once (transfer id derived from member and visit).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import structlog

from services.kit.clock import Clock
from services.kit.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from services.kit.ids import MEMBER_ID, REQUEST_ID, REWARD_ID
from services.kit.ledger_accounts import points_wallet
from services.kit.outbox import Settlement
from services.kit.paging import Page, page_of
from services.rewards.base import Context, Step, UseCases, paging, require
from services.rewards.domain.offers import (
    RECENT_VISITS,
    Offer,
    OfferSpec,
    OfferState,
    Preferences,
    Visit,
    candidates,
    draw,
    validate_offer,
    validate_preferences,
)
from services.rewards.domain.redemptions import Redemption
from services.rewards.ledger import offer_points
from services.rewards.redemptions import Redemptions
from services.rewards.store import RewardsUnit

log = structlog.get_logger()

POINTS_AWARD = "offer.points"
MAX_OFFERS = 10_000


@dataclass(frozen=True, slots=True)
class VisitView:
    visit: Visit
    offer: Offer | None
    redemption: Redemption | None = None


class OfferHandlers:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def handlers(self) -> dict:
        return {POINTS_AWARD: self.on_points}

    def on_points(self, unit: RewardsUnit, settlement: Settlement) -> Step | None:
        visit = unit.visit_by_entry(settlement.entry.entry_id)
        if visit is None:
            log.error("offer_entry_orphaned", entry_id=settlement.entry.entry_id)
            return None
        if settlement.answer is None or not settlement.answer.accepted:
            log.error("offer_points_refused", visit_id=visit.visit_id)
            return Step(visit)
        awarded = replace(visit, points_awarded=True)
        unit.save_visit(awarded)
        return Step(awarded)


def _visit_key(member_id: str, visit_id: str) -> str:
    return hashlib.sha256(f"{member_id}\n{visit_id}".encode()).hexdigest()[:24]


class Offers(UseCases):
    def __init__(self, context: Context, redemptions: Redemptions) -> None:
        super().__init__(context)
        self._redemptions = redemptions

    async def set_preferences(self, member_id: str, preferences: Preferences) -> Preferences:
        require(("member_id", member_id, MEMBER_ID))
        validate_preferences(preferences)
        now = self._clock.now_us()
        await self._store.write(lambda unit: unit.set_preferences(member_id, preferences, now))
        return preferences

    async def preferences(self, member_id: str) -> Preferences:
        require(("member_id", member_id, MEMBER_ID))
        return await self._store.read(lambda unit: unit.preferences(member_id))

    async def upsert(self, offer_id: str, spec: OfferSpec) -> Offer:
        require(("offer_id", offer_id, REWARD_ID))
        if spec.reward_id:
            require(("spec.reward_id", spec.reward_id, REWARD_ID))
        validate_offer(spec)
        now = self._clock.now_us()

        def work(unit: RewardsUnit) -> Offer:
            if spec.reward_id and unit.reward(spec.reward_id) is None:
                raise InvalidArgument(
                    [FieldViolation("spec.reward_id", "names no reward")], reason="REWARD_NOT_FOUND"
                )
            offer = Offer(offer_id, spec)
            unit.save_offer(offer, now)
            return offer

        return await self._store.write(work)

    async def archive(self, offer_id: str) -> Offer:
        require(("offer_id", offer_id, REWARD_ID))
        now = self._clock.now_us()

        def work(unit: RewardsUnit) -> Offer:
            offer = _offer(unit, offer_id)
            archived = replace(offer, archived=True)
            unit.save_offer(archived, now)
            return archived

        return await self._store.write(work)

    async def list(self, size: int, token: str) -> Page[Offer]:
        query = ("offers",)
        size, after = paging(size, token, query, str)
        rows = await self._store.read(lambda unit: unit.offers(after or "", size + 1))
        return page_of(rows, size, lambda offer: offer.offer_id, query)

    async def my_offer(self, member_id: str, visit_id: str) -> VisitView:
        require(("member_id", member_id, MEMBER_ID), ("visit_id", visit_id, REQUEST_ID))
        now = self._clock.now_us()

        def work(unit: RewardsUnit) -> VisitView:
            visit = unit.visit(member_id, visit_id)
            if visit is None:
                preferences = unit.preferences(member_id)
                pool = candidates(
                    unit.offers("", MAX_OFFERS),
                    preferences,
                    now,
                    unit.recent_offer_ids(member_id, RECENT_VISITS),
                )
                chosen = draw(member_id, visit_id, pool, preferences)
                visit = Visit(
                    member_id,
                    visit_id,
                    chosen.offer.offer_id if chosen.offer else "",
                    chosen.digest,
                    OfferState.SHOWN,
                    now,
                )
                unit.insert_visit(visit)
            return _view(unit, visit)

        return await self._store.write(work)

    async def accept(self, member_id: str, visit_id: str) -> VisitView:
        require(("member_id", member_id, MEMBER_ID), ("visit_id", visit_id, REQUEST_ID))
        view = await self._store.read(lambda unit: _shown(unit, member_id, visit_id))
        offer = view.offer
        assert offer is not None
        if offer.spec.reward_id:
            redemption = await self._redemptions.redeem(
                member_id, offer.spec.reward_id, 1, f"offer/{visit_id}", offer=offer
            )

            def accepted(unit: RewardsUnit) -> VisitView:
                visit = replace(
                    view.visit, state=OfferState.ACCEPTED, redemption_id=redemption.redemption_id
                )
                unit.save_visit(visit)
                return _view(unit, visit)

            return await self._store.write(accepted)
        await self._ledger.ensure(points_wallet(member_id))
        now = self._clock.now_us()
        transfer_id = f"offer:{_visit_key(member_id, visit_id)}:points"

        def award(unit: RewardsUnit) -> Step:
            visit = _shown(unit, member_id, visit_id).visit
            if visit.state == OfferState.ACCEPTED:
                return Step(visit, unit.outbox.entry(transfer_id))
            entry = unit.outbox.record(
                transfer_id,
                POINTS_AWARD,
                offer_points(transfer_id, member_id, offer.spec.bonus_points, offer.offer_id),
                now,
            )
            visit = replace(visit, state=OfferState.ACCEPTED)
            unit.save_visit(visit, entry.entry_id)
            return Step(visit, entry)

        await self._drive(
            await self._store.write(award),
            lambda unit: Step(_shown(unit, member_id, visit_id).visit),
        )
        return await self._store.read(lambda unit: _shown(unit, member_id, visit_id))


def _offer(unit: RewardsUnit, offer_id: str) -> Offer:
    offer = unit.offer(offer_id)
    if offer is None:
        raise NotFound("OFFER_NOT_FOUND", f"no offer {offer_id}", {"offer_id": offer_id})
    return offer


def _view(unit: RewardsUnit, visit: Visit) -> VisitView:
    offer = unit.offer(visit.offer_id) if visit.offer_id else None
    redemption = unit.redemption(visit.redemption_id) if visit.redemption_id else None
    return VisitView(visit, offer, redemption)


def _shown(unit: RewardsUnit, member_id: str, visit_id: str) -> VisitView:
    visit = unit.visit(member_id, visit_id)
    if visit is None:
        raise NotFound(
            "VISIT_NOT_FOUND",
            "no offer was shown for this visit; ask GetMyOffer first",
            {"visit_id": visit_id},
        )
    view = _view(unit, visit)
    if view.offer is None:
        raise FailedPrecondition(
            "NO_OFFER", "no offer was eligible for this visit", {"visit_id": visit_id}
        )
    return view
