"""Personal offers: preferences, which offers a member may get, and the draw.

The draw, version 1 (reproducible by anyone with the member id, the visit id
and the eligible offers):

1. The candidates are the eligible offers (live, not archived, not excluded by
   a preference) minus those shown on the member's last RECENT_VISITS visits;
   when that leaves none, the eligible offers minus the last visit's; when that
   leaves none, every eligible offer. Candidates are sorted by offer id.
2. Each candidate weighs its weight, twice that when its category is one of
   the member's favourites. W is the sum.
3. For n = 0, 1, 2, ...: d = HMAC-SHA256(key = UTF-8(member id), message =
   UTF-8("loyalty-arcade/offer/v1\\n" + visit id + "\\n" + decimal n)); x = the
   first 8 bytes of d as a big-endian unsigned integer. The first x below
   2^64 - (2^64 mod W) is kept (rejection sampling: no offer is favoured by
   the modulo); r = x mod W.
4. The offer is the first candidate whose running total of weights exceeds r.

A preference excludes an offer tagged "key:value" when the member chose values
for that key and `value` is not among them ("drinks: tea" excludes an offer
tagged "drinks:coffee"; an offer with no "drinks:" tag is not excluded).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from services.kit.errors import Violations
from services.kit.text import shown
from services.rewards.domain.catalog import LABEL, MAX_DESCRIPTION, MAX_PRICE, MAX_TITLE, check_text

DRAW_VERSION = "loyalty-arcade/offer/v1"
RECENT_VISITS = 3
MAX_WEIGHT = 1000
MAX_PREFERENCES = 20
MAX_VALUES = 20
KEY = re.compile(r"[a-z][a-z0-9_-]{0,39}")
VALUE = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


class OfferState(IntEnum):
    UNSPECIFIED = 0
    SHOWN = 1
    ACCEPTED = 2


@dataclass(frozen=True, slots=True)
class Preferences:
    # (key, values) pairs, keys sorted.
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()
    favourite_categories: tuple[str, ...] = ()

    def values_for(self, key: str) -> tuple[str, ...] | None:
        return next((values for k, values in self.choices if k == key), None)


@dataclass(frozen=True, slots=True)
class OfferSpec:
    title: str
    description: str = ""
    category: str = ""
    tags: tuple[str, ...] = ()
    weight: int = 1
    reward_id: str = ""
    price_points: int = 0
    bonus_points: int = 0
    start_us: int | None = None
    end_us: int | None = None


@dataclass(frozen=True, slots=True)
class Offer:
    offer_id: str
    spec: OfferSpec
    archived: bool = False


@dataclass(frozen=True, slots=True)
class Visit:
    """The offer chosen for one visit of one member."""

    member_id: str
    visit_id: str
    offer_id: str
    draw: str
    state: OfferState
    created_us: int
    redemption_id: str = ""
    points_awarded: bool = False


@dataclass(frozen=True, slots=True)
class Draw:
    offer: Offer | None
    digest: str


def validate_preferences(preferences: Preferences) -> None:
    violations = Violations()
    if len(preferences.choices) > MAX_PREFERENCES:
        violations.add("preferences.choices", f"at most {MAX_PREFERENCES} entries")
    keys = [key for key, _ in preferences.choices]
    if len(set(keys)) != len(keys):
        violations.add("preferences.choices", "names a key twice")
    for index, (key, values) in enumerate(preferences.choices[:MAX_PREFERENCES]):
        path = f"preferences.choices[{index}]"
        if not KEY.fullmatch(key):
            violations.add(f"{path}.key", f"must be 1 to 40 lower-case letters, got {shown(key)}")
        if not 0 < len(values) <= MAX_VALUES:
            violations.add(f"{path}.values", f"1 to {MAX_VALUES} values")
        for value in values[:MAX_VALUES]:
            if not VALUE.fullmatch(value):
                violations.add(f"{path}.values", f"lower-case words only, got {shown(value)}")
                break
    if len(preferences.favourite_categories) > MAX_PREFERENCES:
        violations.add("preferences.favourite_categories", f"at most {MAX_PREFERENCES} entries")
    for category in preferences.favourite_categories[:MAX_PREFERENCES]:
        if not LABEL.fullmatch(category):
            violations.add("preferences.favourite_categories", f"got {shown(category)}")
            break
    violations.raise_if_any()


def validate_offer(spec: OfferSpec) -> None:
    violations = Violations()
    check_text(violations, "spec.title", spec.title, MAX_TITLE, required=True)
    check_text(violations, "spec.description", spec.description, MAX_DESCRIPTION)
    if spec.category and not LABEL.fullmatch(spec.category):
        violations.add("spec.category", f"must be a short label, got {shown(spec.category)}")
    if len(spec.tags) > MAX_PREFERENCES:
        violations.add("spec.tags", f"at most {MAX_PREFERENCES} tags")
    for tag in spec.tags[:MAX_PREFERENCES]:
        key, _, value = tag.partition(":")
        if not (KEY.fullmatch(key) and VALUE.fullmatch(value)):
            violations.add("spec.tags", f'tags look like "drinks:coffee", got {shown(tag)}')
            break
    if not 1 <= spec.weight <= MAX_WEIGHT:
        violations.add("spec.weight", f"must be between 1 and {MAX_WEIGHT}")
    if not 0 <= spec.price_points <= MAX_PRICE:
        violations.add("spec.price_points", f"must be between 0 and {MAX_PRICE:,}")
    if not 0 <= spec.bonus_points <= MAX_PRICE:
        violations.add("spec.bonus_points", f"must be between 0 and {MAX_PRICE:,}")
    if spec.reward_id and spec.bonus_points:
        violations.add("spec.bonus_points", "an offer gives a reward or bonus points, not both")
    if not spec.reward_id and not spec.bonus_points:
        violations.add("spec.reward_id", "an offer gives a reward or bonus points")
    if spec.price_points and not spec.reward_id:
        violations.add("spec.price_points", "only with reward_id")
    if spec.start_us is not None and spec.end_us is not None and spec.end_us <= spec.start_us:
        violations.add("spec.end_time", "must be after start_time")
    violations.raise_if_any()


def excluded(offer: Offer, preferences: Preferences) -> bool:
    for tag in offer.spec.tags:
        key, _, value = tag.partition(":")
        chosen = preferences.values_for(key)
        if chosen is not None and value not in chosen:
            return True
    return False


def live(offer: Offer, now_us: int) -> bool:
    spec = offer.spec
    return (
        not offer.archived
        and (spec.start_us is None or spec.start_us <= now_us)
        and (spec.end_us is None or now_us < spec.end_us)
    )


def candidates(
    offers: Sequence[Offer], preferences: Preferences, now_us: int, recent: Sequence[str]
) -> list[Offer]:
    """Step 1 of the draw; `recent` holds the offer ids of the last visits, newest first."""
    eligible = sorted(
        (offer for offer in offers if live(offer, now_us) and not excluded(offer, preferences)),
        key=lambda offer: offer.offer_id,
    )
    for avoided in (set(recent[:RECENT_VISITS]), set(recent[:1]), set()):
        kept = [offer for offer in eligible if offer.offer_id not in avoided]
        if kept:
            return kept
    return []


def weight(offer: Offer, preferences: Preferences) -> int:
    favourite = offer.spec.category and offer.spec.category in preferences.favourite_categories
    return offer.spec.weight * (2 if favourite else 1)


def draw(member_id: str, visit_id: str, pool: Sequence[Offer], preferences: Preferences) -> Draw:
    """Steps 2 to 4 of the draw over `pool` (from `candidates`)."""
    if not pool:
        return Draw(None, "")
    weights = [weight(offer, preferences) for offer in pool]
    total = sum(weights)
    limit = 2**64 - (2**64 % total)
    counter = 0
    while True:
        message = f"{DRAW_VERSION}\n{visit_id}\n{counter}".encode()
        digest = hmac.new(member_id.encode(), message, hashlib.sha256).digest()
        value = int.from_bytes(digest[:8], "big")
        if value < limit:
            break
        counter += 1
    remainder = value % total
    running = 0
    for offer, offer_weight in zip(pool, weights, strict=True):
        running += offer_weight
        if remainder < running:
            return Draw(offer, digest.hex())
    raise AssertionError("unreachable: the remainder is below the total")
