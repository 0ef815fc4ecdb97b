"""Hypothesis: for random event sequences, delivered in random batches with
repeats, what the store derived incrementally equals a rebuild from the
journal, and every award earned was recorded once."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.kit.feeds import FeedItem
from services.progress.domain.definitions import Badge, BadgeLevel, Measure, Rule, WindowKind
from tests.support.progress import (
    activity,
    at,
    catch,
    club,
    credit,
    login_streak,
    reversal,
    reviewer,
    service_tier,
    spin,
    weekly_challenge,
)

MEMBERS = ("m-1", "m-2")
START = at(2026, 3, 1)
HOUR = 3600 * 1_000_000

points_badge = Badge(
    "Big spender",
    Rule(Measure.POINTS_EARNED, codes=frozenset({"EARN", "BONUS"})),
    (BadgeLevel("one", 500, bonus_points=10), BadgeLevel("two", 2_000, bonus_points=20)),
    budget_id="rewards",
)


@st.composite
def histories(draw):
    """(feed, event) pairs in a plausible order: reversals name earlier credits."""
    count = draw(st.integers(1, 40))
    events, credits = [], []
    for n in range(count):
        member = draw(st.sampled_from(MEMBERS))
        moment = START + draw(st.integers(0, 24 * 40)) * HOUR
        kind = draw(st.sampled_from(["credit", "linked", "reverse", "activity", "spin", "catch"]))
        if kind == "reverse" and credits:
            original, owner, amount = draw(st.sampled_from(credits))
            taken = draw(st.integers(1, amount))
            events.append(("ledger", reversal(f"rev{n}", owner, original, taken, moment)))
        elif kind in ("credit", "linked", "reverse"):
            amount = draw(st.integers(1, 3_000))
            code = draw(st.sampled_from(["EARN", "BONUS", "GAME_PRIZE"]))
            linked = f"a{draw(st.integers(0, 5))}" if kind == "linked" else ""
            events.append(("ledger", credit(f"t{n}", member, amount, moment, code, linked)))
            credits.append((f"t{n}", member, amount))
        elif kind == "activity":
            activity_id = f"a{draw(st.integers(0, 8))}"
            kind_name = draw(st.sampled_from(["purchase", "product_review", "app_login"]))
            zone = draw(st.sampled_from(["", "Europe/Paris", "America/New_York", "Asia/Tokyo"]))
            occurred = moment - draw(st.integers(0, 72)) * HOUR
            events.append(
                ("campaigns", activity(activity_id, member, kind_name, occurred, zone, 1_000))
            )
        elif kind == "spin":
            events.append(("games", spin(f"s{n}", member, moment)))
        else:
            events.append(("games", catch(f"c{n}", member, moment, draw(st.integers(0, 900)))))
    cuts = draw(st.lists(st.integers(1, count), max_size=6))
    repeats = draw(st.booleans())
    return events, sorted(set(cuts)), repeats


async def run(events, cuts, repeats, directory: Path) -> None:
    async with service_tier(directory / "progress.db") as tier:
        for key, spec in (
            ("club", club()),
            ("rolling", club(WindowKind.ROLLING_MONTHS, rolling_months=1)),
            ("reviewer", reviewer()),
            ("big", points_badge),
            ("login", login_streak(freeze=True)),
            ("weekly", weekly_challenge()),
        ):
            await tier.catalog.apply(key, spec, None)
        sequences = {"ledger": 0, "campaigns": 0, "games": 0}
        batches: dict[str, list[FeedItem]] = {feed: [] for feed in sequences}
        for index, (feed, event) in enumerate(events, start=1):
            sequences[feed] += 1
            batches[feed].append(FeedItem(sequences[feed], [event]))
            if index in cuts or index == len(events):
                for name, batch in batches.items():
                    if batch:
                        tier.clock.set(max(tier.clock.now_us(), START + index * HOUR))
                        await tier.feeds.apply(name, batch)
                        if repeats:
                            await tier.feeds.apply(name, batch)
                batches = {feed: [] for feed in sequences}
        for member in MEMBERS:
            _, differences = await tier.members.rebuild(member)
            assert differences == [], (member, differences)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_rebuild_equals_incremental(history) -> None:
    events, cuts, repeats = history
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(asyncio.wait_for(run(events, cuts, repeats, Path(directory)), 60))
