"""The suite's ids, in one place: what each kind of id may look like, how the
ledger accounts of every service are named, and the one check for both.

Pure (no grpc, no sqlite), so domains import it. The lengths are chosen so
that every derived id fits the ledger's 128 characters: the longest is a
stock change, `reward:<reward 50>:stock:<request 64>` (128).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.kit.errors import Violations
from services.kit.text import shown


@dataclass(frozen=True, slots=True)
class IdRule:
    """A kind of id: its pattern and the sentence a violation gives."""

    pattern: re.Pattern[str]
    description: str

    def matches(self, value: str) -> bool:
        return self.pattern.fullmatch(value) is not None


# Wheels, catch games, rewards, programs: names a manager picks.
RESOURCE_ID = IdRule(
    re.compile(r"[A-Za-z0-9._-]{1,64}"), "must be 1 to 64 letters, digits or . _ -"
)
# Member ids become ledger account ids, so they exclude ":" and "/", which
# separate the parts of the suite's other account ids.
MEMBER_ID = IdRule(
    re.compile(r"[A-Za-z0-9._@+-]{1,64}"), "must be 1 to 64 letters, digits or . _ @ + -"
)
# Client idempotency keys; ":" lets a client namespace them.
REQUEST_ID = IdRule(
    re.compile(r"[A-Za-z0-9._:-]{1,64}"), "must be 1 to 64 letters, digits or . _ : -"
)
CAMPAIGN_ID = IdRule(
    re.compile(r"[A-Za-z0-9._-]{1,40}"), "must be 1 to 40 letters, digits or . _ -"
)
ACTIVITY_ID = IdRule(
    re.compile(r"[A-Za-z0-9._@+-]{1,50}"), "must be 1 to 50 letters, digits or . _ @ + -"
)
ACTIVITY_TYPE = IdRule(
    re.compile(r"[a-z][a-z0-9_]{0,39}"),
    "must be 1 to 40 lower-case letters, digits or _, starting with a letter",
)
# Any ledger account or transfer id.
LEDGER_ID = IdRule(
    re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+\-]{0,127}"),
    "must be 1 to 128 letters, digits or . _ : @ / + - and start with a letter or digit",
)
PRIZE_UNIT = IdRule(
    re.compile(r"prize:[a-z0-9][a-z0-9-]{0,62}"),
    'must look like "prize:<slug>" (lower-case letters, digits and -)',
)
# Rewards and offers: their ids name a prize unit (`prize:reward-<id>`), so they
# follow the unit's slug rule, short enough for `reward:<id>:stock:<request id>`.
REWARD_ID = IdRule(
    re.compile(r"[a-z0-9][a-z0-9-]{0,49}"),
    "must be 1 to 50 lower-case letters, digits or -, starting with a letter or digit",
)
# Printable ASCII without ":", which separates the parts of a draw's message.
CLIENT_SEED = IdRule(
    re.compile(r"[\x21-\x39\x3b-\x7e]{1,64}"), "must be 1 to 64 printable ASCII characters but :"
)


def check_id(violations: Violations, field: str, value: str, rule: IdRule = RESOURCE_ID) -> bool:
    """Adds a violation naming `field` unless `value` follows `rule`."""
    if not value:
        violations.add(field, "is required")
        return False
    return violations.check(rule.matches(value), field, f"{rule.description}, got {shown(value)}")


# ---------------------------------------------------------------- ledger accounts

POINTS = "points"
ISSUANCE_ACCOUNT = "program:issuance"
BREAKAGE_ACCOUNT = "program:breakage"
GAMES_REVENUE_ACCOUNT = "games:revenue"


def member_account(member_id: str, unit: str = POINTS) -> str:
    """A member's wallet is their id; a prize unit they hold is `<member>/<unit>`."""
    return member_id if unit == POINTS else f"{member_id}/{unit}"


def issuance_account(unit: str = POINTS) -> str:
    return ISSUANCE_ACCOUNT if unit == POINTS else f"prize-issuance:{unit}"


def budget_account(campaign_id: str) -> str:
    return f"campaign:{campaign_id}:budget"


def prize_pool_account(wheel_id: str, unit: str) -> str:
    return f"wheel:{wheel_id}:pool:{unit}"


REWARDS_REDEEMED_ACCOUNT = "rewards:redeemed"


def redemption_account(unit: str = POINTS) -> str:
    """Where what members pay for rewards goes: points, or a prize unit they claimed."""
    return REWARDS_REDEEMED_ACCOUNT if unit == POINTS else f"{REWARDS_REDEEMED_ACCOUNT}:{unit}"


def reward_unit(reward_id: str) -> str:
    """The unit counting a reward's own stock (a reward id is a valid slug)."""
    return f"prize:reward-{reward_id}"


def reward_stock_account(reward_id: str) -> str:
    """A reward's stock: it may not go negative, so the ledger refuses an oversell."""
    return f"reward:{reward_id}:stock"


def reward_issued_account(reward_id: str) -> str:
    """Where a reward's stock goes as it is redeemed."""
    return f"reward:{reward_id}:issued"


def progress_budget_account(budget_id: str) -> str:
    """Where member progress pays badge, streak and challenge rewards from."""
    return f"progress:{budget_id}:budget"


def wallet_member(account_id: str) -> str | None:
    """The member whose points wallet this account is, or None: member ids have no
    ":" or "/", which every other account id of the suite contains."""
    return account_id if MEMBER_ID.matches(account_id) else None
