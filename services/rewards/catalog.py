"""The catalog: rewards created, updated by version, archived; their stock; and
the catalog as one member sees it."""

from __future__ import annotations

from dataclasses import dataclass, replace

import structlog

from services.kit.clock import Clock
from services.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
)
from services.kit.ids import MEMBER_ID, POINTS, REQUEST_ID, REWARD_ID, member_account
from services.kit.outbox import Settlement
from services.kit.paging import Page, page_of
from services.rewards.base import Step, UseCases, paging, require, reward_or_404
from services.rewards.domain import eligibility
from services.rewards.domain.catalog import (
    LABEL,
    CatalogLabel,
    Reward,
    RewardSpec,
    changed_identity,
    opens_at,
    validate_spec,
)
from services.rewards.domain.eligibility import MemberProfile, Usage
from services.rewards.ledger import reward_accounts, stock_transfer
from services.rewards.store import RewardsUnit, StockChange

log = structlog.get_logger()

STOCK = "stock.change"
MAX_STOCK_CHANGE = 10**9


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    reward: Reward
    affordable: bool
    points_to_go: int
    labels: tuple[CatalogLabel, ...]
    available_from: int | None
    limit_left: int | None


@dataclass(frozen=True, slots=True)
class MemberCatalog:
    page: Page[CatalogEntry]
    points_available: int


class StockHandlers:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def handlers(self) -> dict:
        return {STOCK: self.on_stock}

    def on_stock(self, unit: RewardsUnit, settlement: Settlement) -> Step:
        entry_id = settlement.entry.entry_id
        state = (
            "done" if settlement.answer is not None and settlement.answer.accepted else "refused"
        )
        unit.close_stock_change(entry_id, state)
        return Step(unit.stock_change(entry_id))


class Catalog(UseCases):
    async def create(self, reward_id: str, spec: RewardSpec) -> Reward:
        require(("reward_id", reward_id, REWARD_ID))
        validate_spec(spec)
        now = self._clock.now_us()

        def work(unit: RewardsUnit) -> Reward:
            existing = unit.reward(reward_id)
            if existing is not None:
                if existing.version == 1 and existing.spec == spec:
                    return existing
                raise AlreadyExists(
                    "REWARD_EXISTS",
                    f"reward {reward_id} exists with another spec; update it instead",
                    {"reward_id": reward_id},
                )
            reward = Reward(reward_id, 1, spec, created_us=now, updated_us=now)
            unit.insert_reward(reward)
            return reward

        reward = await self._store.write(work)
        await self._ledger.ensure(*reward_accounts(reward))
        log.info("reward_created", reward_id=reward_id, kind=spec.kind.name)
        return reward

    async def update(self, reward_id: str, spec: RewardSpec, expected_version: int) -> Reward:
        require(("reward_id", reward_id, REWARD_ID))
        validate_spec(spec)
        if expected_version < 0:
            raise InvalidArgument([FieldViolation("expected_version", "must not be negative")])
        now = self._clock.now_us()

        def work(unit: RewardsUnit) -> Reward:
            reward = reward_or_404(unit, reward_id)
            if reward.archived:
                raise FailedPrecondition(
                    "REWARD_ARCHIVED", f"reward {reward_id} is archived", {"reward_id": reward_id}
                )
            if expected_version and expected_version != reward.version:
                raise FailedPrecondition(
                    "VERSION_CONFLICT",
                    f"reward {reward_id} is at version {reward.version}, not {expected_version}",
                    {"reward_id": reward_id, "version": reward.version},
                )
            changed = changed_identity(reward.spec, spec)
            if changed:
                raise InvalidArgument(
                    [FieldViolation(f"spec.{changed}", "cannot change; create another reward")]
                )
            if spec == reward.spec:
                return reward
            updated = replace(reward, version=reward.version + 1, spec=spec, updated_us=now)
            unit.save_reward(updated)
            return updated

        reward = await self._store.write(work)
        log.info("reward_updated", reward_id=reward_id, version=reward.version)
        return reward

    async def archive(self, reward_id: str) -> Reward:
        require(("reward_id", reward_id, REWARD_ID))
        now = self._clock.now_us()

        def work(unit: RewardsUnit) -> Reward:
            reward = reward_or_404(unit, reward_id)
            if reward.archived:
                return reward
            archived = replace(reward, archived=True, updated_us=now)
            unit.save_reward(archived)
            return archived

        return await self._store.write(work)

    async def get(self, reward_id: str) -> Reward:
        require(("reward_id", reward_id, REWARD_ID))
        return await self._store.read(lambda unit: reward_or_404(unit, reward_id))

    async def list(self, size: int, token: str, include_archived: bool) -> Page[Reward]:
        query = ("rewards", include_archived)
        size, after = paging(size, token, query, str)
        rows = await self._store.read(
            lambda unit: unit.rewards(
                after or "", size + 1, archived=include_archived, listed_only=False
            )
        )
        return page_of(rows, size, lambda reward: reward.reward_id, query)

    async def stock(self, reward_id: str, quantity: int, request_id: str) -> int:
        """Units left after the change (the stock account's available balance)."""
        require(("reward_id", reward_id, REWARD_ID), ("request_id", request_id, REQUEST_ID))
        if quantity == 0 or abs(quantity) > MAX_STOCK_CHANGE:
            raise InvalidArgument(
                [
                    FieldViolation(
                        "quantity", f"must be non-zero, at most {MAX_STOCK_CHANGE:,} apart"
                    )
                ]
            )
        reward = await self._store.read(lambda unit: reward_or_404(unit, reward_id))
        await self._ledger.ensure(*reward_accounts(reward))
        entry_id = f"reward:{reward_id}:stock:{request_id}"
        now = self._clock.now_us()

        def work(unit: RewardsUnit) -> Step:
            existing = unit.stock_change(entry_id)
            if existing is not None:
                if existing.quantity != quantity:
                    raise AlreadyExists(
                        "REQUEST_ID_REUSED",
                        f"stock change {request_id} had another quantity",
                        {"reward_id": reward_id},
                    )
                return Step(existing, unit.outbox.entry(entry_id))
            change = StockChange(entry_id, reward_id, quantity, "pending")
            unit.insert_stock_change(change, now)
            entry = unit.outbox.record(
                entry_id, STOCK, stock_transfer(reward, quantity, entry_id), now
            )
            return Step(change, entry)

        change = await self._drive(
            await self._store.write(work), lambda unit: Step(unit.stock_change(entry_id))
        )
        if change.state == "refused":
            raise FailedPrecondition(
                "NOT_ENOUGH_FREE_STOCK",
                f"reward {reward_id} has fewer than {abs(quantity)} free units to withdraw",
                {"reward_id": reward_id},
            )
        return await self._ledger.available(reward.stock_account)

    async def member_catalog(
        self, member_id: str, category: str, size: int, token: str
    ) -> MemberCatalog:
        require(("member_id", member_id, MEMBER_ID))
        if category and not LABEL.fullmatch(category):
            raise InvalidArgument([FieldViolation("category", "must be a category label")])
        query = ("catalog", member_id, category)
        size, after = paging(size, token, query, str)
        now = self._clock.now_us()
        rewards = await self._store.read(
            lambda unit: unit.rewards(
                after or "", size + 1, archived=False, listed_only=True, category=category
            )
        )
        page = page_of(rewards, size, lambda reward: reward.reward_id, query)
        needs_profile = any(reward.spec.needs_profile for reward in page.items)
        profile = await self._profiles.profile(member_id) if needs_profile else MemberProfile()
        visible = [r for r in page.items if _sees(r, profile)]
        usage = await self._store.read(lambda unit: _usage(unit, member_id, visible, profile, now))
        units = {reward.spec.price_unit for reward in visible} | {POINTS}
        wallets = await self._ledger.available_many(
            [member_account(member_id, unit) for unit in sorted(units)]
        )
        stock = await self._ledger.available_many([reward.stock_account for reward in visible])
        entries = []
        for reward in visible:
            spec = reward.spec
            held = wallets[member_account(member_id, spec.price_unit)]
            opening = opens_at(spec, profile.tiers)
            left = eligibility.limit_left(spec.limits, usage.get(reward.reward_id, Usage()))
            labels = []
            if opening is not None and now < opening:
                labels.append(CatalogLabel.COMING_SOON)
            elif spec.start_us is not None and now < spec.start_us:
                labels.append(CatalogLabel.EARLY_ACCESS)
            if stock[reward.stock_account] <= 0:
                labels.append(CatalogLabel.SOLD_OUT)
            if left == 0:
                labels.append(CatalogLabel.LIMIT_REACHED)
            entries.append(
                CatalogEntry(
                    reward=reward,
                    affordable=held >= spec.price,
                    points_to_go=max(0, spec.price - held),
                    labels=tuple(labels),
                    available_from=opening,
                    limit_left=left,
                )
            )
        return MemberCatalog(Page(entries, page.next_page_token), wallets[member_id])


def _sees(reward: Reward, profile: MemberProfile) -> bool:
    spec = reward.spec
    if spec.tiers and not profile.tiers & set(spec.tiers):
        return False
    return not (spec.segments and not profile.segments & set(spec.segments))


def _usage(
    unit: RewardsUnit, member_id: str, rewards: list[Reward], profile: MemberProfile, now: int
) -> dict[str, Usage]:
    found: dict[str, Usage] = {}
    for reward in rewards:
        if reward.spec.limits.by_period or reward.spec.limits.total:
            starts = eligibility.period_starts(now, profile.time_zone, reward.spec.time_zone)
            found.update(unit.usage(member_id, [reward.reward_id], starts))
    return found
