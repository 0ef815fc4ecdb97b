"""A scripted story through the gateway: `make demo` (python -m tools.demo).

A program is set up through the manager API (its issuance account, a wheel with
a stocked prize pool, a catch game, a base earning rule, a double-points
weekend, a share bonus, a birthday bonus); then a member buys, shares, logs in
on their birthday, spins, plays catch, sees points expiring soon and gets a
refund clawed back; then the member crosses a tier threshold and gets the
gold members' day by the computed tier, earns a badge and completes a
challenge. Each step is printed.

It uses the suite answering at 127.0.0.1:8080 (its development tokens, as
`make token` prints them) and then archives the campaigns and the reward it
made (`--keep` leaves them; wheels, games and members have no archive and stay,
under this run's ids), or, when none answers, starts its own suite on free
ports in a temporary directory, which goes when it ends.

The story speaks the protobuf JSON mapping through a `Caller`, so the
end-to-end tests play the very same story with the Node clients
(connect-web, grpc-web, grpc-js) while this module plays it with grpcio.
Every id carries a fresh tag, and every campaign is limited to a segment only
this story's member has, so stories never disturb one another.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from loyalty.campaigns.v1 import campaigns_service_pb2 as campaigns_pb
from loyalty.games.v1 import games_service_pb2 as games_pb
from loyalty.gateway.v1 import gateway_service_pb2 as gateway_pb
from loyalty.progress.v1 import progress_service_pb2 as progress_pb
from loyalty.rewards.v1 import rewards_service_pb2 as rewards_pb

from services.gateway.server import GatewaySettings
from services.gateway.tokens import dev_secret, issue_token
from services.kit.clock import SystemClock
from services.kit.status import error_info, field_violations
from tools.suite import Suite, wait_ready_http

GAMES = "loyalty.games.v1.GamesService"
CAMPAIGNS = "loyalty.campaigns.v1.CampaignsService"
WALLET = "loyalty.gateway.v1.WalletService"
REWARDS = "loyalty.rewards.v1.RewardsService"
PROGRESS = "loyalty.progress.v1.ProgressService"
DEFAULT_GATEWAY = "127.0.0.1:8080"
ZONE = "Europe/Paris"
COFFEE = "prize:free-coffee"
# The window asked for "expiring soon": wide enough to show points whatever
# lifetime the suite gives them (CAMPAIGNS_POINTS_TTL_DAYS, 365 by default).
EXPIRING_WITHIN = "31708800s"  # 367 days
CALL_TIMEOUT_SECONDS = 10.0
CATCH_WAIT_SECONDS = 30.0

Message = dict[str, Any]


class CallError(Exception):
    """A refused call, the same whichever client made it."""

    def __init__(self, code: str, reason: str | None, message: str, **extra: Any) -> None:
        super().__init__(f"{code} {reason or ''}: {message}")
        self.code = code.upper()
        self.reason = reason
        self.message = message
        self.extra = extra


class Caller(Protocol):
    """Calls one gateway method with a JSON-mapped request as the token's
    owner; returns the JSON-mapped response or raises CallError. `stream` calls a
    server-streaming method and returns every message once the stream ends."""

    def __call__(
        self, service: str, method: str, request: Message, token: str
    ) -> Awaitable[Message]: ...

    def stream(
        self, service: str, method: str, request: Message, token: str
    ) -> Awaitable[list[Message]]: ...


Say = Callable[[str], None]


def num(message: Message, *path: str) -> int:
    """An integer field of a JSON-mapped message (int64s arrive as strings; defaults are absent)."""
    value: Any = message
    for key in path:
        value = value.get(key, {}) if isinstance(value, dict) else {}
    return int(value) if value != {} else 0


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class TokenMint:
    """Development tokens (HS256) the gateway accepts."""

    secret: bytes
    issuer: str
    audience: str

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> TokenMint:
        return cls(
            dev_secret(settings.jwt_secret, settings.jwt_secret_file),
            settings.jwt_issuer,
            settings.jwt_audience,
        )

    def issue(self, subject: str, *roles: str, ttl_seconds: int = 3600) -> str:
        return issue_token(
            self.secret,
            subject=subject,
            roles=list(roles) or ["player"],
            issuer=self.issuer,
            audience=self.audience,
            now_us=SystemClock().now_us(),
            ttl_seconds=ttl_seconds,
        )


# The program -----------------------------------------------------------------


@dataclass
class Program:
    """Ids of one story's program, all carrying its tag."""

    tag: str
    manager_token: str
    # The shop's back end reports purchases and refunds for any member: an admin token.
    admin_token: str
    wheel_id: str = ""
    catch_game_id: str = ""
    campaigns: dict[str, str] = field(default_factory=dict)
    issuance: Message = field(default_factory=dict)

    @property
    def segment(self) -> str:
        return self.tag


def new_tag(prefix: str = "demo") -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def wheel_config() -> Message:
    return {
        "displayName": "Daily wheel",
        "segments": [
            {"label": "Try again", "weight": "40"},
            {"label": "20 points", "weight": "30", "prize": {"points": "20"}},
            {
                "label": "Free coffee",
                "weight": "20",
                "prize": {"item": {"unit": COFFEE, "quantity": "1"}},
            },
            {"label": "100 points", "weight": "10", "prize": {"points": "100"}},
        ],
        "fallbackSegmentIndex": 0,
        "costPoints": "10",
        "spinsPerDay": 3,
        "timeZone": ZONE,
    }


def catch_config() -> Message:
    # A basket as wide as the field catches anything from the centre, so the
    # scripted player never has to move it.
    return {
        "displayName": "Catch the coins",
        "durationMillis": 1000,
        "spawnIntervalMillis": 200,
        "fieldWidth": 10,
        "basketWidth": 10,
        "basketTopSpeed": 10,
        "catchWindowMillis": 200,
        "objectTypes": [
            {"name": "coin", "points": "5", "spawnWeight": "3", "fallMillis": 300},
            {"name": "star", "points": "20", "spawnWeight": "1", "fallMillis": 300},
        ],
        "sessionScoreCap": "200",
        "dailyPointsCap": "500",
        "timeZone": ZONE,
        "submitGraceMillis": 60000,
    }


def local_start(moment: datetime) -> Message:
    local = moment.astimezone(ZoneInfo(ZONE))
    return {
        "year": local.year,
        "month": local.month,
        "day": local.day,
        "hours": local.hour,
        "minutes": local.minute,
        "seconds": local.second,
    }


def campaign_specs(segment: str, now: datetime) -> dict[str, Message]:
    """The program's campaigns, each only for members in `segment`."""
    only = {"segments": [segment]}
    always = {"timeZone": ZONE}
    return {
        "base": {
            "displayName": "1 point per euro",
            "kind": "CAMPAIGN_KIND_BASE_RULE",
            "reward": {"pointsPerUnit": "1", "minorUnitsPerUnit": "100"},
            "conditions": {"activityTypes": ["purchase"], **only},
            "schedule": always,
        },
        "double": {
            # A weekend's 48 hours, opened now so the story's purchase lands in it.
            "displayName": "Double-points weekend",
            "kind": "CAMPAIGN_KIND_MULTIPLIER",
            "reward": {"multiplierPercent": 200},
            "conditions": only,
            "schedule": {
                "start": local_start(now - timedelta(minutes=1)),
                "duration": f"{48 * 3600}s",
                "timeZone": ZONE,
            },
            "budgetPoints": "10000",
        },
        "share": {
            "displayName": "25 points for sharing",
            "kind": "CAMPAIGN_KIND_FIXED_BONUS",
            "reward": {"points": "25"},
            "conditions": {"activityTypes": ["social_share"], **only},
            "schedule": always,
            "budgetPoints": "5000",
            "limits": {"memberLimits": [{"period": "LIMIT_PERIOD_DAY", "maxPoints": "25"}]},
        },
        "birthday": {
            "displayName": "Birthday gift",
            "kind": "CAMPAIGN_KIND_BIRTHDAY_BONUS",
            "reward": {"points": "100"},
            "conditions": {"activityTypes": ["app_login"], **only},
            "schedule": always,
            "budgetPoints": "5000",
        },
    }


async def set_up_program(call: Caller, mint: TokenMint, tag: str, say: Say) -> Program:
    """The manager's part: wheel, catch game and campaigns, through the gateway."""
    manager = mint.issue(f"{tag}-manager", "campaign-manager")
    program = Program(tag, manager, mint.issue(f"{tag}-pos", "admin"))
    say(f"== Setting up program {tag} (as a campaign manager) ==")

    program.wheel_id = f"{tag}-wheel"
    wheel = await call(
        GAMES, "CreateWheel", {"wheelId": program.wheel_id, "config": wheel_config()}, manager
    )
    odds = ", ".join(
        f"{o['label']} {o['percent']}%" + (" (sold out)" if o.get("soldOut") else "")
        for o in wheel["wheel"]["odds"]
    )
    say(f"wheel {program.wheel_id}: {odds}; a spin costs 10 points")
    for unit, quantity in (("points", 1000), (COFFEE, 5)):
        stocked = await call(
            GAMES,
            "StockWheel",
            {
                "wheelId": program.wheel_id,
                "unit": unit,
                "quantity": str(quantity),
                "requestId": f"{tag}-stock-{unit.replace(':', '-')}",
            },
            manager,
        )
        say(f"  stocked {stocked['poolAccountId']}: {num(stocked, 'stock')} {unit}")

    program.catch_game_id = f"{tag}-catch"
    await call(
        GAMES,
        "CreateCatchGame",
        {"gameId": program.catch_game_id, "config": catch_config()},
        manager,
    )
    say(f"catch game {program.catch_game_id}: 1 s of falling coins (5) and stars (20)")

    for key, spec in campaign_specs(program.segment, datetime.now(UTC)).items():
        campaign_id = f"{tag}-{key}"
        await call(CAMPAIGNS, "CreateCampaign", {"campaignId": campaign_id, "spec": spec}, manager)
        scheduled = await call(CAMPAIGNS, "ScheduleCampaign", {"campaignId": campaign_id}, manager)
        campaign = scheduled["campaign"]
        budget = f", budget {num(campaign, 'budgetRemaining')}" if spec.get("budgetPoints") else ""
        state = campaign["state"].removeprefix("CAMPAIGN_STATE_").lower()
        say(f"campaign {campaign_id}: {spec['displayName']} ({state}{budget})")
        program.campaigns[key] = campaign_id

    # Funding the budgets and the points pool drew on the program's issuance
    # account, which runs negative by what the program has put in circulation.
    issuance = await call(
        WALLET, "GetWallet", {"memberId": "program:issuance"}, program.admin_token
    )
    program.issuance = issuance["wallet"]
    say(
        "issuance account program:issuance (admin view): balance "
        f"{num(program.issuance, 'balance')} points"
    )
    return program


# The member ------------------------------------------------------------------


@dataclass
class MemberStory:
    """What the member's calls returned, for the tests to check."""

    member_id: str
    token: str
    purchase_id: str = ""
    purchase: Message = field(default_factory=dict)
    share: Message = field(default_factory=dict)
    login: Message = field(default_factory=dict)
    wallet_after_earning: Message = field(default_factory=dict)
    spin: Message = field(default_factory=dict)
    verify: Message = field(default_factory=dict)
    coffee_wallet: Message = field(default_factory=dict)
    session: Message = field(default_factory=dict)
    objects: list[Message] = field(default_factory=list)
    catches: list[Message] = field(default_factory=list)
    catch_result: Message = field(default_factory=dict)
    leaderboard: Message = field(default_factory=dict)
    expiring_wallet: Message = field(default_factory=dict)
    refund: Message = field(default_factory=dict)
    final_wallet: Message = field(default_factory=dict)
    history: list[Message] = field(default_factory=list)


def scripted_catches(session: Message, objects: list[Message]) -> list[Message]:
    """Every scoring object, caught as it lands, with the basket at the centre."""
    centre = int(session["rules"]["fieldWidth"]) // 2
    scoring = [s for s in objects if num(s, "points") > 0]
    scoring.sort(key=lambda s: (num(s, "spawnMillis") + num(s, "fallMillis"), num(s, "objectId")))
    return [
        {
            "objectId": num(s, "objectId"),
            "catchMillis": num(s, "spawnMillis") + num(s, "fallMillis"),
            "basketX": centre,
        }
        for s in scoring
    ]


async def submit_when_over(call: Caller, request: Message, token: str) -> Message:
    """The player plays for the session's whole duration: the server refuses a
    submission before then (SUBMITTED_TOO_SOON), so ask again until it is over."""
    deadline = asyncio.get_running_loop().time() + CATCH_WAIT_SECONDS
    while True:
        try:
            return await call(GAMES, "SubmitCatch", request, token)
        except CallError as error:
            if error.reason != "SUBMITTED_TOO_SOON":
                raise
            if asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.2)


def _breakdown(say: Say, what: str, breakdown: Message) -> None:
    parts = [f"base {num(breakdown, 'basePoints')}"] + [
        f"{applied['campaignId']} +{num(applied, 'points')}"
        for applied in breakdown.get("applied", [])
    ]
    say(
        f"{what}: +{num(breakdown, 'totalPoints')} points ({', '.join(parts)}); "
        f"balance {num(breakdown, 'balance')}"
    )


async def play_member(call: Caller, mint: TokenMint, program: Program, say: Say) -> MemberStory:
    """The member's part: earn, spin, catch, see expiring points, get refunded."""
    tag, manager, backend = program.tag, program.manager_token, program.admin_token
    member_id = f"{tag}-member"
    story = MemberStory(member_id, mint.issue(member_id, "player"))
    me = story.token
    now = datetime.now(UTC)
    today = now.astimezone(ZoneInfo(ZONE))
    say(f"== Member {member_id} ==")
    await call(
        CAMPAIGNS,
        "UpsertMember",
        {
            "member": {
                "memberId": member_id,
                "timeZone": ZONE,
                "birthday": {"month": today.month, "day": today.day, "year": 1990},
                "segments": [program.segment],
            }
        },
        manager,
    )
    say(f"profile stored (birthday today, {today:%d %B}; segment {program.segment})")

    async def track(activity_type: str, number: int, token: str, **details: Message) -> Message:
        # Everything happens at the story's `now`: the day of the birthday the
        # profile names, inside the weekend's window.
        activity = {
            "activityId": f"{tag}-{activity_type}-{number}",
            "memberId": member_id,
            "type": activity_type,
            "occurTime": timestamp(now),
            **details,
        }
        response = await call(CAMPAIGNS, "TrackActivity", {"activity": activity}, token)
        return response["breakdown"]

    # Purchases and refunds come from the shop's back end; the member's app
    # reports shares and logins itself.
    story.purchase_id = f"{tag}-purchase-1"
    purchase = {"amountMinor": "4000", "currency": "EUR", "skus": ["sneakers"]}
    story.purchase = await track("purchase", 1, backend, purchase=purchase)
    _breakdown(say, "buys sneakers for 40.00 EUR", story.purchase)
    story.share = await track("social_share", 1, me)
    _breakdown(say, "shares a post", story.share)
    story.login = await track("app_login", 1, me)
    _breakdown(say, "opens the app on their birthday", story.login)

    story.wallet_after_earning = (await call(WALLET, "GetWallet", {}, me))["wallet"]
    say(f"wallet: {num(story.wallet_after_earning, 'balance')} points")

    wheel = (
        await call(GAMES, "GetWheel", {"wheelId": program.wheel_id, "memberId": member_id}, me)
    )["wheel"]
    seeds = await call(
        GAMES, "SetClientSeed", {"memberId": member_id, "clientSeed": f"{tag}-lucky"}, me
    )
    say(
        f"wheel: {num(wheel, 'allowance', 'spinsLeftToday')} spins left today; server seed "
        f"committed as {seeds['seedPair']['serverSeedSha256'][:16]}..., client seed "
        f"{seeds['seedPair']['clientSeed']}"
    )
    story.spin = (
        await call(
            GAMES,
            "Spin",
            {"wheelId": program.wheel_id, "memberId": member_id, "requestId": f"{tag}-spin-1"},
            me,
        )
    )["spin"]
    landed = wheel["odds"][num(story.spin, "landedSegmentIndex")]["label"]
    say(
        f"spins and lands on {landed!r} "
        f"({story.spin['outcome'].removeprefix('SPIN_OUTCOME_').lower()}); "
        f"balance {num(story.spin, 'pointsBalanceAfter')}"
    )
    rotated = await call(GAMES, "RotateSeed", {"memberId": member_id}, me)
    story.verify = await call(GAMES, "VerifySpin", {"spinId": story.spin["spinId"]}, me)
    say(
        f"rotates the seed (revealed {rotated['revealed']['serverSeed'][:16]}...) and verifies "
        f"the spin: {'verified' if story.verify.get('verified') else 'NOT verified'}"
    )
    story.coffee_wallet = (await call(WALLET, "GetWallet", {"unit": COFFEE}, me))["wallet"]
    say(f"coffees won so far: {num(story.coffee_wallet, 'balance')}")

    story.session = (
        await call(
            GAMES,
            "StartCatch",
            {
                "gameId": program.catch_game_id,
                "memberId": member_id,
                "requestId": f"{tag}-catch-1",
            },
            me,
        )
    )["session"]
    # Each object is revealed shortly before it falls; the stream ends with the last.
    revealed = await call.stream(
        GAMES,
        "WatchCatchObjects",
        {"sessionId": story.session["sessionId"], "memberId": member_id},
        me,
    )
    story.objects = [message["object"] for message in revealed]
    story.catches = scripted_catches(story.session, story.objects)
    say(f"plays catch: {len(story.objects)} objects fall, catches {len(story.catches)}")
    rules = story.session["rules"]
    # The basket (as wide as the field) stays at the centre: that is the trace.
    centre = int(rules["fieldWidth"]) // 2
    trace = [{"millis": m, "x": centre} for m in range(0, int(rules["durationMillis"]) + 1, 100)]
    submission = {
        "sessionId": story.session["sessionId"],
        "memberId": member_id,
        "catches": story.catches,
        "trace": trace,
        "claimedScore": str(
            sum(
                num(s, "points")
                for s in story.objects
                if num(s, "objectId") in {c["objectId"] for c in story.catches}
            )
        ),
    }
    story.catch_result = (await submit_when_over(call, submission, me))["result"]
    say(
        f"  score {num(story.catch_result, 'score')}, "
        f"awarded {num(story.catch_result, 'awardedPoints')} points"
    )
    story.leaderboard = await call(
        GAMES, "GetLeaderboard", {"gameId": program.catch_game_id, "memberId": member_id}, me
    )
    say(f"  rank {num(story.leaderboard, 'memberEntry', 'rank')} on this week's leaderboard")

    story.expiring_wallet = (
        await call(WALLET, "GetWallet", {"expiringWithin": EXPIRING_WITHIN}, me)
    )["wallet"]
    for expiring in story.expiring_wallet.get("expiringSoon", []):
        say(f"expiring: {num(expiring, 'amount')} points on {expiring['expireTime'][:10]}")

    refund = {"purchaseActivityId": story.purchase_id, "amountMinor": "2000"}
    story.refund = await track("refund", 1, backend, refund=refund)
    clawback = story.refund.get("clawback", {})
    say(
        f"returns half the purchase (20.00 EUR): {num(clawback, 'pointsReversed')} points "
        f"clawed back, {num(clawback, 'pointsUnrecovered')} unrecovered"
    )

    story.final_wallet = (await call(WALLET, "GetWallet", {}, me))["wallet"]
    story.history = (await call(WALLET, "ListWalletEntries", {}, me)).get("entries", [])
    say(
        f"wallet: {num(story.final_wallet, 'balance')} points, lifetime earned "
        f"{num(story.final_wallet, 'lifetimeEarned')}; history:"
    )
    for entry in story.history:
        reason = entry.get("reason", "ENTRY_REASON_UNSPECIFIED").removeprefix("ENTRY_REASON_")
        say(f"  {num(entry, 'change'):+6d}  {reason.lower():<10} {entry['transferId']}")
    return story


# The rewards ------------------------------------------------------------------

COFFEE_PRICE = 50


@dataclass
class RewardStory:
    """What the member's redemption calls returned, for the tests to check."""

    reward_id: str
    catalog_entry: Message = field(default_factory=dict)
    redemption: Message = field(default_factory=dict)
    mine: list[Message] = field(default_factory=list)
    refunded: Message = field(default_factory=dict)
    wallet_before: Message = field(default_factory=dict)
    wallet_after_redeeming: Message = field(default_factory=dict)
    wallet_after_refund: Message = field(default_factory=dict)
    report: Message = field(default_factory=dict)


async def set_up_rewards(call: Caller, program: Program, say: Say) -> str:
    """The manager's catalog: a free coffee for 50 points, stocked, with its codes."""
    manager, reward_id = program.manager_token, f"{program.tag}-coffee"
    spec = {
        "title": "Free coffee",
        "description": "Any coffee, any size",
        "category": "drinks",
        "price": str(COFFEE_PRICE),
        "value": {"amountMinor": "350", "currency": "EUR"},
        "kind": "REWARD_KIND_CODE_POOL",
        "timeZone": ZONE,
    }
    await call(REWARDS, "CreateReward", {"rewardId": reward_id, "spec": spec}, manager)
    stocked = await call(
        REWARDS,
        "StockReward",
        {"rewardId": reward_id, "quantity": "3", "requestId": f"{program.tag}-stock"},
        manager,
    )
    lines = ["code", *(f"{program.tag.upper()}-COFFEE-{n}" for n in range(1, 4))]
    imported = await call(
        REWARDS,
        "ImportCodes",
        {"rewardId": reward_id, "importId": program.tag, "firstLine": "1", "lines": lines},
        manager,
    )
    say(
        f"reward {reward_id}: Free coffee for {COFFEE_PRICE} points, stock "
        f"{num(stocked, 'stockLeft')}, {num(imported, 'added')} codes imported"
    )
    return reward_id


async def redeem_story(
    call: Caller, program: Program, story: MemberStory, reward_id: str, say: Say
) -> RewardStory:
    """The member spends points on a coffee, sees the code, and the shop refunds it."""
    me, member_id = story.token, story.member_id
    told = RewardStory(reward_id)
    told.wallet_before = (await call(WALLET, "GetWallet", {}, me))["wallet"]
    catalog = await call(REWARDS, "ListCatalog", {"memberId": member_id}, me)
    told.catalog_entry = next(e for e in catalog["entries"] if e["rewardId"] == reward_id)
    say(
        f"catalog: {told.catalog_entry['title']} for {num(told.catalog_entry, 'price')} points "
        f"({'affordable' if told.catalog_entry.get('affordable') else 'not affordable'})"
    )
    request = {"memberId": member_id, "rewardId": reward_id, "requestId": f"{program.tag}-r-1"}
    told.redemption = (await call(REWARDS, "Redeem", request, me))["redemption"]
    told.wallet_after_redeeming = (await call(WALLET, "GetWallet", {}, me))["wallet"]
    say(
        f"redeems it: {told.redemption['state'].removeprefix('REDEMPTION_STATE_').lower()}, "
        f"code {told.redemption['code']}; balance {num(told.wallet_after_redeeming, 'balance')}"
    )
    mine = await call(REWARDS, "ListMyRedemptions", {"memberId": member_id}, me)
    told.mine = mine.get("redemptions", [])
    refund = {"redemptionId": told.redemption["redemptionId"], "reason": "coffee machine broken"}
    told.refunded = (await call(REWARDS, "RefundRedemption", refund, program.manager_token))[
        "redemption"
    ]
    told.wallet_after_refund = (await call(WALLET, "GetWallet", {}, me))["wallet"]
    say(
        f"the shop refunds it: {told.refunded['state'].removeprefix('REDEMPTION_STATE_').lower()}"
        f", the code is void; balance {num(told.wallet_after_refund, 'balance')}"
    )
    told.report = (
        await call(REWARDS, "GetRewardReport", {"rewardId": reward_id}, program.manager_token)
    )["report"]
    return told


# Progress --------------------------------------------------------------------

GOLD_POINTS = 300
GOLD_DAY_POINTS = 50
BADGE_BONUS = 20
CHALLENGE_REWARD = 30
# How often, and how many times, the story looks for what the feeds carry across.
WAIT_SECONDS, WAIT_ATTEMPTS = 0.2, 150


@dataclass
class ProgressStory:
    """What the progress chapter's calls returned, for the tests to check."""

    purchase: Message = field(default_factory=dict)
    tiers: list[str] = field(default_factory=list)
    gold_login: Message = field(default_factory=dict)
    wallet_before_reviews: Message = field(default_factory=dict)
    wallet_after_awards: Message = field(default_factory=dict)
    progress: Message = field(default_factory=dict)
    rebuilt: Message = field(default_factory=dict)
    wallet_after_rebuild: Message = field(default_factory=dict)


def progress_definitions(tag: str, review_type: str, now: datetime) -> list[Message]:
    """A tier program with gold at 300 qualifying points, a reviewer badge and a
    review-twice challenge this week (the review type is this story's own, so
    another story's badge never pays this member)."""
    first_day = (now - timedelta(days=1)).astimezone(ZoneInfo(ZONE))
    reviews = {"measure": "MEASURE_ACTIVITY_COUNT", "activityType": review_type}
    return [
        {
            "id": f"{tag}-club",
            "tierProgram": {
                "displayName": "Club",
                "timeZone": ZONE,
                "window": "QUALIFYING_WINDOW_CALENDAR_YEAR",
                "tiers": [
                    {"tierId": "member", "displayName": "Member"},
                    {"tierId": "gold", "displayName": "Gold", "minPoints": str(GOLD_POINTS)},
                ],
            },
        },
        {
            "id": f"{tag}-reviewer",
            "badge": {
                "displayName": "Reviewer",
                "rule": reviews,
                "levels": [{"levelId": "first", "threshold": "1", "bonusPoints": str(BADGE_BONUS)}],
                "budgetId": tag,
            },
        },
        {
            "id": f"{tag}-review-twice",
            "challenge": {
                "displayName": "Review twice this week",
                "schedule": {
                    "timeZone": ZONE,
                    "start": {
                        "year": first_day.year,
                        "month": first_day.month,
                        "day": first_day.day,
                    },
                    "duration": f"{7 * 86400}s",
                },
                "steps": [{"stepId": "reviews", "rule": reviews, "target": "2"}],
                "rewardPoints": str(CHALLENGE_REWARD),
                "budgetId": tag,
            },
        },
    ]


async def until(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """The first truthy answer of `check`, asked until the feeds carry `what` across."""
    for _ in range(WAIT_ATTEMPTS):
        if answer := await check():
            return answer
        await asyncio.sleep(WAIT_SECONDS)
    raise TimeoutError(f"{what}: not seen in {WAIT_SECONDS * WAIT_ATTEMPTS:.0f} s")


async def progress_story(
    call: Caller, program: Program, story: MemberStory, say: Say
) -> ProgressStory:
    """The member climbs: a purchase crosses gold (progress computes it from the
    ledger's credit), campaigns follows the tier feed and pays its gold-only
    member day; two reviews earn a badge and complete a challenge, each paid once."""
    tag, manager, me, member_id = program.tag, program.manager_token, story.token, story.member_id
    review_type = f"review_{tag.rsplit('-', 1)[-1]}"
    told = ProgressStory()
    now = datetime.now(UTC)
    say("== Progress: tiers, a badge, a challenge ==")
    for definition in progress_definitions(tag, review_type, now):
        applied = await call(PROGRESS, "ApplyDefinition", {"definition": definition}, manager)
        say(
            f"definition {applied['definition']['id']}"
            f" (version {num(applied, 'definition', 'version')})"
        )
    request = {"budgetId": tag, "points": "1000", "requestId": f"{tag}-progress-budget"}
    funded = await call(PROGRESS, "FundBudget", request, manager)
    say(f"progress budget {funded['accountId']}: {num(funded, 'balance')} points")
    gold_day = {
        "displayName": "Gold members' day: 50 points for opening the app",
        "kind": "CAMPAIGN_KIND_FIXED_BONUS",
        "reward": {"points": str(GOLD_DAY_POINTS)},
        "conditions": {"activityTypes": ["app_login"], "tiers": ["gold"], "segments": [tag]},
        "schedule": {"timeZone": ZONE},
        "budgetPoints": "1000",
    }
    program.campaigns["gold-day"] = f"{tag}-gold-day"
    await call(
        CAMPAIGNS, "CreateCampaign", {"campaignId": f"{tag}-gold-day", "spec": gold_day}, manager
    )
    await call(CAMPAIGNS, "ScheduleCampaign", {"campaignId": f"{tag}-gold-day"}, manager)
    say(f"campaign {tag}-gold-day: {gold_day['displayName']} (tier gold only)")

    async def track(
        activity_id: str, activity_type: str, token: str, **details: Message
    ) -> Message:
        activity = {
            "activityId": f"{tag}-{activity_id}",
            "memberId": member_id,
            "type": activity_type,
            "occurTime": timestamp(datetime.now(UTC)),
            **details,
        }
        return (await call(CAMPAIGNS, "TrackActivity", {"activity": activity}, token))["breakdown"]

    purchase = {"amountMinor": str(GOLD_POINTS * 100 + 10_000), "currency": "EUR"}
    told.purchase = await track("purchase-2", "purchase", program.admin_token, purchase=purchase)
    _breakdown(say, f"buys for {GOLD_POINTS + 100}.00 EUR", told.purchase)

    async def gold_in_campaigns() -> list[str]:
        member = (await call(CAMPAIGNS, "GetMember", {"memberId": member_id}, manager))["member"]
        return member.get("tiers", []) if "gold" in member.get("tiers", []) else []

    told.tiers = await until(gold_in_campaigns, "the gold tier in campaigns")
    say(f"progress computes gold; campaigns targets the member as {', '.join(told.tiers)}")
    told.gold_login = await track("app_login-2", "app_login", me)
    _breakdown(say, "opens the app on the gold members' day", told.gold_login)

    told.wallet_before_reviews = (await call(WALLET, "GetWallet", {}, me))["wallet"]
    before = num(told.wallet_before_reviews, "balance")
    # The shop reports reviews (a player may send only the app's own activity types).
    for n in (1, 2):
        await track(f"review-{n}", review_type, program.admin_token)
    say("writes two reviews")

    async def awarded() -> Message:
        wallet = (await call(WALLET, "GetWallet", {}, me))["wallet"]
        return wallet if num(wallet, "balance") >= before + BADGE_BONUS + CHALLENGE_REWARD else {}

    told.wallet_after_awards = await until(awarded, "the badge's and the challenge's points")
    told.progress = await call(PROGRESS, "GetMemberProgress", {"memberId": member_id}, me)
    club = next(t for t in told.progress["tiers"] if t["programId"] == f"{tag}-club")
    say(
        f"progress: tier {club['tierId']} ({num(club, 'qualifyingPoints')} points); badge and"
        f" challenge paid {BADGE_BONUS} + {CHALLENGE_REWARD} points; balance"
        f" {num(told.wallet_after_awards, 'balance')}"
    )
    told.rebuilt = await call(PROGRESS, "RebuildMember", {"memberId": member_id}, manager)
    told.wallet_after_rebuild = (await call(WALLET, "GetWallet", {}, me))["wallet"]
    say(
        f"rebuilt from {num(told.rebuilt, 'events')} events:"
        f" {len(told.rebuilt.get('differences', []))} differences"
    )
    return told


# grpcio, for the demo --------------------------------------------------------

SERVICES = {
    descriptor.full_name: descriptor
    for descriptor in (
        games_pb.DESCRIPTOR.services_by_name["GamesService"],
        campaigns_pb.DESCRIPTOR.services_by_name["CampaignsService"],
        gateway_pb.DESCRIPTOR.services_by_name["WalletService"],
        rewards_pb.DESCRIPTOR.services_by_name["RewardsService"],
        progress_pb.DESCRIPTOR.services_by_name["ProgressService"],
    )
}


class GrpcCaller:
    """Native gRPC to the gateway with grpcio, speaking the JSON mapping."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel

    def _method(self, service: str, method: str, kind):
        descriptor: MethodDescriptor = SERVICES[service].methods_by_name[method]
        request_class = message_factory.GetMessageClass(descriptor.input_type)
        response_class = message_factory.GetMessageClass(descriptor.output_type)
        call = kind(
            f"/{service}/{method}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        return call, request_class

    async def __call__(self, service: str, method: str, request: Message, token: str) -> Message:
        call, request_class = self._method(service, method, self._channel.unary_unary)
        with _call_errors():
            response = await call(
                json_format.ParseDict(request, request_class()),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=CALL_TIMEOUT_SECONDS,
            )
        return json_format.MessageToDict(response)

    async def stream(
        self, service: str, method: str, request: Message, token: str
    ) -> list[Message]:
        call, request_class = self._method(service, method, self._channel.unary_stream)
        with _call_errors():
            responses = call(
                json_format.ParseDict(request, request_class()),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=CALL_TIMEOUT_SECONDS,
            )
            return [json_format.MessageToDict(response) async for response in responses]


@contextmanager
def _call_errors():
    """A refused gRPC call as the CallError every Caller raises."""
    try:
        yield
    except grpc.aio.AioRpcError as error:
        info = error_info(error)
        raise CallError(
            error.code().name,
            info.reason if info else None,
            error.details() or "",
            field_violations=field_violations(error),
        ) from None


async def play(
    call: Caller, mint: TokenMint, say: Say, tag: str | None = None, *, tidy: bool | None = None
) -> MemberStory:
    """The whole story: set-up, then the member, then a redemption; then, when `tidy`
    is set, what it created is archived (True) or listed as left (False)."""
    program = await set_up_program(call, mint, tag or new_tag(), say)
    reward_id = await set_up_rewards(call, program, say)
    story = await play_member(call, mint, program, say)
    await redeem_story(call, program, story, reward_id, say)
    await progress_story(call, program, story, say)
    if tidy is not None:
        await tidy_up(call, program, story, reward_id, say, archive=tidy)
    return story


async def tidy_up(
    call: Caller, program: Program, story: MemberStory, reward_id: str, say: Say, *, archive: bool
) -> None:
    """Archives the story's campaigns (cancelled first) and its reward, or says it
    leaves them; wheels, catch games, members and ledger entries have no archive."""
    manager = program.manager_token
    archivable = [f"campaign {c}" for c in program.campaigns.values()] + [f"reward {reward_id}"]
    if archive:
        say(f"== Tidying up program {program.tag} (python -m tools.demo --keep leaves it) ==")
        for campaign_id in program.campaigns.values():
            await call(CAMPAIGNS, "CancelCampaign", {"campaignId": campaign_id}, manager)
            await call(CAMPAIGNS, "ArchiveCampaign", {"campaignId": campaign_id}, manager)
        await call(REWARDS, "ArchiveReward", {"rewardId": reward_id}, manager)
        say(f"archived {', '.join(archivable)}")
    else:
        say(f"== Program {program.tag} is left as it is (--keep) ==")
        say(f"left: {', '.join(archivable)}")
    say(
        f"left: wheel {program.wheel_id}, catch game {program.catch_game_id}, member "
        f"{story.member_id} and their points (these have no archive; the ids are this run's own)"
    )


async def gateway_answers(target: str) -> bool:
    try:
        await wait_ready_http(target, "/readyz", timeout=0.5)
    except TimeoutError:
        return False
    return True


async def run_story(target: str, mint: TokenMint, tidy: bool | None = None) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        await play(GrpcCaller(channel), mint, print, tidy=tidy)


async def main_async(gateway: str, keep: bool = False) -> int:
    try:
        if await gateway_answers(gateway):
            print(f"Using the suite at {gateway}: every id below is this run's own.")
            settings = GatewaySettings.from_env()
            await run_story(gateway, TokenMint.from_settings(settings), tidy=not keep)
            return 0
        with tempfile.TemporaryDirectory(prefix="loyalty-demo-") as directory:
            secret = secrets.token_urlsafe(32)
            suite = Suite(
                Path(directory) / "data",
                env={
                    "GATEWAY_JWT_SECRET": secret,
                    "CAMPAIGNS_POINTS_TTL_DAYS": "30",
                    "LOG_LEVEL": "warning",
                },
                log_dir=Path(directory) / "logs",
            )
            print("No gateway answers at", gateway, "- starting a suite of its own...")
            try:
                await suite.start_all()
                settings = replace(GatewaySettings.from_env(), jwt_secret=secret)
                await run_story(suite.target("gateway"), TokenMint.from_settings(settings))
            finally:
                await suite.stop_all()
            print("The demo's own suite stopped; its data went with its temporary directory.")
        return 0
    except CallError as error:
        print(f"the gateway refused a call: {error}", file=sys.stderr)
        if error.code == "UNAUTHENTICATED":
            print("  (is the running gateway using this checkout's var/ secret?)", file=sys.stderr)
        extra = error.extra.get("field_violations")
        if extra:
            print(json.dumps(extra, indent=2), file=sys.stderr)
        return 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", default=DEFAULT_GATEWAY, help="host:port of a running gateway")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the campaigns and reward it made (a running suite)",
    )
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main_async(arguments.gateway, arguments.keep)))


if __name__ == "__main__":
    main()
