"""The ledger requests campaigns builds: one linked chain per activity."""

from services.campaigns.domain.evaluation import Leg
from services.campaigns.domain.refund import AwardedLeg, ClawbackLeg, ClawbackPlan
from services.campaigns.ledger import award_chain, clawback_chain


def test_award_legs_form_one_linked_chain_with_expiry():
    legs = [
        Leg("base", "base", "m-1", 12, "program:issuance"),
        Leg("bonus:x2", "x2", "m-1", 12, "campaign:x2:budget"),
        Leg("bonus:ref:referrer", "ref", "m-0", 50, "campaign:ref:budget"),
    ]
    request = award_chain("a-1", legs, expire_us=5_000_000)
    assert [t.linked for t in request.transfers] == [True, True, False]
    assert [t.id for t in request.transfers] == [
        "activity:a-1:base",
        "activity:a-1:bonus:x2",
        "activity:a-1:bonus:ref:referrer",
    ]
    assert all(t.expire_time.seconds == 5 for t in request.transfers)


def test_clawback_reverses_only_what_can_be_taken():
    def leg(key, points):
        return AwardedLeg(key, f"activity:p:{key}", "m-1", "c", points, 0)

    plan = ClawbackPlan((ClawbackLeg(leg("base", 10), 10, 0), ClawbackLeg(leg("bonus:c", 5), 0, 5)))
    request = clawback_chain("r-1", plan)
    assert [(t.id, t.reverses_transfer_id, t.linked) for t in request.transfers] == [
        ("activity:r-1:clawback:base", "activity:p:base", False)
    ]
