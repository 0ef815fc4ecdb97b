"""The figures a program's owner judges its return by: per reward, and for the
whole program over a period. Points figures come from the ledger (the source of
truth for balances); counts and monetary values from this service's own rows."""

from __future__ import annotations

from dataclasses import dataclass

from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from services.kit.errors import FieldViolation, InvalidArgument
from services.kit.ids import (
    BREAKAGE_ACCOUNT,
    ISSUANCE_ACCOUNT,
    POINTS,
    REWARD_ID,
    redemption_account,
)
from services.rewards.base import UseCases, require, reward_or_404
from services.rewards.domain.catalog import Money, RewardKind
from services.rewards.store import CodeCounts, RewardFigures


@dataclass(frozen=True, slots=True)
class RewardReport:
    reward_id: str
    figures: RewardFigures
    stock_left: int
    codes: CodeCounts
    value_redeemed: Money

    @property
    def codes_low(self) -> bool:
        return self.codes.free < self.stock_left


@dataclass(frozen=True, slots=True)
class ProgramReport:
    outstanding_points: int
    points_issued: int
    points_redeemed: int
    points_expired: int
    redemption_rate: float
    value_redeemed: list[Money]
    redemptions: int


class Reports(UseCases):
    async def reward(self, reward_id: str) -> RewardReport:
        require(("reward_id", reward_id, REWARD_ID))

        def work(unit):
            reward = reward_or_404(unit, reward_id)
            return reward, unit.reward_figures(reward_id), unit.code_counts(reward_id)

        reward, figures, codes = await self._store.read(work)
        stock_left = await self._ledger.available(reward.stock_account)
        codes_shown = codes if reward.spec.kind == RewardKind.CODE_POOL else CodeCounts()
        return RewardReport(
            reward_id,
            figures,
            stock_left,
            codes_shown,
            Money(figures.value_minor, reward.spec.value.currency),
        )

    async def program(self, start_us: int | None, end_us: int | None) -> ProgramReport:
        # Unset: everything so far, what happened at this very instant included.
        end = self._clock.now_us() + 1 if end_us is None else end_us
        # Nothing happened before the epoch: an earlier start means the beginning.
        start = max(start_us or 0, 0)
        if end <= start:
            raise InvalidArgument([FieldViolation("end_time", "must be after start_time")])

        async def moved(account_id: str) -> int:
            # Balances at the last instant before each bound: the period is [start, end).
            before = await self._ledger.balance_at(account_id, start - 1) if start else 0
            return await self._ledger.balance_at(account_id, end - 1) - before

        totals = await self._ledger.totals(POINTS)
        issued = -await moved(ISSUANCE_ACCOUNT)
        redeemed = await moved(redemption_account(POINTS))
        expired = await moved(BREAKAGE_ACCOUNT)
        figures = await self._store.read(lambda unit: unit.period_figures(start, end))
        return ProgramReport(
            outstanding_points=totals.of(ledger_pb.ACCOUNT_KIND_MEMBER_WALLET),
            points_issued=issued,
            points_redeemed=redeemed,
            points_expired=expired,
            redemption_rate=redeemed / issued if issued > 0 else 0.0,
            value_redeemed=[
                Money(amount, currency)
                for currency, amount in sorted(figures.value_by_currency.items())
            ],
            redemptions=figures.redemptions,
        )
