"""Refund clawbacks: proportional, rounded down, exact once fully refunded."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.campaigns.domain.refund import AwardedLeg, plan_clawback


def legs(*points: int) -> list[AwardedLeg]:
    keys = ["base", *(f"bonus:c{n}" for n in range(1, len(points)))]
    return [
        AwardedLeg(key, f"activity:p:{key}", "m-1", key.removeprefix("bonus:"), amount, 0)
        for key, amount in zip(keys, points, strict=True)
    ]


PLENTY = {"m-1": 10**9}


def test_full_refund_takes_back_every_leg_exactly():
    plan = plan_clawback(10_000, 0, 10_000, legs(100, 100, 50), PLENTY)
    assert [leg.reverse for leg in plan.legs] == [100, 100, 50]
    assert plan.unrecovered == 0
    assert plan.legs[1].transfer_id("r-1") == "activity:r-1:clawback:bonus:c1"


def test_partial_refund_rounds_down_per_leg():
    plan = plan_clawback(3_000, 0, 1_000, legs(100, 35), PLENTY)
    assert [leg.reverse for leg in plan.legs] == [33, 11]  # 33.3 and 11.6, rounded down


def test_a_capped_bonus_is_taken_back_as_awarded():
    capped = legs(100, 20)  # the bonus was capped from 50 to 20 by a member limit
    plan = plan_clawback(10_000, 0, 5_000, capped, PLENTY)
    assert [leg.reverse for leg in plan.legs] == [50, 10]


def test_clawback_never_takes_more_than_the_wallet_holds():
    plan = plan_clawback(10_000, 0, 10_000, legs(100, 50), {"m-1": 120})
    assert [(leg.reverse, leg.unrecovered) for leg in plan.legs] == [(100, 0), (20, 30)]
    assert plan.unrecovered == 30


def test_a_refund_beyond_the_purchase_is_refused():
    with pytest.raises(ValueError):
        plan_clawback(10_000, 6_000, 5_000, legs(100), PLENTY)


@given(
    points=st.lists(st.integers(1, 10_000), min_size=1, max_size=4),
    amount=st.integers(1, 100_000),
    cuts=st.lists(st.integers(1, 99_999), max_size=5),
)
def test_refunds_in_any_steps_take_back_exactly_what_was_earned(points, amount, cuts):
    steps = sorted({c for c in cuts if c < amount} | {amount})
    awarded = legs(*points)
    taken = {leg.leg_key: 0 for leg in awarded}
    refunded = 0
    for step in steps:
        current = [replace(leg, accounted=taken[leg.leg_key]) for leg in awarded]
        plan = plan_clawback(amount, refunded, step - refunded, current, PLENTY)
        for planned in plan.legs:
            assert planned.reverse > 0
            taken[planned.leg.leg_key] += planned.reverse
        refunded = step
    assert taken == {leg.leg_key: leg.points for leg in awarded}
