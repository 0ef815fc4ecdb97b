"""The campaigns store: a database the previous code made (schema version 2)
upgrades and keeps working, including what that code could leave half done."""

from __future__ import annotations

import zlib

from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from services.campaigns import ledger
from services.campaigns.codec import to_json
from services.campaigns.domain.evaluation import Decision, Leg
from services.campaigns.domain.model import Pause, Refund
from services.campaigns.domain.outcome import Outcome
from services.campaigns.domain.refund import AwardedLeg, ClawbackLeg, ClawbackPlan
from services.campaigns.refunds import NOTHING
from services.campaigns.server import CampaignsSettings, assemble
from services.campaigns.store import (
    ACTIVITY_AWARD,
    BUDGET_FUNDING,
    CLAWBACK,
    MIGRATIONS,
    SqliteCampaignsStore,
)
from services.kit.clock import ManualClock
from services.kit.ledger_accounts import PROGRAM_ISSUANCE, points_wallet
from services.kit.sqlite import connect, migrate
from tests.support.campaign_specs import activity, base_rule, fixed, member, purchase
from tests.support.fake_ledger import FakeLedger

PAUSED_US = 1_767_000_000_000_000
EXPIRES_US = 1_800_000_000_000_000
# What the previous code stored, as it stored it: its schema is MIGRATIONS[:2].
OLD_CODE_SCHEMA = MIGRATIONS[:2]


def old_database(path) -> ledger_pb.PostTransfersRequest:
    """The previous code's file after a crash between its two commits: the award
    chain of activity a-1 was posted and its outbox entry marked settled, but the
    activity was never marked settled; so was the funding of `bonus`. Also a refund
    still pending, and `bonus` paused. Returns the award chain the ledger committed."""
    db = connect(path)
    migrate(db, OLD_CODE_SCHEMA)
    order = purchase(1234, activity_id="a-1")
    refund = activity("refund", activity_id="r-1", refund=Refund("a-1", 617))
    half = ClawbackPlan(
        (ClawbackLeg(AwardedLeg("base", "activity:a-1:base", "m-1", "base", 12, 0), 6, 0),)
    )
    legs = (Leg("base", "base", "m-1", 12, "program:issuance"),)
    chain = ledger.award_chain("a-1", legs, EXPIRES_US)
    funding = ledger.funding_transfer("campaign:bonus:funding:v1", "bonus", 500)
    decision = Decision(12, "base", (), (), legs[0], 1)
    outcome = Outcome("a-1", decision, ("activity:a-1:base",), EXPIRES_US)
    login = activity("app_login", activity_id="z-0", attributes=(("device", "ios"),))
    rows = [
        (
            "INSERT INTO members VALUES (?, ?, 0, 0)",
            ("m-1", to_json(member())),
        ),
        (
            "INSERT INTO activities (activity_id, member_id, type, occur_us, content, outcome,"
            " state, create_us) VALUES (?, ?, ?, ?, ?, ?, 'settled', 0)",
            (
                "z-0",
                "m-1",
                "app_login",
                login.occur_us,
                to_json(login),
                zlib.compress(to_json(Outcome("z-0", NOTHING, ())).encode()),
            ),
        ),
        (
            "INSERT INTO campaigns (campaign_id, version, spec, status, create_us, update_us)"
            " VALUES (?, 1, ?, ?, 0, ?)",
            ("base", to_json(base_rule()), "SCHEDULED", 0),
        ),
        (
            "INSERT INTO campaigns (campaign_id, version, spec, status, create_us, update_us)"
            " VALUES (?, 1, ?, ?, 0, ?)",
            ("bonus", to_json(fixed(10, budget_points=500)), "PAUSED", PAUSED_US),
        ),
        *settled_purchase_and_refund(order.occur_us),
        ("INSERT INTO clawbacks VALUES ('r-1', 'a-1', 'base', 'base', 0, 6, 0)", ()),
        (
            "INSERT INTO award_legs (activity_id, leg_key, transfer_id, campaign_id,"
            " campaign_version, beneficiary, points, is_bonus, new_member, occur_us, local_day)"
            " VALUES (?, 'base', ?, 'base', 1, 'm-1', 12, 0, 0, ?, '2026-03-07')",
            ("a-1", "activity:a-1:base", order.occur_us),
        ),
        (
            "INSERT INTO fundings (transfer_id, campaign_id, amount) VALUES (?, ?, ?)",
            ("campaign:bonus:funding:v1", "bonus", 500),
        ),
        (
            "INSERT INTO activities (activity_id, member_id, type, occur_us, content, outcome,"
            " state, entry_id, amount_minor, create_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            (
                "a-1",
                "m-1",
                "purchase",
                order.occur_us,
                to_json(order),
                zlib.compress(to_json(outcome).encode()),
                "pending",
                "activity:a-1:1",
                1234,
            ),
        ),
        (
            "INSERT INTO activities (activity_id, member_id, type, occur_us, content, outcome,"
            " state, entry_id, create_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)",
            (
                "r-1",
                "m-1",
                "refund",
                order.occur_us,
                to_json(refund),
                zlib.compress(to_json(Outcome("r-1", NOTHING, ())).encode()),
                "pending",
                "activity:r-1:2",
            ),
        ),
    ]
    for entry_id, request, state in (
        ("activity:a-1:1", chain, "settled"),
        ("activity:r-1:1", ledger_pb.PostTransfersRequest(), "settled"),
        ("activity:r-1:2", ledger.clawback_chain("r-1", half), "pending"),
        ("funding:bonus:v1", funding, "settled"),
    ):
        rows.append(
            (
                "INSERT INTO ledger_outbox (entry_id, request, state, created_at)"
                " VALUES (?, ?, ?, 0)",
                (entry_id, request.SerializeToString(), state),
            )
        )
    with db:
        for sql, values in rows:
            db.execute(sql, values)
    db.close()
    return chain


def settled_purchase_and_refund(occur_us: int) -> list[tuple[str, tuple]]:
    """Rows of a purchase p-0 that earned 7 points and a refund x-0 that took 3 back."""
    bought = purchase(700, activity_id="p-0")
    refund = activity("refund", activity_id="x-0", refund=Refund("p-0", 300))
    empty = zlib.compress(to_json(Outcome("-", NOTHING, ())).encode())
    insert = (
        "INSERT INTO activities (activity_id, member_id, type, occur_us, content, outcome,"
        " state, create_us) VALUES (?, 'm-1', ?, ?, ?, ?, 'settled', ?)"
    )
    return [
        (insert, ("p-0", "purchase", occur_us, to_json(bought), empty, 1)),
        (insert, ("x-0", "refund", occur_us, to_json(refund), empty, 2)),
        (
            "INSERT INTO award_legs (activity_id, leg_key, transfer_id, campaign_id,"
            " campaign_version, beneficiary, points, is_bonus, new_member, occur_us, local_day,"
            " accounted) VALUES ('p-0', 'base', 'activity:p-0:base', 'base', 1, 'm-1', 7, 0, 0,"
            " ?, '2026-03-07', 3)",
            (occur_us,),
        ),
        (
            "INSERT INTO clawbacks VALUES ('x-0', 'p-0', 'base', 'base', 0, 3, 0)",
            (),
        ),
    ]


async def test_the_previous_codes_database_upgrades_in_place(tmp_path):
    path = tmp_path / "campaigns.db"
    old_database(path)
    store = SqliteCampaignsStore(path)
    await store.open()
    try:

        def read(unit):
            entries = {
                entry_id: unit.outbox.entry(entry_id)
                for entry_id in ("activity:a-1:1", "activity:r-1:2", "funding:bonus:v1")
            }
            return entries, unit.campaign("bonus"), unit.outbox.backlog().pending

        entries, paused, pending = await store.read(read)
        # Each entry has its kind; the two the old code closed but never applied are
        # pending again, so recovery applies them.
        assert {entry_id: entry.kind for entry_id, entry in entries.items()} == {
            "activity:a-1:1": ACTIVITY_AWARD,
            "activity:r-1:2": CLAWBACK,
            "funding:bonus:v1": BUDGET_FUNDING,
        }
        assert pending == 3
        # A paused campaign's pause began when it was last changed.
        assert paused.pauses == (Pause(PAUSED_US),)
        # Attempts continue the old numbering: the next entry ids are new.
        assert await store.write(lambda unit: unit.next_attempt("a-1")) == 2
        assert await store.write(lambda unit: unit.next_attempt("r-1")) == 3
    finally:
        await store.close()


async def test_recovery_finishes_what_the_previous_code_left_half_done(tmp_path):
    path = tmp_path / "campaigns.db"
    chain = old_database(path)
    fake = FakeLedger()
    for account in (PROGRAM_ISSUANCE, points_wallet("m-1")):
        await fake.OpenAccount(ledger_pb.OpenAccountRequest(account=account))
    await fake.OpenAccount(
        ledger_pb.OpenAccountRequest(account=ledger_pb.Account(id="campaign:bonus:budget"))
    )
    # The ledger committed the award and the funding before the crash.
    await fake.PostTransfers(chain)
    await fake.PostTransfers(ledger.funding_transfer("campaign:bonus:funding:v1", "bonus", 500))
    campaigns = assemble(CampaignsSettings(db_path=path), fake, ManualClock())
    await campaigns.start()
    try:
        record = await campaigns.store.read(lambda unit: unit.activity("a-1"))
        assert record.settled and record.outcome.balance == 12
        bonus = (await campaigns.management.get("bonus")).campaign
        assert bonus.budget_funded == 500
        refund = await campaigns.store.read(lambda unit: unit.activity("r-1"))
        assert refund.settled
        # The feed starts with what was settled before it existed, then what recovery settled.
        events = await campaigns.store.read(lambda unit: unit.events_after(0, 10))
        assert [(e.sequence, e.activity.activity_id, e.points) for e in events] == [
            (1, "z-0", 0),
            (2, "p-0", 7),
            (3, "x-0", -3),
            (4, "a-1", 12),
            (5, "r-1", -6),
        ]
        assert events[0].activity.attributes == (("device", "ios"),)
        assert events[2].activity.refund.purchase_activity_id == "p-0"
        assert [(c.member_id, c.points) for c in events[3].credits] == [("m-1", 12)]
        assert fake.balance("m-1") == 12 - 6 and fake.balance("campaign:bonus:budget") == 500
    finally:
        await campaigns.stop()
