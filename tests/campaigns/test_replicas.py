"""Two campaigns replicas on one database (a SQLite file, a PostgreSQL schema):
racing for the last of a budget, or for what is left of a member's cap, they
never pay more than it holds; the activity feed they both append to stays
gapless; a campaign created, funded or cancelled through one is evaluated so
by the other at once; two creates of one id or one new member racing on both
give SQLite's answers; and the database itself refuses an overspent budget or
an edited feed."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing

import psycopg
import pytest

from services.campaigns.domain.model import CampaignState, Conditions, Limits, MemberLimit
from services.campaigns.server import Campaigns, assemble
from services.kit.errors import AlreadyExists
from services.kit.schedule import LimitPeriod
from services.kit.stores import is_postgres
from tests.support import deadlines
from tests.support.campaign_cases import join, launch, points_of, track
from tests.support.campaign_specs import (
    activity,
    at,
    base_rule,
    fixed,
    member,
    purchase,
    window,
)
from tests.support.postgres import stored_rows

LOGINS = Conditions(activity_types=("app_login",))


@pytest.fixture
async def second(service) -> Campaigns:
    """Another replica over the same database and ledger (started by each test).
    The clock is at the activities' time."""
    service.clock.set(activity("app_login").occur_us)
    replica = assemble(service.settings, service.ledger, service.clock)
    yield replica
    await replica.stop()


async def test_two_replicas_racing_for_the_last_of_a_budget_never_overspend_it(service, second):
    members = [f"m-{n}" for n in range(10)]
    for member_id in members:
        await join(service, member(member_id))
    await launch(service, "base", base_rule())
    await launch(service, "flash", fixed(10, budget_points=95))
    await second.start()
    replicas = (service.campaigns, second)
    tracked = await asyncio.gather(
        *(
            replicas[n % 2].tracking.track(
                purchase(500, activity_id=f"a-{n}", member_id=members[n % len(members)])
            )
            for n in range(30)
        )
    )
    bonuses = [points_of(t.outcome, "flash") for t in tracked]
    assert sorted(bonuses, reverse=True) == [10] * 9 + [0] * 21
    for replica in replicas:
        campaign = (await replica.management.get("flash")).campaign
        assert (campaign.budget_funded, campaign.budget_used) == (95, 90)
    assert service.ledger.balance("campaign:flash:budget") == 5
    assert sum(service.ledger.balance(m) for m in members) == 30 * 5 + 90
    # Both replicas appended to one feed: every activity once, numbered 1..30.
    events = await second.store.read(lambda unit: unit.events_after(0, 100))
    assert [e.sequence for e in events] == list(range(1, 31))
    assert sorted(e.activity.activity_id for e in events) == sorted(f"a-{n}" for n in range(30))


async def test_two_replicas_racing_for_a_members_daily_cap_pay_it_once(service, second):
    await join(service)
    capped = Limits(member_limits=(MemberLimit(LimitPeriod.DAY, 100),))
    await launch(service, "daily", fixed(60, conditions=LOGINS, limits=capped))
    await second.start()
    replicas = (service.campaigns, second)
    tracked = await asyncio.gather(
        *(
            replicas[n % 2].tracking.track(activity("app_login", activity_id=f"l-{n}"))
            for n in range(8)
        )
    )
    assert (
        sorted((points_of(t.outcome, "daily") for t in tracked), reverse=True) == [60, 40] + [0] * 6
    )
    assert service.ledger.balance("m-1") == 100


async def test_the_same_activity_on_both_replicas_is_recorded_once(service, second):
    await join(service)
    await launch(service, "base", base_rule())
    await launch(service, "bonus", fixed(7))
    await second.start()
    delivery = purchase(1000, activity_id="a-1")
    tracked = await asyncio.gather(
        *(replica.tracking.track(delivery) for replica in (service.campaigns, second) * 4)
    )
    assert sum(not t.replayed for t in tracked) == 1
    assert service.ledger.balance("m-1") == 17


@pytest.mark.parametrize("engine", ["postgres"])
async def test_a_watcher_on_one_replica_sees_what_the_other_settles(service, second):
    """Only PostgreSQL tells one process of another's commits (LISTEN/NOTIFY)."""
    await join(service)
    await launch(service, "base", base_rule())
    await second.start()
    feed = second.feed.watch(0)
    first = asyncio.ensure_future(anext(feed))
    await track(service, purchase(500, activity_id="a-1"))
    event = await asyncio.wait_for(first, deadlines.DEADLINE_SECONDS)
    assert (event.sequence, event.activity.activity_id, event.points) == (1, "a-1", 5)
    await feed.aclose()


async def test_a_transition_both_replicas_see_is_stored_once(service, second):
    await launch(service, "later", fixed(5, schedule=window("2026-03-08T09:00:00", 24)))
    await second.start()
    service.clock.set(at("2026-03-08T09:00:01"))
    replicas = (service.campaigns, second)
    await asyncio.gather(*(replica.transitions.refresh(["later"]) for replica in replicas * 2))
    stored = await second.store.read(lambda unit: unit.transitions_after(0, 100))
    later = [(t.change.before, t.change.after) for t in stored if t.change.campaign_id == "later"]
    assert later == [
        (CampaignState.DRAFT, CampaignState.SCHEDULED),
        (CampaignState.SCHEDULED, CampaignState.LIVE),
    ]
    assert [t.sequence for t in stored] == list(range(1, len(stored) + 1))


async def test_a_campaign_one_replica_learns_from_the_catalog_feed_goes_live_there_alone(
    service, second
):
    """The replica that created it is gone (its tracker stopped): the other, which
    knows the campaign only from the catalog feed, announces its window's start
    as the first would have, from the state the first announced."""
    await second.start()  # before the campaign exists
    await launch(service, "later", fixed(5, schedule=window("2026-03-08T09:00:00", 24)))
    await second.transitions.follow_catalog()
    await service.campaigns.transitions.stop()
    service.clock.set(at("2026-03-08T09:00:01"))

    async def stored() -> list[tuple[CampaignState, CampaignState]]:
        found = await second.store.read(lambda unit: unit.transitions_after(0, 100))
        return [(t.change.before, t.change.after) for t in found if t.change.campaign_id == "later"]

    async def live() -> bool:
        return len(await stored()) == 2

    await deadlines.eventually(live)
    assert await stored() == [
        (CampaignState.DRAFT, CampaignState.SCHEDULED),
        (CampaignState.SCHEDULED, CampaignState.LIVE),
    ]


async def test_a_campaign_created_then_cancelled_on_one_replica_is_evaluated_so_by_the_other(
    service, second
):
    await join(service)
    await second.start()  # before the campaign exists
    await launch(service, "base", base_rule())
    await launch(service, "flash", fixed(10, budget_points=100))
    first = await second.tracking.track(purchase(500, activity_id="a-1"))
    assert (first.outcome.decision.points_for("m-1"), points_of(first.outcome, "flash")) == (15, 10)
    await service.campaigns.management.act("flash", "cancel")
    after = await second.tracking.track(purchase(500, activity_id="a-2"))
    assert (after.outcome.decision.points_for("m-1"), points_of(after.outcome, "flash")) == (5, 0)
    assert service.ledger.balance("m-1") == 5 + 10 + 5


async def test_a_campaign_changed_on_one_replica_is_changed_in_the_others_dry_run(service, second):
    await join(service)
    await launch(service, "bonus", fixed(10))
    await second.start()
    await service.campaigns.management.update("bonus", lambda spec: fixed(25), 0)
    outcome = await second.tracking.dry_run(purchase(500, activity_id="a-1"))
    assert points_of(outcome, "bonus") == 25


@pytest.mark.parametrize("engine", ["postgres"])
async def test_the_other_replica_reloads_what_changed_on_its_own(service, second):
    """Only PostgreSQL tells one process of another's commits (LISTEN/NOTIFY):
    the other replica reloads the new campaign with no request of its own."""
    await join(service)
    await second.start()
    await second.store.listening.wait()
    await launch(service, "flash", fixed(10, budget_points=100))
    target = service.campaigns.transitions.catalog_position
    followed = second.transitions.followed

    async def reloaded() -> None:
        while True:
            version = followed.version
            if second.transitions.catalog_position >= target:
                return
            await followed.wait_past(version)

    await asyncio.wait_for(reloaded(), deadlines.DEADLINE_SECONDS)
    outcome = (await second.tracking.track(purchase(500, activity_id="a-1"))).outcome
    assert points_of(outcome, "flash") == 10


async def test_the_catalog_feed_names_only_the_campaigns_changed_since_a_number(service):
    management = service.campaigns.management
    for n in range(5):
        await management.create(f"c-{n}", fixed(5))
    position = service.campaigns.transitions.catalog_position
    await management.update("c-3", lambda spec: fixed(6), 0)
    changed, now = await service.campaigns.store.read(lambda unit: unit.catalog_changes(position))
    assert [(c.campaign_id, c.version) for c in changed] == [("c-3", 2)]
    assert now == position + 1 == service.campaigns.transitions.catalog_position


async def test_two_replicas_racing_to_create_one_campaign_give_sqlites_answers(service, second):
    await second.start()
    replicas = (service.campaigns, second)
    ids = [f"c-{n}" for n in range(8)]
    # The same spec from both: one creates it, the other is answered with it.
    same = await asyncio.gather(
        *(replica.management.create(id_, fixed(5)) for id_ in ids for replica in replicas)
    )
    assert all(view.campaign.version == 1 for view in same)
    # Two specs for one id: one is created, the other refused.
    raced = await asyncio.gather(
        *(
            replica.management.create(f"d-{n}", fixed(points))
            for n in range(8)
            for replica, points in zip(replicas, (5, 6), strict=True)
        ),
        return_exceptions=True,
    )
    for pair in zip(raced[::2], raced[1::2], strict=True):
        refused = [r for r in pair if isinstance(r, AlreadyExists)]
        assert [r.reason for r in refused] == ["CAMPAIGN_EXISTS"], pair
    stored = await second.store.read(lambda unit: unit.campaigns())
    assert len(stored) == 16
    assert all(campaign.version == 1 for campaign in stored)


async def test_two_replicas_racing_to_create_one_member_create_it_once(service, second):
    await second.start()
    replicas = (service.campaigns, second)
    profiles = [member(f"m-{n}") for n in range(8)]
    upserted = await asyncio.gather(
        *(
            replica.members.upsert(profile.member_id, lambda _current, p=profile: p)
            for profile in profiles
            for replica in replicas
        )
    )
    created = [u.member.member_id for u in upserted if u.created]
    assert sorted(created) == sorted(p.member_id for p in profiles)


async def test_the_database_refuses_an_overspent_budget_and_an_edited_feed(service):
    await join(service)
    await launch(service, "base", base_rule())
    await launch(service, "bonus", fixed(10, budget_points=50))
    await track(service, purchase(500, activity_id="a-1"))
    db = service.settings.db_path
    for statement in (
        "UPDATE campaigns SET budget_used = budget_funded + 1 WHERE campaign_id = 'bonus'",
        "UPDATE campaigns SET budget_used = -1 WHERE campaign_id = 'bonus'",
        "UPDATE activity_feed SET points = 0",
        "DELETE FROM activity_feed",
    ):
        with pytest.raises(Exception, match=r"below.zero|append-only"):
            execute(db, statement)
    assert stored_rows(
        db, "SELECT budget_funded, budget_used FROM campaigns WHERE campaign_id = 'bonus'"
    ) == [(50, 10)]
    assert stored_rows(db, "SELECT activity_id, points FROM activity_feed") == [("a-1", 15)]


def execute(db: str, sql: str) -> None:
    """A statement straight to the database, past the service's code."""
    if is_postgres(db):
        with psycopg.connect(db) as connection:
            connection.execute(sql)
        return
    with closing(sqlite3.connect(db)) as connection, connection:
        connection.execute(sql)
