"""An activity against its candidate campaigns: conditions, windows, limits,
budgets and stacking, giving the points and the reason for every campaign.

Order of the rules:
1. Base rules that match give base points; if several match, the best one
   (by the stacking order below) pays and the others lost stacking.
2. Each bonus campaign computes its points: a multiplier gives
   floor(base x (percent - 100) / 100) extra, never compounded with another
   multiplier; fixed, birthday and surprise bonuses give their points.
3. Limits then cut each bonus before it competes, so a capped-out campaign
   cannot win a stacking rule and leave the member with nothing: paused,
   member quota (first N members), per-member caps (an award is reduced to
   fit the tightest cap), then the budget. Budget rule: all or none. A bonus
   larger than the remaining budget gives nothing (BUDGET_EXHAUSTED) and the
   remainder stays for smaller awards, so no member ever sees a part of an
   advertised bonus.
4. Stacking: if an EXCLUSIVE campaign is eligible, the best exclusive one is
   the only bonus. Otherwise, in each group, the BEST_OF_GROUP campaigns and
   all multipliers compete and one wins; STACKABLE fixed bonuses all add up.
   "Best" orders by points (more wins), then priority (higher wins), then
   the campaign's first start (earlier wins), then id; the breakdown names
   the rule that decided.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

from services.campaigns.domain.model import (
    PURCHASE,
    REFERRAL_INVITE_SENT,
    REFERRAL_SIGNUP,
    Activity,
    Campaign,
    CampaignKind,
    Conditions,
    Member,
    ReferralStage,
    RefusalReason,
    StackingMode,
)
from services.kit.ids import ISSUANCE_ACCOUNT
from services.kit.schedule import LimitPeriod, Schedule, local_date, period_bounds, zone

BASE_LEG = "base"
SURPRISE_ALGORITHM = b"loyalty-arcade/surprise/v1"
REFERRAL_STAGE_TYPES = {
    ReferralStage.INVITE_SENT: (REFERRAL_INVITE_SENT,),
    ReferralStage.SIGNUP: (REFERRAL_SIGNUP,),
    ReferralStage.FIRST_PURCHASE: ("referral_first_purchase", PURCHASE),
}
MULTIPLIER_KINDS = (CampaignKind.MULTIPLIER,)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A campaign the index says can match, with its compiled schedule."""

    campaign: Campaign
    schedule: Schedule

    @property
    def campaign_id(self) -> str:
        return self.campaign.campaign_id


@dataclass(frozen=True, slots=True)
class ActivityContext:
    activity: Activity
    member: Member
    # True when the member has no earlier purchase (referral first-purchase stage).
    first_purchase: bool = False
    surprise_key: bytes = b""


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """What the store must count for one campaign before it can be evaluated."""

    campaign_id: str
    member_id: str
    periods: tuple[tuple[LimitPeriod, int, int], ...]
    grant_key: str | None
    counts_members: bool


@dataclass(frozen=True, slots=True)
class Usage:
    """The store's answer to a UsageQuery, read inside the writing transaction."""

    budget_remaining: int = 0
    points_in_period: Mapping[LimitPeriod, int] = field(default_factory=dict)
    member_rewarded_before: bool = False
    members_rewarded: int = 0
    already_granted: bool = False


@dataclass(frozen=True, slots=True)
class Leg:
    """One ledger transfer of an award chain."""

    leg_key: str
    campaign_id: str
    beneficiary: str
    points: int
    from_account: str

    def transfer_id(self, activity_id: str) -> str:
        return f"activity:{activity_id}:{self.leg_key}"


@dataclass(frozen=True, slots=True)
class Applied:
    campaign_id: str
    version: int
    kind: CampaignKind
    points: int
    explanation: str
    legs: tuple[Leg, ...]
    grant_key: str | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    campaign_id: str
    version: int
    reason: RefusalReason
    explanation: str


@dataclass(frozen=True, slots=True)
class NoPoints:
    """Why an activity earned its member nothing."""

    reason: RefusalReason
    explanation: str


# When several campaigns refused, the reason a member can act on first.
NO_POINTS_ORDER = (
    RefusalReason.MEMBER_LIMIT_REACHED,
    RefusalReason.ALREADY_GRANTED,
    RefusalReason.OUTSIDE_WINDOW,
    RefusalReason.PAUSED,
    RefusalReason.BUDGET_EXHAUSTED,
    RefusalReason.MEMBER_QUOTA_REACHED,
    RefusalReason.NOT_DRAWN,
    RefusalReason.NO_BASE_POINTS,
    RefusalReason.LOST_STACKING,
)


@dataclass(frozen=True, slots=True)
class Decision:
    base_points: int
    base_campaign_id: str
    applied: tuple[Applied, ...]
    refused: tuple[Refused, ...]
    base_leg: Leg | None
    base_version: int = 0
    # What each bonus that reached the budget check needed from its budget; the
    # decision stands as long as every budget still covers these.
    budget_needs: tuple[tuple[str, int], ...] = ()
    # Set when the acting member earns nothing: why.
    no_points: NoPoints | None = None

    @property
    def legs(self) -> tuple[Leg, ...]:
        bonus_legs = tuple(leg for applied in self.applied for leg in applied.legs)
        return ((self.base_leg,) if self.base_leg else ()) + bonus_legs

    def points_for(self, member_id: str) -> int:
        return sum(leg.points for leg in self.legs if leg.beneficiary == member_id)


@dataclass(frozen=True, slots=True)
class _Offer:
    """A campaign's proposed award before stacking."""

    candidate: Candidate
    points: int
    legs: tuple[Leg, ...]
    note: str
    grant_key: str | None
    # Sort key of "best": more points, higher priority, earlier start, id.
    rank: tuple[int, int, int, str] = field(init=False)

    def __post_init__(self) -> None:
        campaign = self.candidate.campaign
        rank = (
            -self.points,
            -campaign.spec.stacking.priority,
            self.candidate.schedule.first_start_us(),
            campaign.campaign_id,
        )
        object.__setattr__(self, "rank", rank)


RANK_RULES = ("more points", "higher priority", "earlier start", "campaign id order")


def surprise_drawn(key: bytes, campaign_id: str, activity_id: str, probability_ppm: int) -> bool:
    """Surprise draw v1: u = first 8 bytes (big-endian) of HMAC-SHA256(key,
    "loyalty-arcade/surprise/v1|<campaign id>|<activity id>"); the bonus is
    awarded when u x 1,000,000 < p_ppm x 2^64, exactly probability p."""
    message = b"|".join((SURPRISE_ALGORITHM, campaign_id.encode(), activity_id.encode()))
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") * 1_000_000 < probability_ppm * 2**64


def birthday_on(member: Member, day: date) -> bool:
    """True on the member's birthday; 29 February is celebrated on 28 February in other years."""
    birthday = member.birthday
    if birthday is None:
        return False
    if (birthday.month, birthday.day) == (2, 29) and not _leap(day.year):
        return (day.month, day.day) == (2, 28)
    return (day.month, day.day) == (birthday.month, birthday.day)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def default_types(kind: CampaignKind) -> tuple[str, ...]:
    """Activity types a campaign matches when its conditions name none (empty: any)."""
    if kind in (CampaignKind.BASE_RULE, CampaignKind.MULTIPLIER):
        return (PURCHASE,)
    return ()


def index_types(candidate_kind: CampaignKind, conditions: Conditions, stage) -> tuple[str, ...]:
    """The activity types an index should file a campaign under (empty: every type)."""
    if candidate_kind is CampaignKind.REFERRAL_BONUS and stage is not None:
        return REFERRAL_STAGE_TYPES[stage]
    return conditions.activity_types or default_types(candidate_kind)


def conditions_hold(candidate: Candidate, context: ActivityContext) -> bool:
    spec = candidate.campaign.spec
    conditions = spec.conditions
    activity, member = context.activity, context.member
    types = conditions.activity_types or default_types(spec.kind)
    if types and activity.type not in types:
        return False
    purchase = activity.purchase
    if conditions.min_spend_minor or conditions.currency or conditions.skus:
        if purchase is None or purchase.amount_minor < conditions.min_spend_minor:
            return False
        if conditions.currency and purchase.currency != conditions.currency:
            return False
        if conditions.skus and not set(conditions.skus) & set(purchase.skus):
            return False
    attributes = dict(activity.attributes)
    if any(attributes.get(name) != value for name, value in conditions.attributes):
        return False
    return targets(conditions, member)


def targets(conditions: Conditions, member: Member) -> bool:
    """The member conditions (tier, segments, opt-in): who a campaign is for."""
    if conditions.tiers and not set(conditions.tiers) & set(member.tiers):
        return False
    if conditions.segments and not set(conditions.segments) & set(member.segments):
        return False
    return not (conditions.required_opt_in and conditions.required_opt_in not in member.opt_ins)


def _zone_for(candidate: Candidate, member: Member):
    """The zone the campaign's windows follow for this member."""
    if candidate.schedule.member_local:
        return _member_zone(candidate, member)
    return candidate.schedule.zone


def _member_zone(candidate: Candidate, member: Member):
    """The member's own zone; the campaign's when the member has none."""
    return zone(member.time_zone) if member.time_zone else candidate.schedule.zone


def _referral_applies(candidate: Candidate, context: ActivityContext) -> bool:
    stage = candidate.campaign.spec.reward.referral_stage
    activity = context.activity
    if stage is None or activity.type not in REFERRAL_STAGE_TYPES[stage]:
        return False
    if stage is ReferralStage.INVITE_SENT:
        return True
    if not context.member.referrer_member_id:
        return False
    return stage is not ReferralStage.FIRST_PURCHASE or (
        activity.type != PURCHASE or context.first_purchase
    )


def depends_on_usage(candidate: Candidate) -> bool:
    """True when a bonus's award depends on what a member or the campaign used so far
    beyond its budget: caps, quotas, once-only grants, a member's first purchase."""
    spec = candidate.campaign.spec
    return bool(
        spec.limits.member_limits
        or spec.limits.max_members
        or spec.kind in (CampaignKind.BIRTHDAY_BONUS, CampaignKind.REFERRAL_BONUS)
    )


def usage_query(candidate: Candidate, context: ActivityContext) -> UsageQuery:
    """What to count for this campaign and this activity's member."""
    spec = candidate.campaign.spec
    activity = context.activity
    periods = tuple(
        (limit.period, *period_bounds(limit.period, activity.occur_us, candidate.schedule.zone))
        for limit in spec.limits.member_limits
    )
    counts_members = spec.limits.max_members > 0
    return UsageQuery(
        candidate.campaign_id,
        activity.member_id,
        periods,
        _grant_key(candidate, context),
        counts_members,
    )


def _grant_key(candidate: Candidate, context: ActivityContext) -> str | None:
    """The key of a once-only grant: once per member and year, or per referred member."""
    spec = candidate.campaign.spec
    if spec.kind is CampaignKind.BIRTHDAY_BONUS:
        zone_of_member = _member_zone(candidate, context.member)
        return f"birthday:{local_date(context.activity.occur_us, zone_of_member).year}"
    if (
        spec.kind is CampaignKind.REFERRAL_BONUS
        and spec.reward.referral_stage is not ReferralStage.INVITE_SENT
    ):
        return "referral"
    return None


def base_points(candidate: Candidate, activity: Activity) -> int:
    """Rounded down: fractions of a point are never awarded."""
    reward = candidate.campaign.spec.reward
    points = reward.points
    if activity.purchase is not None and reward.points_per_unit:
        points += (
            activity.purchase.amount_minor * reward.points_per_unit // reward.minor_units_per_unit
        )
    return points


def evaluate(
    context: ActivityContext, candidates: Sequence[Candidate], usage: Mapping[str, Usage]
) -> Decision:
    """The award for one activity; `usage` holds an answer for every bonus candidate."""
    activity = context.activity
    matching = [c for c in candidates if conditions_hold(c, context)]
    refused: list[Refused] = []
    live: list[Candidate] = []
    for candidate in matching:
        window = candidate.schedule.window_at(
            activity.occur_us, _zone_for(candidate, context.member)
        )
        if window is None:
            refused.append(_refuse(candidate, RefusalReason.OUTSIDE_WINDOW, "no window holds it"))
        else:
            live.append(candidate)

    base_offers = []
    for candidate in live:
        if candidate.campaign.spec.kind is CampaignKind.BASE_RULE:
            points = base_points(candidate, activity)
            if points > 0:
                leg = Leg(
                    BASE_LEG, candidate.campaign_id, activity.member_id, points, ISSUANCE_ACCOUNT
                )
                base_offers.append(_Offer(candidate, points, (leg,), "base earning rule", None))
    base_winner, base_losers = _best(base_offers)
    refused += [_lost(loser, base_winner) for loser in base_losers]
    base = base_winner.points if base_winner else 0

    eligible: list[_Offer] = []
    needs: list[tuple[str, int]] = []
    for candidate in live:
        if candidate.campaign.spec.kind is CampaignKind.BASE_RULE:
            continue
        remaining = usage[candidate.campaign_id].budget_remaining
        offer_or_refusal = _offer(candidate, context, base, usage[candidate.campaign_id])
        if isinstance(offer_or_refusal, Refused):
            refused.append(offer_or_refusal)
        elif offer_or_refusal is None:
            continue
        elif offer_or_refusal.points > remaining:
            needs.append((candidate.campaign_id, offer_or_refusal.points))
            refused.append(
                _refuse(
                    candidate,
                    RefusalReason.BUDGET_EXHAUSTED,
                    # Not how much is left: players see refusals, never budgets.
                    f"its budget cannot pay {offer_or_refusal.points} more points",
                )
            )
        else:
            needs.append((candidate.campaign_id, offer_or_refusal.points))
            eligible.append(offer_or_refusal)

    winners, losers = _stack(eligible)
    refused += losers
    applied = tuple(
        Applied(
            campaign_id=offer.candidate.campaign_id,
            version=offer.candidate.campaign.version,
            kind=offer.candidate.campaign.spec.kind,
            points=offer.points,
            explanation=f"{offer.note}; {why}",
            legs=offer.legs,
            grant_key=offer.grant_key,
        )
        for offer, why in winners
    )
    decision = Decision(
        base_points=base,
        base_campaign_id=base_winner.candidate.campaign_id if base_winner else "",
        applied=applied,
        refused=tuple(refused),
        base_leg=base_winner.legs[0] if base_winner else None,
        base_version=base_winner.candidate.campaign.version if base_winner else 0,
        budget_needs=tuple(needs),
    )
    if decision.points_for(activity.member_id) > 0:
        return decision
    return replace(decision, no_points=_why_nothing(activity, candidates, matching, refused))


def _why_nothing(
    activity: Activity,
    candidates: Sequence[Candidate],
    matching: Sequence[Candidate],
    refused: Sequence[Refused],
) -> NoPoints:
    """The one reason to give a member who earned nothing: a refusal they can act
    on, or that nothing rewards this activity (for them): never which condition
    left them out, which would show a campaign's targeting."""
    if not candidates:
        return NoPoints(
            RefusalReason.NO_CAMPAIGN, f"no campaign rewards {activity.type} activities now"
        )
    if refused:
        first = min(refused, key=lambda r: NO_POINTS_ORDER.index(r.reason))
        return NoPoints(first.reason, f"{first.campaign_id}: {first.explanation}")
    return NoPoints(
        RefusalReason.NOT_ELIGIBLE,
        f"campaigns reward {activity.type} activities, but not this one"
        if matching
        else f"no campaign rewards this {activity.type} activity for this member",
    )


def _refuse(candidate: Candidate, reason: RefusalReason, explanation: str) -> Refused:
    return Refused(candidate.campaign_id, candidate.campaign.version, reason, explanation)


def _offer(
    candidate: Candidate, context: ActivityContext, base: int, usage: Usage
) -> _Offer | Refused | None:
    """The campaign's award after its limits (the budget is checked by the caller),
    why it gives nothing, or None when
    it does not concern this activity (not the birthday, not the referral stage)."""
    campaign = candidate.campaign
    spec = campaign.spec
    reward = spec.reward
    activity = context.activity
    budget = campaign.budget_account_id
    actor = activity.member_id
    if spec.kind is CampaignKind.MULTIPLIER:
        extra = base * (reward.multiplier_percent - 100) // 100
        if extra <= 0:
            return _refuse(candidate, RefusalReason.NO_BASE_POINTS, "no base points to multiply")
        actor_points, note = extra, f"{reward.multiplier_percent}% of {base} base points"
    elif spec.kind is CampaignKind.SURPRISE_BONUS:
        if not surprise_drawn(
            context.surprise_key, campaign.campaign_id, activity.activity_id, reward.probability_ppm
        ):
            return _refuse(candidate, RefusalReason.NOT_DRAWN, "the surprise draw did not award")
        actor_points, note = reward.points, "surprise bonus drawn"
    elif spec.kind is CampaignKind.BIRTHDAY_BONUS:
        today = local_date(activity.occur_us, _member_zone(candidate, context.member))
        if not birthday_on(context.member, today):
            return None
        actor_points, note = reward.points, f"birthday on {today.isoformat()}"
    elif spec.kind is CampaignKind.REFERRAL_BONUS:
        if not _referral_applies(candidate, context):
            return None
        is_referrer = reward.referral_stage is ReferralStage.INVITE_SENT
        actor_points = reward.referrer_points if is_referrer else reward.referred_points
        note = f"referral {reward.referral_stage.value.lower()}"
    else:
        actor_points, note = reward.points, "fixed bonus"

    # By when the activity happened, as windows are: a pause holds back what
    # happened during it, not what arrives during it.
    if campaign.paused_at(activity.occur_us):
        return _refuse(candidate, RefusalReason.PAUSED, "the campaign was paused then")
    if usage.already_granted:
        return _refuse(candidate, RefusalReason.ALREADY_GRANTED, "granted once already")
    quota = spec.limits.max_members
    if quota and not usage.member_rewarded_before and usage.members_rewarded >= quota:
        return _refuse(
            candidate,
            RefusalReason.MEMBER_QUOTA_REACHED,
            f"the first {quota} members were rewarded",
        )
    for limit in spec.limits.member_limits:
        room = limit.max_points - usage.points_in_period.get(limit.period, 0)
        if room <= 0:
            return _refuse(
                candidate,
                RefusalReason.MEMBER_LIMIT_REACHED,
                f"{limit.max_points} points per {limit.period.value.lower()} reached",
            )
        if actor_points > room:
            actor_points = room
            note += f", capped at the {limit.period.value.lower()} limit"

    legs = [Leg(f"bonus:{campaign.campaign_id}", campaign.campaign_id, actor, actor_points, budget)]
    referrer = context.member.referrer_member_id
    if (
        spec.kind is CampaignKind.REFERRAL_BONUS
        and reward.referral_stage is not ReferralStage.INVITE_SENT
        and reward.referrer_points > 0
    ):
        legs.append(
            Leg(
                f"bonus:{campaign.campaign_id}:referrer",
                campaign.campaign_id,
                referrer,
                reward.referrer_points,
                budget,
            )
        )
    legs = [leg for leg in legs if leg.points > 0]
    total = sum(leg.points for leg in legs)
    return _Offer(candidate, total, tuple(legs), note, _grant_key(candidate, context))


def _best(offers: Sequence[_Offer]) -> tuple[_Offer | None, list[_Offer]]:
    ranked = sorted(offers, key=lambda offer: offer.rank)
    return (ranked[0] if ranked else None), ranked[1:]


def _decided_by(winner: _Offer, loser: _Offer) -> str:
    for rule, ours, theirs in zip(RANK_RULES, winner.rank, loser.rank, strict=True):
        if ours != theirs:
            return rule
    return RANK_RULES[-1]


def _lost(loser: _Offer, winner: _Offer | None, scope: str = "base rules") -> Refused:
    assert winner is not None
    return _refuse(
        loser.candidate,
        RefusalReason.LOST_STACKING,
        f"{winner.candidate.campaign_id} won among {scope} by {_decided_by(winner, loser)}",
    )


def _stack(offers: Sequence[_Offer]) -> tuple[list[tuple[_Offer, str]], list[Refused]]:
    """Winning offers with the rule that let them apply, and the losers."""
    exclusive = [
        o for o in offers if o.candidate.campaign.spec.stacking.mode is StackingMode.EXCLUSIVE
    ]
    if exclusive:
        winner, _ = _best(exclusive)
        assert winner is not None
        losers = [_lost(o, winner, "exclusive campaigns") for o in offers if o is not winner]
        return [(winner, "exclusive: applies alone")], losers
    winners: list[tuple[_Offer, str]] = []
    refused: list[Refused] = []
    groups: dict[str, list[_Offer]] = {}
    for offer in offers:
        stacking = offer.candidate.campaign.spec.stacking
        competes = (
            stacking.mode is StackingMode.BEST_OF_GROUP
            or offer.candidate.campaign.spec.kind in MULTIPLIER_KINDS
        )
        if competes:
            groups.setdefault(stacking.group, []).append(offer)
        else:
            winners.append((offer, "stackable"))
    for group, contenders in groups.items():
        winner, losers = _best(contenders)
        assert winner is not None
        scope = f"group {group or '(default)'}"
        why = f"best of {scope}" + (f" by {_decided_by(winner, losers[0])}" if losers else "")
        winners.append((winner, why))
        refused += [_lost(loser, winner, scope) for loser in losers]
    winners.sort(key=lambda pair: pair[0].candidate.campaign_id)
    return winners, refused
