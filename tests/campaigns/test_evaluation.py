"""Evaluating an activity: base points, stacking, limits, budgets, special bonuses."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.campaigns.domain.evaluation import (
    ActivityContext,
    Usage,
    evaluate,
    surprise_drawn,
)
from services.campaigns.domain.model import (
    Birthday,
    CampaignKind,
    Conditions,
    Limits,
    MemberLimit,
    ReferralStage,
    RefusalReason,
    Reward,
    Stacking,
    StackingMode,
)
from services.kit.schedule import LimitPeriod
from tests.support.campaign_specs import (
    activity,
    base_rule,
    candidate,
    fixed,
    member,
    multiplier,
    purchase,
    spec,
    window,
)

KEY = b"test-surprise-key"
SHARE = Conditions(activity_types=("social_share",))


def run(act, candidates, who=None, usage=None, **context):
    usage = usage or {}
    answers = {
        c.campaign_id: usage.get(c.campaign_id, Usage(budget_remaining=c.campaign.budget_remaining))
        for c in candidates
    }
    return evaluate(
        ActivityContext(act, who or member(), surprise_key=KEY, **context), candidates, answers
    )


def reasons(decision):
    return {refused.campaign_id: refused.reason for refused in decision.refused}


def test_base_points_round_down_per_currency_unit():
    decision = run(purchase(1999), [candidate("base", base_rule())])
    assert decision.base_points == 19
    assert decision.base_leg.transfer_id("a-1") == "activity:a-1:base"
    assert decision.base_leg.from_account == "program:issuance"


def weekend_share_campaigns(same_group: bool):
    weekend = window("2026-03-07T00:00:00", 48)  # Saturday and Sunday in Paris
    both = ("purchase", "social_share")
    return [
        candidate(
            "share-base", spec(CampaignKind.BASE_RULE, reward=Reward(points=10), conditions=SHARE)
        ),
        candidate(
            "double-weekend",
            multiplier(
                200,
                "" if same_group else "weekend",
                schedule=weekend,
                conditions=Conditions(activity_types=both),
            ),
        ),
        candidate(
            "gold-day",
            multiplier(
                300,
                "" if same_group else "tier",
                conditions=Conditions(activity_types=both, tiers=("gold",)),
            ),
        ),
        candidate("share-bonus", fixed(50, conditions=SHARE)),
    ]


def test_multipliers_in_one_group_do_not_compound_the_best_wins():
    gold = member(tier="gold")
    decision = run(activity("social_share"), weekend_share_campaigns(same_group=True), gold)
    points = {a.campaign_id: a.points for a in decision.applied}
    assert decision.base_points == 10
    assert points == {"gold-day": 20, "share-bonus": 50}
    assert decision.points_for("m-1") == 80  # not 10 x 2 x 3 + 50
    assert reasons(decision) == {"double-weekend": RefusalReason.LOST_STACKING}
    (lost,) = decision.refused
    assert "gold-day won" in lost.explanation and "more points" in lost.explanation


def test_multipliers_in_different_groups_add_their_extras_to_base_points():
    gold = member(tier="gold")
    decision = run(activity("social_share"), weekend_share_campaigns(same_group=False), gold)
    assert decision.points_for("m-1") == 10 + 10 + 20 + 50  # 90, never 110
    assert decision.refused == ()


def test_outside_its_window_a_campaign_is_reported_not_applied():
    decision = run(
        activity("social_share", occur="2026-03-10T12:00:00"),
        weekend_share_campaigns(same_group=True),
    )
    assert reasons(decision) == {"double-weekend": RefusalReason.OUTSIDE_WINDOW}
    assert decision.points_for("m-1") == 60


def test_ties_break_by_priority_then_start_then_id():
    def best_of(campaign_id, priority=0, start="2026-03-01T00:00:00"):
        stacking = Stacking(group="g", mode=StackingMode.BEST_OF_GROUP, priority=priority)
        return candidate(campaign_id, fixed(25, stacking=stacking, schedule=window(start, 24 * 30)))

    by_priority = run(purchase(100), [best_of("a"), best_of("b", priority=5)])
    assert [a.campaign_id for a in by_priority.applied] == ["b"]
    assert "higher priority" in by_priority.refused[0].explanation
    by_start = run(purchase(100), [best_of("a", start="2026-03-02T00:00:00"), best_of("b")])
    assert [a.campaign_id for a in by_start.applied] == ["b"]
    assert "earlier start" in by_start.refused[0].explanation
    by_id = run(purchase(100), [best_of("b"), best_of("a")])
    assert [a.campaign_id for a in by_id.applied] == ["a"]
    assert "campaign id order" in by_id.refused[0].explanation


def test_an_exclusive_campaign_applies_alone():
    exclusive = Stacking(mode=StackingMode.EXCLUSIVE)
    decision = run(
        purchase(10_000),
        [
            candidate("base", base_rule()),
            candidate("vip", fixed(30, stacking=exclusive)),
            candidate("other", fixed(500)),
            candidate("double", multiplier(200)),
        ],
    )
    assert [a.campaign_id for a in decision.applied] == ["vip"]
    assert decision.base_points == 100
    assert set(reasons(decision).values()) == {RefusalReason.LOST_STACKING}


def test_budget_is_all_or_none():
    bonus = fixed(50, budget_points=1000)
    short = run(purchase(100), [candidate("c", bonus, used=960)])
    assert reasons(short) == {"c": RefusalReason.BUDGET_EXHAUSTED}
    exact = run(purchase(100), [candidate("c", bonus, used=950)])
    assert [a.points for a in exact.applied] == [50]


def test_member_limit_caps_an_award_then_refuses():
    capped = fixed(50, limits=Limits(member_limits=(MemberLimit(LimitPeriod.DAY, 100),)))
    c = candidate("c", capped)

    def used(points):
        return {"c": Usage(budget_remaining=10**6, points_in_period={LimitPeriod.DAY: points})}

    partly = run(purchase(100), [c], usage=used(80))
    assert [a.points for a in partly.applied] == [20]
    assert "capped" in partly.applied[0].explanation
    full = run(purchase(100), [c], usage=used(100))
    assert reasons(full) == {"c": RefusalReason.MEMBER_LIMIT_REACHED}


def test_first_n_members_quota():
    c = candidate("c", fixed(5, limits=Limits(max_members=2)))
    new_member = {"c": Usage(budget_remaining=10**6, members_rewarded=2)}
    assert reasons(run(purchase(100), [c], usage=new_member)) == {
        "c": RefusalReason.MEMBER_QUOTA_REACHED
    }
    returning = {
        "c": Usage(budget_remaining=10**6, members_rewarded=2, member_rewarded_before=True)
    }
    assert run(purchase(100), [c], usage=returning).applied


def test_a_paused_campaign_gives_nothing_and_says_so():
    decision = run(purchase(100), [candidate("c", fixed(5), paused=True)])
    assert reasons(decision) == {"c": RefusalReason.PAUSED}


def test_a_limit_reached_campaign_does_not_win_its_group():
    stacking = Stacking(group="g", mode=StackingMode.BEST_OF_GROUP)
    big = fixed(100, stacking=stacking, budget_points=100)
    small = fixed(10, stacking=stacking)
    decision = run(purchase(100), [candidate("big", big, used=100), candidate("small", small)])
    assert [a.campaign_id for a in decision.applied] == ["small"]
    assert reasons(decision) == {"big": RefusalReason.BUDGET_EXHAUSTED}


def surprise(ppm):
    return spec(CampaignKind.SURPRISE_BONUS, reward=Reward(points=100, probability_ppm=ppm))


def test_surprise_draw_is_the_same_on_retry_and_matches_its_probability():
    outcomes = [surprise_drawn(KEY, "s", f"a-{n}", 250_000) for n in range(4000)]
    assert outcomes == [surprise_drawn(KEY, "s", f"a-{n}", 250_000) for n in range(4000)]
    assert 0.22 < sum(outcomes) / len(outcomes) < 0.28
    assert all(surprise_drawn(KEY, "s", f"a-{n}", 1_000_000) for n in range(100))
    assert not any(surprise_drawn(KEY, "s", f"a-{n}", 0) for n in range(100))


def test_surprise_bonus_awards_or_says_not_drawn():
    won = next(n for n in range(100) if surprise_drawn(KEY, "s", f"a-{n}", 500_000))
    lost = next(n for n in range(100) if not surprise_drawn(KEY, "s", f"a-{n}", 500_000))
    c = candidate("s", surprise(500_000))
    assert run(purchase(100, activity_id=f"a-{won}"), [c]).applied[0].points == 100
    assert reasons(run(purchase(100, activity_id=f"a-{lost}"), [c])) == {
        "s": RefusalReason.NOT_DRAWN
    }


def birthday_campaign():
    return candidate("bday", spec(CampaignKind.BIRTHDAY_BONUS, reward=Reward(points=200)))


@pytest.mark.parametrize(
    ("birthday", "day", "granted"),
    [
        (Birthday(5, 14), "2026-05-14", True),
        (Birthday(5, 14), "2026-05-15", False),
        (Birthday(2, 29, 2000), "2027-02-28", True),
        (Birthday(2, 29, 2000), "2027-03-01", False),
        (Birthday(2, 29, 2000), "2028-02-28", False),
        (Birthday(2, 29, 2000), "2028-02-29", True),
    ],
)
def test_birthday_bonus_on_the_day_and_28_february_for_leap_day_birthdays(birthday, day, granted):
    who = member(birthday=birthday)
    decision = run(activity("app_login", occur=f"{day}T12:00:00"), [birthday_campaign()], who)
    assert bool(decision.applied) is granted
    assert decision.refused == ()


def test_birthday_is_the_day_in_the_members_zone_and_once_a_year():
    who = member(birthday=Birthday(5, 14), time_zone="Pacific/Auckland")
    # 13 May 20:00 in Paris is already 14 May in Auckland.
    login = activity("app_login", occur="2026-05-13T20:00:00")
    assert run(login, [birthday_campaign()], who).applied
    again = {"bday": Usage(budget_remaining=10**6, already_granted=True)}
    assert reasons(run(login, [birthday_campaign()], who, usage=again)) == {
        "bday": RefusalReason.ALREADY_GRANTED
    }


def referral(stage, referrer=100, referred=50):
    reward = Reward(referral_stage=stage, referrer_points=referrer, referred_points=referred)
    return candidate("ref", spec(CampaignKind.REFERRAL_BONUS, reward=reward))


def test_referral_signup_pays_both_members_from_the_budget():
    referred = member("m-2", referrer_member_id="m-1")
    decision = run(
        activity("referral_signup", member_id="m-2"), [referral(ReferralStage.SIGNUP)], referred
    )
    (applied,) = decision.applied
    assert {(leg.beneficiary, leg.points) for leg in applied.legs} == {("m-2", 50), ("m-1", 100)}
    assert {leg.from_account for leg in applied.legs} == {"campaign:ref:budget"}


def test_referral_needs_a_referrer_and_a_first_purchase():
    alone = member("m-2")
    assert not run(
        activity("referral_signup", member_id="m-2"), [referral(ReferralStage.SIGNUP)], alone
    ).applied
    referred = member("m-2", referrer_member_id="m-1")
    first = referral(ReferralStage.FIRST_PURCHASE)
    bought = purchase(100, member_id="m-2")
    assert run(bought, [first], referred, first_purchase=True).applied
    assert not run(bought, [first], referred, first_purchase=False).applied


def test_invite_sent_rewards_the_inviting_member():
    decision = run(activity("referral_invite_sent"), [referral(ReferralStage.INVITE_SENT, 10, 0)])
    assert [(leg.beneficiary, leg.points) for leg in decision.legs] == [("m-1", 10)]


def test_multiplier_without_base_points_says_so():
    decision = run(purchase(50), [candidate("base", base_rule()), candidate("x2", multiplier(200))])
    assert reasons(decision) == {"x2": RefusalReason.NO_BASE_POINTS}


def test_conditions_filter_silently():
    picky = fixed(
        5,
        conditions=Conditions(
            min_spend_minor=5000,
            skus=("sku-1",),
            attributes=(("channel", "app"),),
            segments=("vip",),
            required_opt_in="email",
        ),
    )
    c = candidate("c", picky)
    vip = member(segments=("vip",), opt_ins=("email",))
    good = replace(purchase(6000, skus=("sku-1",)), attributes=(("channel", "app"),))
    assert run(good, [c], vip).applied
    assert not run(replace(good, attributes=()), [c], vip).applied
    assert not run(good, [c], member()).applied
    assert not run(purchase(4000, skus=("sku-1",)), [c], vip).applied
    assert run(good, [c], vip).refused == ()
