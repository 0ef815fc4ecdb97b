"""SQL for the campaigns service, and nothing else.

Everything runs as a unit of work: `store.write(work)` hands `work` a
CampaignsUnit inside one savepoint of the kit's group commit, so a use case
reads, decides and writes in one transaction; `store.read(work)` hands it the
same unit on a read-only connection, a consistent snapshot that never waits
behind the writer. On PostgreSQL (pg_store.py) the same SQL runs, with the row
locks many replicas need.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol, Unpack

from services.campaigns.codec import from_json, to_json
from services.campaigns.domain.evaluation import BASE_LEG, Decision, Leg, Usage, UsageQuery
from services.campaigns.domain.model import (
    PURCHASE,
    Activity,
    Campaign,
    CampaignSpec,
    CampaignState,
    CampaignStatus,
    Member,
    Pause,
    RefusalReason,
    Standing,
)
from services.campaigns.domain.outcome import Outcome
from services.campaigns.domain.records import (
    ActivityEvent,
    ActivityRecord,
    Awaiting,
    BudgetFigures,
    CampaignFigures,
    DayFigures,
    MemberPoints,
    PurchaseLegs,
    RefusalTally,
    StateChange,
    Transition,
)
from services.campaigns.domain.refund import AwardedLeg, ClawbackPlan
from services.kit.cursors import CURSORS_MIGRATION, read_cursor, write_cursor
from services.kit.feed_sequences import (
    FEED_SEQUENCES_MIGRATION,
    feed_counter_migration,
    take_sequences,
)
from services.kit.outbox import OUTBOX_KINDS_MIGRATION, OUTBOX_MIGRATION, OutboxUnit, SqliteOutbox
from services.kit.sqlite import SqliteStore, StoreOptions
from services.kit.stores import UnitStore

# The kinds of this service's outbox entries, one handler each (settlement.py).
ACTIVITY_AWARD = "activity_award"
CLAWBACK = "clawback"
BUDGET_FUNDING = "budget_funding"

SCHEMA = """
CREATE TABLE members (
  member_id TEXT PRIMARY KEY,
  profile TEXT NOT NULL,
  create_us INTEGER NOT NULL,
  update_us INTEGER NOT NULL
);
CREATE TABLE campaigns (
  campaign_id TEXT PRIMARY KEY,
  version INTEGER NOT NULL,
  spec TEXT NOT NULL,
  status TEXT NOT NULL,
  create_us INTEGER NOT NULL,
  update_us INTEGER NOT NULL,
  budget_funded INTEGER NOT NULL DEFAULT 0,
  budget_used INTEGER NOT NULL DEFAULT 0,
  members_rewarded INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE campaign_versions (
  campaign_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  spec TEXT NOT NULL,
  create_us INTEGER NOT NULL,
  PRIMARY KEY (campaign_id, version)
);
CREATE TABLE fundings (
  transfer_id TEXT PRIMARY KEY,
  campaign_id TEXT NOT NULL,
  amount INTEGER NOT NULL,
  settled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE activities (
  activity_id TEXT PRIMARY KEY,
  member_id TEXT NOT NULL,
  type TEXT NOT NULL,
  occur_us INTEGER NOT NULL,
  content TEXT NOT NULL,
  outcome BLOB NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'settled')),
  entry_id TEXT,
  balance INTEGER NOT NULL DEFAULT 0,
  amount_minor INTEGER NOT NULL DEFAULT 0,
  refunded_minor INTEGER NOT NULL DEFAULT 0,
  create_us INTEGER NOT NULL
);
CREATE INDEX activities_member_type ON activities (member_id, type);
CREATE TABLE award_legs (
  activity_id TEXT NOT NULL,
  leg_key TEXT NOT NULL,
  transfer_id TEXT NOT NULL,
  campaign_id TEXT NOT NULL,
  campaign_version INTEGER NOT NULL,
  beneficiary TEXT NOT NULL,
  points INTEGER NOT NULL,
  is_bonus INTEGER NOT NULL,
  new_member INTEGER NOT NULL,
  occur_us INTEGER NOT NULL,
  local_day TEXT NOT NULL,
  accounted INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (activity_id, leg_key)
);
CREATE INDEX award_legs_usage ON award_legs (campaign_id, beneficiary, occur_us);
CREATE TABLE campaign_members (
  campaign_id TEXT NOT NULL,
  member_id TEXT NOT NULL,
  PRIMARY KEY (campaign_id, member_id)
);
CREATE TABLE grants (
  campaign_id TEXT NOT NULL,
  member_id TEXT NOT NULL,
  grant_key TEXT NOT NULL,
  activity_id TEXT NOT NULL,
  PRIMARY KEY (campaign_id, member_id, grant_key)
);
CREATE TABLE refusal_counts (
  campaign_id TEXT NOT NULL,
  local_day TEXT NOT NULL,
  reason TEXT NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (campaign_id, local_day, reason)
) WITHOUT ROWID;
CREATE TABLE clawbacks (
  refund_activity_id TEXT NOT NULL,
  purchase_activity_id TEXT NOT NULL,
  leg_key TEXT NOT NULL,
  campaign_id TEXT NOT NULL,
  is_bonus INTEGER NOT NULL,
  reversed INTEGER NOT NULL,
  unrecovered INTEGER NOT NULL,
  PRIMARY KEY (refund_activity_id, leg_key)
);
CREATE TABLE announced_states (
  campaign_id TEXT PRIMARY KEY,
  state TEXT NOT NULL
);
CREATE TABLE transitions (
  sequence INTEGER PRIMARY KEY,
  campaign_id TEXT NOT NULL,
  from_state TEXT NOT NULL,
  to_state TEXT NOT NULL,
  effect_us INTEGER NOT NULL
);
CREATE TABLE scan_progress (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  scanned_us INTEGER NOT NULL
);
"""

# After the kit's kinds: this service's older entries get theirs, a closed entry
# whose meaning the old code never applied is pending again, attempts are
# counted per activity, and pauses are kept.
KINDS_ATTEMPTS_AND_PAUSES = f"""
UPDATE ledger_outbox SET kind = CASE
  WHEN entry_id LIKE 'funding:%' THEN '{BUDGET_FUNDING}'
  WHEN EXISTS (
    SELECT 1 FROM activities
    WHERE activities.entry_id = ledger_outbox.entry_id AND activities.type = 'refund'
  ) THEN '{CLAWBACK}'
  ELSE '{ACTIVITY_AWARD}'
END;
UPDATE ledger_outbox SET state = 'pending', settled_at = NULL, response = NULL, error = NULL
WHERE state != 'pending' AND (
  entry_id IN (SELECT entry_id FROM activities WHERE state = 'pending')
  OR entry_id IN (
    SELECT 'funding:' || campaign_id || ':v'
      || substr(transfer_id, length('campaign:' || campaign_id || ':funding:v') + 1)
    FROM fundings WHERE settled = 0
  )
);
CREATE TABLE activity_attempts (
  activity_id TEXT PRIMARY KEY,
  attempts INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO activity_attempts (activity_id, attempts)
SELECT substr(entry_id, 10, instr(substr(entry_id, 10), ':') - 1), COUNT(*)
FROM ledger_outbox WHERE entry_id LIKE 'activity:%' GROUP BY 1;
ALTER TABLE campaigns ADD COLUMN pauses TEXT NOT NULL DEFAULT '[]';
UPDATE campaigns SET pauses = json_array(json_object('start_us', update_us, 'end_us', NULL))
WHERE status = 'PAUSED';
"""

# The WatchActivities feed: one row per settled activity (the activity itself stays
# in `activities`), its sequence assigned by the transaction that settles it, so
# sequences are gapless and in commit order. Activities settled before the feed
# existed come first, in the order recorded, with the credits record_event gives
# (written out here: a migration never changes) and their recording time.
ACTIVITY_FEED = """
CREATE TABLE activity_feed (
  sequence INTEGER PRIMARY KEY,
  activity_id TEXT NOT NULL UNIQUE,
  points INTEGER NOT NULL,
  credits TEXT NOT NULL,
  time_zone TEXT NOT NULL,
  record_us INTEGER NOT NULL
);
CREATE TRIGGER activity_feed_is_append_only BEFORE UPDATE ON activity_feed
BEGIN
  SELECT RAISE(ABORT, 'the activity feed is append-only');
END;
CREATE TRIGGER activity_feed_is_never_deleted BEFORE DELETE ON activity_feed
BEGIN
  SELECT RAISE(ABORT, 'the activity feed is append-only');
END;
CREATE TEMP VIEW old_credits AS
SELECT activity_id, beneficiary, SUM(points) AS points FROM (
  SELECT activity_id, beneficiary, points FROM award_legs
  UNION ALL
  SELECT clawbacks.refund_activity_id, award_legs.beneficiary, -clawbacks.reversed
  FROM clawbacks JOIN award_legs
    ON award_legs.activity_id = clawbacks.purchase_activity_id
   AND award_legs.leg_key = clawbacks.leg_key
  WHERE clawbacks.reversed > 0
) GROUP BY activity_id, beneficiary;
INSERT INTO activity_feed (activity_id, points, credits, time_zone, record_us)
SELECT activity_id,
  COALESCE((SELECT points FROM old_credits AS c
            WHERE c.activity_id = a.activity_id AND c.beneficiary = a.member_id), 0),
  (SELECT json_group_array(json_array(beneficiary, points)) FROM (
     SELECT beneficiary, points FROM old_credits AS c
     WHERE c.activity_id = a.activity_id ORDER BY beneficiary)),
  COALESCE((SELECT json_extract(profile, '$.time_zone') FROM members
            WHERE members.member_id = a.member_id), ''),
  create_us
FROM activities AS a WHERE state = 'settled' ORDER BY create_us, rowid;
DROP VIEW old_credits;
"""

# Each member's computed tier per program, from progress' WatchTierChanges, and
# the cursor of that feed (moved in the transaction that applies it).
STANDINGS = f"""
CREATE TABLE standings (
  member_id TEXT NOT NULL,
  program_id TEXT NOT NULL,
  tier_id TEXT NOT NULL,
  tier_ids TEXT NOT NULL,
  PRIMARY KEY (member_id, program_id)
) WITHOUT ROWID;
{CURSORS_MIGRATION}
"""

# The database refuses an award its budget cannot pay, whatever the code decided
# (PostgreSQL: a CHECK in pg_store.py).
BUDGET_FLOOR = """
CREATE TRIGGER campaigns_budget_never_below_zero
BEFORE UPDATE OF budget_funded, budget_used ON campaigns
WHEN NEW.budget_used > NEW.budget_funded OR NEW.budget_used < 0
BEGIN
  SELECT RAISE(ABORT, 'a campaign budget never goes below zero');
END;
"""

# The feeds' numbers come from the kit's counters, going on from the last given.
ACTIVITY_FEED_NAME = "activities"
TRANSITIONS_FEED = "transitions"
FEED_COUNTERS = (
    FEED_SEQUENCES_MIGRATION
    + feed_counter_migration(ACTIVITY_FEED_NAME, "activity_feed", "sequence")
    + feed_counter_migration(TRANSITIONS_FEED, "transitions", "sequence")
)

# The catalog feed: every write that changes a campaign's definition, status,
# pauses or funding stamps its row with the feed's next number (before_commit),
# so each replica reloads only the campaigns stamped past what it has read
# (transitions.py follow_catalog). One engine-neutral migration.
CATALOG_FEED = "catalog"
CATALOG_SEQUENCES = """
ALTER TABLE campaigns ADD COLUMN catalog_sequence BIGINT NOT NULL DEFAULT 0;
CREATE INDEX campaigns_catalog_sequence ON campaigns (catalog_sequence);
""" + feed_counter_migration(CATALOG_FEED, "campaigns", "catalog_sequence")

MIGRATIONS = (
    SCHEMA,
    OUTBOX_MIGRATION,
    OUTBOX_KINDS_MIGRATION,
    KINDS_ATTEMPTS_AND_PAUSES,
    ACTIVITY_FEED,
    STANDINGS,
    BUDGET_FLOOR,
    FEED_COUNTERS,
    CATALOG_SEQUENCES,
)

# campaign id -> the activity's local date in that campaign's zone (ISO).
LocalDays = Mapping[str, str]


class CampaignsUnit(Protocol):
    """What the campaigns use cases need from storage, inside one transaction."""

    outbox: OutboxUnit

    # Members.
    def member(self, member_id: str) -> Member | None: ...
    def insert_member(self, member: Member) -> None: ...
    def put_member(self, member: Member) -> None: ...
    def standings(self, member_id: str) -> tuple[Standing, ...]: ...
    def put_standing(self, standing: Standing) -> None: ...
    def cursor(self, feed: str) -> int: ...
    def set_cursor(self, feed: str, sequence: int) -> None: ...

    # Campaigns and their budgets.
    def campaign(self, campaign_id: str) -> Campaign | None: ...
    def campaigns(self, after_id: str = "") -> list[Campaign]: ...
    def catalog_position(self) -> int: ...
    def catalog_changes(self, after: int) -> tuple[list[Campaign], int]: ...
    def insert_campaign(self, campaign: Campaign) -> None: ...
    def put_campaign(self, campaign: Campaign) -> None: ...
    def funding_intended(self, campaign_id: str) -> int: ...
    def add_funding(self, transfer_id: str, campaign_id: str, amount: int) -> None: ...
    def settle_funding(self, transfer_id: str) -> str | None: ...
    def drop_funding(self, transfer_id: str) -> None: ...
    def budgets(self, campaign_ids: Iterable[str]) -> dict[str, BudgetFigures]: ...
    def open_budgets(self) -> dict[str, BudgetFigures]: ...

    # Activities, awards and clawbacks.
    def activity(self, activity_id: str) -> ActivityRecord | None: ...
    def awaiting(self, activity_id: str, entry_id: str) -> Awaiting | None: ...
    def has_purchase(self, member_id: str) -> bool: ...
    def usages(self, queries: Sequence[UsageQuery]) -> dict[str, Usage]: ...
    def next_attempt(self, activity_id: str) -> int: ...
    def insert_activity(
        self, activity: Activity, outcome: Outcome, entry_id: str | None, now_us: int
    ) -> None: ...
    def record_award(
        self, activity: Activity, decision: Decision, days: LocalDays
    ) -> dict[str, BudgetFigures]: ...
    def purchase_legs(self, purchase_activity_id: str) -> PurchaseLegs | None: ...
    def record_clawback(self, refund: Activity, plan: ClawbackPlan) -> None: ...
    def settle_activity(self, activity_id: str, balance: int) -> None: ...
    def set_balance(self, activity_id: str, balance: int) -> None: ...
    def discard_activity(self, record: ActivityRecord, days: LocalDays) -> None: ...

    # The activity feed.
    def record_event(self, activity_id: str, now_us: int) -> None: ...
    def events_after(self, sequence: int, limit: int) -> list[ActivityEvent]: ...

    # Transitions.
    def announced_states(self) -> dict[str, CampaignState]: ...
    def append_transitions(
        self, changes: Sequence[StateChange], scanned_us: int | None
    ) -> None: ...
    def scanned_us(self) -> int | None: ...
    def transitions_after(self, sequence: int, limit: int) -> list[Transition]: ...

    # Statistics.
    def figures(self, campaign_id: str) -> CampaignFigures: ...


CAMPAIGN_COLUMNS = (
    "campaign_id, version, spec, status, create_us, update_us, budget_funded, budget_used, pauses"
)
ACTIVITY_COLUMNS = "content, outcome, state, entry_id, balance"


def _campaign(row) -> Campaign:
    campaign_id, version, spec, status, create_us, update_us, funded, used, pauses = row
    return Campaign(
        campaign_id=campaign_id,
        version=version,
        spec=from_json(CampaignSpec, spec),
        status=CampaignStatus(status),
        create_us=create_us,
        update_us=update_us,
        budget_funded=funded,
        budget_used=used,
        pauses=from_json(tuple[Pause, ...], pauses) if pauses != "[]" else (),
    )


def _profile(member: Member) -> str:
    return to_json(replace(member, standings=()))


def _pack(value) -> bytes:
    """JSON, deflated: a breakdown lists every matching campaign and repeats itself
    (8.7 kB for 50 campaigns becomes 1.1 kB), so rows stay on one page."""
    return zlib.compress(to_json(value).encode(), 1)


def _unpack(cls, blob: bytes):
    return from_json(cls, zlib.decompress(blob).decode())


def _activity_record(row) -> ActivityRecord:
    content, outcome, state, entry_id, balance = row
    return ActivityRecord(
        activity=from_json(Activity, content),
        outcome=replace(_unpack(Outcome, outcome), balance=balance),
        settled=state == "settled",
        entry_id=entry_id,
    )


def _leg_row(
    activity: Activity, leg: Leg, version: int, is_bonus: int, new_member: int, days: LocalDays
) -> tuple:
    """An award_legs row, in the order of record_award's columns."""
    return (
        activity.activity_id,
        leg.leg_key,
        leg.transfer_id(activity.activity_id),
        leg.campaign_id,
        version,
        leg.beneficiary,
        leg.points,
        is_bonus,
        new_member,
        activity.occur_us,
        days[leg.campaign_id],
    )


class SqliteCampaignsUnit:
    """CampaignsUnit over one SQLite connection, inside the caller's transaction."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self.outbox = SqliteOutbox(connection)
        # Feed rows this write appends, numbered and inserted by before_commit.
        self._events: list[tuple[str, int]] = []
        self._transitions: list[StateChange] = []
        # Campaigns this write changed, stamped by before_commit.
        self._changed_campaigns: set[str] = set()

    # Members.

    def member(self, member_id: str) -> Member | None:
        row = self._db.execute(
            "SELECT profile FROM members WHERE member_id = ?", (member_id,)
        ).fetchone()
        if row is None:
            return None
        return replace(from_json(Member, row[0]), standings=self.standings(member_id))

    def insert_member(self, member: Member) -> None:
        """A new member: a plain INSERT, so two replicas creating one member at once
        conflict on its key and the second runs again, finding the first's row."""
        self._db.execute(
            "INSERT INTO members (member_id, profile, create_us, update_us) VALUES (?, ?, ?, ?)",
            (member.member_id, _profile(member), member.create_us, member.update_us),
        )

    def put_member(self, member: Member) -> None:
        """An existing member's new profile."""
        self._db.execute(
            "UPDATE members SET profile = ?, update_us = ? WHERE member_id = ?",
            (_profile(member), member.update_us, member.member_id),
        )

    def standings(self, member_id: str) -> tuple[Standing, ...]:
        rows = self._db.execute(
            "SELECT program_id, tier_id, tier_ids FROM standings WHERE member_id = ?"
            " ORDER BY program_id",
            (member_id,),
        )
        return tuple(
            Standing(member_id, program, tier, tuple(json.loads(tier_ids)))
            for program, tier, tier_ids in rows
        )

    def put_standing(self, standing: Standing) -> None:
        """The member's tier in the program now (an empty tier: none)."""
        if not standing.tier_id:
            self._db.execute(
                "DELETE FROM standings WHERE member_id = ? AND program_id = ?",
                (standing.member_id, standing.program_id),
            )
            return
        self._db.execute(
            "INSERT INTO standings (member_id, program_id, tier_id, tier_ids) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (member_id, program_id) DO UPDATE SET tier_id = excluded.tier_id,"
            " tier_ids = excluded.tier_ids",
            (
                standing.member_id,
                standing.program_id,
                standing.tier_id,
                json.dumps(standing.tier_ids),
            ),
        )

    # Feeds this service follows.

    def cursor(self, feed: str) -> int:
        return read_cursor(self._db, feed)

    def set_cursor(self, feed: str, sequence: int) -> None:
        write_cursor(self._db, feed, sequence)

    # Campaigns.

    def campaign(self, campaign_id: str) -> Campaign | None:
        row = self._db.execute(
            f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE campaign_id = ?", (campaign_id,)
        ).fetchone()
        return _campaign(row) if row else None

    def campaigns(self, after_id: str = "") -> list[Campaign]:
        """Every campaign with an id after `after_id`, in id order."""
        return [
            _campaign(row)
            for row in self._db.execute(
                f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE campaign_id > ?"
                " ORDER BY campaign_id",
                (after_id,),
            )
        ]

    def catalog_position(self) -> int:
        """The catalog feed's last number: past what a replica has read, some
        campaign changed since."""
        return self._db.execute(
            "SELECT last FROM feed_sequences WHERE feed = ?", (CATALOG_FEED,)
        ).fetchone()[0]

    def catalog_changes(self, after: int) -> tuple[list[Campaign], int]:
        """The campaigns changed since the catalog feed's number `after`, and the
        feed's number now (one snapshot: every change up to it is among them)."""
        changed = [
            _campaign(row)
            for row in self._db.execute(
                # No ORDER BY: SQLite would then scan every campaign in id order
                # rather than search the index for the few changed.
                f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE catalog_sequence > ?",
                (after,),
            )
        ]
        return changed, self.catalog_position()

    def insert_campaign(self, campaign: Campaign) -> None:
        """A new campaign: a plain INSERT, so two replicas creating one id at once
        conflict on its key and the second runs again, finding the first's row."""
        self._db.execute(
            "INSERT INTO campaigns (campaign_id, version, spec, status, create_us, update_us)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                campaign.campaign_id,
                campaign.version,
                to_json(campaign.spec),
                campaign.status.value,
                campaign.create_us,
                campaign.update_us,
            ),
        )
        self._put_version(campaign)

    def put_campaign(self, campaign: Campaign) -> None:
        """An existing campaign's definition, status and pauses; budgets change
        only by awards and fundings."""
        self._db.execute(
            "UPDATE campaigns SET version = ?, spec = ?, status = ?, update_us = ?, pauses = ?"
            " WHERE campaign_id = ?",
            (
                campaign.version,
                to_json(campaign.spec),
                campaign.status.value,
                campaign.update_us,
                to_json(campaign.pauses) if campaign.pauses else "[]",
                campaign.campaign_id,
            ),
        )
        self._put_version(campaign)

    def _put_version(self, campaign: Campaign) -> None:
        self._db.execute(
            "INSERT INTO campaign_versions (campaign_id, version, spec, create_us)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (campaign.campaign_id, campaign.version, to_json(campaign.spec), campaign.update_us),
        )
        self._changed_campaigns.add(campaign.campaign_id)

    def funding_intended(self, campaign_id: str) -> int:
        return self._db.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM fundings WHERE campaign_id = ?", (campaign_id,)
        ).fetchone()[0]

    def add_funding(self, transfer_id: str, campaign_id: str, amount: int) -> None:
        self._db.execute(
            "INSERT INTO fundings (transfer_id, campaign_id, amount) VALUES (?, ?, ?)",
            (transfer_id, campaign_id, amount),
        )

    def settle_funding(self, transfer_id: str) -> str | None:
        """Count a posted funding in the budget, once; returns its campaign id."""
        row = self._db.execute(
            "UPDATE fundings SET settled = 1 WHERE transfer_id = ? AND settled = 0"
            " RETURNING campaign_id, amount",
            (transfer_id,),
        ).fetchone()
        if row is None:
            return None
        self._db.execute(
            "UPDATE campaigns SET budget_funded = budget_funded + ? WHERE campaign_id = ?",
            (row[1], row[0]),
        )
        self._changed_campaigns.add(row[0])
        return row[0]

    def drop_funding(self, transfer_id: str) -> None:
        """Forget a funding the ledger refused, so the next one intends it again."""
        self._db.execute(
            "DELETE FROM fundings WHERE transfer_id = ? AND settled = 0", (transfer_id,)
        )

    def open_budgets(self) -> dict[str, BudgetFigures]:
        """Every campaign's budget but the cancelled and archived ones'."""
        return {
            campaign_id: BudgetFigures(funded, used)
            for campaign_id, funded, used in self._db.execute(
                "SELECT campaign_id, budget_funded, budget_used FROM campaigns"
                " WHERE status NOT IN ('CANCELLED', 'ARCHIVED')"
            )
        }

    def budgets(self, campaign_ids: Iterable[str]) -> dict[str, BudgetFigures]:
        ids = list(dict.fromkeys(campaign_ids))
        if not ids:
            return {}
        return {
            campaign_id: BudgetFigures(funded, used)
            for campaign_id, funded, used in self._db.execute(
                "SELECT campaign_id, budget_funded, budget_used FROM campaigns"
                f" WHERE campaign_id IN ({','.join('?' * len(ids))})",
                ids,
            )
        }

    # Activities and awards.

    def activity(self, activity_id: str) -> ActivityRecord | None:
        row = self._db.execute(
            f"SELECT {ACTIVITY_COLUMNS} FROM activities WHERE activity_id = ?", (activity_id,)
        ).fetchone()
        return _activity_record(row) if row else None

    def awaiting(self, activity_id: str, entry_id: str) -> Awaiting | None:
        """The activity if it still waits for this outbox entry to settle."""
        row = self._db.execute(
            "SELECT member_id FROM activities"
            " WHERE activity_id = ? AND entry_id = ? AND state = 'pending'",
            (activity_id, entry_id),
        ).fetchone()
        return Awaiting(activity_id, row[0]) if row else None

    def has_purchase(self, member_id: str) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM activities WHERE member_id = ? AND type = ? LIMIT 1",
                (member_id, PURCHASE),
            ).fetchone()
            is not None
        )

    def usages(self, queries: Sequence[UsageQuery]) -> dict[str, Usage]:
        """Budgets, per-member points per period, quotas and grants, each asked only when
        the campaign has such a limit, so evaluation cost follows the candidates."""
        if not queries:
            return {}
        marks = ",".join("?" * len(queries))
        budgets = {
            campaign_id: (funded - used, rewarded)
            for campaign_id, funded, used, rewarded in self._db.execute(
                "SELECT campaign_id, budget_funded, budget_used, members_rewarded FROM campaigns"
                f" WHERE campaign_id IN ({marks})",
                [query.campaign_id for query in queries],
            )
        }
        return {
            query.campaign_id: self._usage(query, *budgets[query.campaign_id]) for query in queries
        }

    def _usage(self, query: UsageQuery, remaining: int, rewarded: int) -> Usage:
        in_period = {
            period: self._db.execute(
                "SELECT COALESCE(SUM(points - accounted), 0) FROM award_legs"
                " WHERE campaign_id = ? AND beneficiary = ? AND occur_us >= ? AND occur_us < ?",
                (query.campaign_id, query.member_id, start, end),
            ).fetchone()[0]
            for period, start, end in query.periods
        }
        before = (
            query.counts_members
            and self._db.execute(
                "SELECT 1 FROM campaign_members WHERE campaign_id = ? AND member_id = ?",
                (query.campaign_id, query.member_id),
            ).fetchone()
        )
        granted = (
            query.grant_key is not None
            and self._db.execute(
                "SELECT 1 FROM grants WHERE campaign_id = ? AND member_id = ? AND grant_key = ?",
                (query.campaign_id, query.member_id, query.grant_key),
            ).fetchone()
        )
        return Usage(
            budget_remaining=remaining,
            points_in_period=in_period,
            member_rewarded_before=bool(before),
            members_rewarded=rewarded,
            already_granted=bool(granted),
        )

    def next_attempt(self, activity_id: str) -> int:
        """Count one more attempt at posting this activity (a chain the ledger refused
        is evaluated again, under a new outbox entry); returns its number."""
        return self._db.execute(
            "INSERT INTO activity_attempts (activity_id, attempts) VALUES (?, 1)"
            " ON CONFLICT (activity_id) DO UPDATE SET attempts = activity_attempts.attempts + 1"
            " RETURNING attempts",
            (activity_id,),
        ).fetchone()[0]

    def insert_activity(
        self, activity: Activity, outcome: Outcome, entry_id: str | None, now_us: int
    ) -> None:
        """Pending until its outbox entry settles; settled at once when it has none."""
        amount = activity.purchase.amount_minor if activity.purchase else 0
        self._db.execute(
            "INSERT INTO activities (activity_id, member_id, type, occur_us, content, outcome,"
            " state, entry_id, amount_minor, create_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                activity.activity_id,
                activity.member_id,
                activity.type,
                activity.occur_us,
                to_json(activity),
                _pack(outcome),
                "pending" if entry_id else "settled",
                entry_id,
                amount,
                now_us,
            ),
        )

    def record_award(
        self, activity: Activity, decision: Decision, days: LocalDays
    ) -> dict[str, BudgetFigures]:
        """The award's legs and what they use of budgets, quotas and grants, one
        statement per kind of row however many campaigns apply; returns the
        budgets of the campaigns applied, after the award."""
        actor = activity.member_id
        applied = decision.applied
        new_members: set[str] = set()
        budgets: dict[str, BudgetFigures] = {}
        if applied:
            new_members = {
                campaign_id
                for (campaign_id,) in self._db.execute(
                    "INSERT INTO campaign_members (campaign_id, member_id) VALUES "
                    + ", ".join(["(?, ?)"] * len(applied))
                    + " ON CONFLICT DO NOTHING RETURNING campaign_id",
                    [value for a in applied for value in (a.campaign_id, actor)],
                ).fetchall()
            }
            # On PostgreSQL the rows are locked already, in order (budgets, usages).
            cases = " WHEN ? THEN ?" * len(applied)
            budgets = {
                campaign_id: BudgetFigures(funded, used)
                for campaign_id, funded, used in self._db.execute(
                    f"UPDATE campaigns SET budget_used = budget_used + CASE campaign_id{cases} END,"
                    f" members_rewarded = members_rewarded + CASE campaign_id{cases} END"
                    f" WHERE campaign_id IN ({','.join('?' * len(applied))})"
                    " RETURNING campaign_id, budget_funded, budget_used",
                    [v for a in applied for v in (a.campaign_id, a.points)]
                    + [
                        v
                        for a in applied
                        for v in (a.campaign_id, int(a.campaign_id in new_members))
                    ]
                    + [a.campaign_id for a in applied],
                ).fetchall()
            }
            self._db.executemany(
                "INSERT INTO grants (campaign_id, member_id, grant_key, activity_id)"
                " VALUES (?, ?, ?, ?)",
                [
                    (a.campaign_id, actor, a.grant_key, activity.activity_id)
                    for a in applied
                    if a.grant_key is not None
                ],
            )
        rows = [
            _leg_row(
                activity, leg, a.version, 1, int(not index and a.campaign_id in new_members), days
            )
            for a in applied
            for index, leg in enumerate(a.legs)
        ]
        if decision.base_leg is not None:
            rows.append(_leg_row(activity, decision.base_leg, decision.base_version, 0, 0, days))
        self._db.executemany(
            "INSERT INTO award_legs (activity_id, leg_key, transfer_id, campaign_id,"
            " campaign_version, beneficiary, points, is_bonus, new_member, occur_us, local_day)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self._count_refusals(decision, days, 1)
        return budgets

    def _count_refusals(self, decision: Decision, days: LocalDays, step: int) -> None:
        """Counters per campaign, local day and reason: one small row each, however many
        activities, so recording a refusal touches a page already in cache."""
        self._db.executemany(
            "INSERT INTO refusal_counts (campaign_id, local_day, reason, count)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (campaign_id, local_day, reason)"
            " DO UPDATE SET count = refusal_counts.count + excluded.count",
            [
                (refused.campaign_id, days[refused.campaign_id], refused.reason.value, step)
                for refused in decision.refused
            ],
        )

    def purchase_legs(self, purchase_activity_id: str) -> PurchaseLegs | None:
        row = self._db.execute(
            "SELECT amount_minor, refunded_minor, member_id FROM activities"
            " WHERE activity_id = ? AND type = ?",
            (purchase_activity_id, PURCHASE),
        ).fetchone()
        if row is None:
            return None
        legs = tuple(
            AwardedLeg(*leg)
            for leg in self._db.execute(
                "SELECT leg_key, transfer_id, beneficiary, campaign_id, points, accounted"
                " FROM award_legs WHERE activity_id = ? ORDER BY is_bonus, leg_key",
                (purchase_activity_id,),
            )
        )
        return PurchaseLegs(row[0], row[1], row[2], legs)

    def record_clawback(self, refund: Activity, plan: ClawbackPlan) -> None:
        assert refund.refund is not None
        purchase_id = refund.refund.purchase_activity_id
        self._add_refunded(purchase_id, refund.refund.amount_minor)
        for planned in plan.legs:
            leg = planned.leg
            is_bonus = leg.leg_key != BASE_LEG
            self._take_back(
                purchase_id,
                leg.leg_key,
                leg.campaign_id,
                is_bonus,
                planned.reverse,
                planned.unrecovered,
            )
            self._db.execute(
                "INSERT INTO clawbacks (refund_activity_id, purchase_activity_id, leg_key,"
                " campaign_id, is_bonus, reversed, unrecovered) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    refund.activity_id,
                    purchase_id,
                    leg.leg_key,
                    leg.campaign_id,
                    int(is_bonus),
                    planned.reverse,
                    planned.unrecovered,
                ),
            )

    def _take_back(self, purchase_id, leg_key, campaign_id, is_bonus, reversed_, unrecovered):
        """Count a clawback (negative amounts undo one): on the leg, and in its budget."""
        self._db.execute(
            "UPDATE award_legs SET accounted = accounted + ? WHERE activity_id = ? AND leg_key = ?",
            (reversed_ + unrecovered, purchase_id, leg_key),
        )
        if is_bonus:
            self._db.execute(
                "UPDATE campaigns SET budget_used = budget_used - ? WHERE campaign_id = ?",
                (reversed_, campaign_id),
            )

    def _add_refunded(self, purchase_id: str, amount_minor: int) -> None:
        self._db.execute(
            "UPDATE activities SET refunded_minor = refunded_minor + ? WHERE activity_id = ?",
            (amount_minor, purchase_id),
        )

    def settle_activity(self, activity_id: str, balance: int) -> None:
        """The activity's chain committed (or it had none): settled, with the member's
        balance after it."""
        self._db.execute(
            "UPDATE activities SET state = 'settled', balance = ? WHERE activity_id = ?",
            (balance, activity_id),
        )

    def set_balance(self, activity_id: str, balance: int) -> None:
        """The member's balance for the answer to an activity that posted nothing."""
        self._db.execute(
            "UPDATE activities SET balance = ? WHERE activity_id = ?", (balance, activity_id)
        )

    def record_event(self, activity_id: str, now_us: int) -> None:
        """Append a settled activity to the feed when this write commits (before_commit).
        Called in the transaction that settles it."""
        self._events.append((activity_id, now_us))

    def before_commit(self) -> None:
        """The feed rows this write appends, with the feeds' next numbers, taken last
        so each counter is held only until COMMIT (kit feed_sequences.py): gapless
        and in commit order with any number of writers."""
        if self._events:
            first = take_sequences(self._db, ACTIVITY_FEED_NAME, len(self._events))
            for sequence, (activity_id, now_us) in enumerate(self._events, start=first):
                self._insert_event(sequence, activity_id, now_us)
            self._events.clear()
        if self._transitions:
            first = take_sequences(self._db, TRANSITIONS_FEED, len(self._transitions))
            self._db.executemany(
                "INSERT INTO transitions (sequence, campaign_id, from_state, to_state, effect_us)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (sequence, c.campaign_id, c.before.value, c.after.value, c.effect_us)
                    for sequence, c in enumerate(self._transitions, start=first)
                ],
            )
            self._transitions.clear()
        if self._changed_campaigns:
            ids = sorted(self._changed_campaigns)
            sequence = take_sequences(self._db, CATALOG_FEED, 1)
            self._db.execute(
                "UPDATE campaigns SET catalog_sequence = ?"
                f" WHERE campaign_id IN ({','.join('?' * len(ids))})",
                (sequence, *ids),
            )
            self._changed_campaigns.clear()

    # What differs per engine in _insert_event: the JSON functions.
    CREDITS_JSON = "json_group_array(json_array(beneficiary, points))"
    TIME_ZONE_JSON = "json_extract(profile, '$.time_zone')"

    def _insert_event(self, sequence: int, activity_id: str, now_us: int) -> None:
        """The feed row of a settled activity: the points it gave each member (its
        legs; for a refund, minus what its clawback reversed) and its member's zone
        now. One statement, so the hot path parses no JSON in Python."""
        self._db.execute(
            "WITH credits (beneficiary, points) AS ("
            " SELECT beneficiary, SUM(points) FROM ("
            "  SELECT beneficiary, points FROM award_legs WHERE activity_id = ?"
            "  UNION ALL"
            "  SELECT award_legs.beneficiary, -clawbacks.reversed"
            "  FROM clawbacks JOIN award_legs"
            "  ON award_legs.activity_id = clawbacks.purchase_activity_id"
            "  AND award_legs.leg_key = clawbacks.leg_key"
            "  WHERE clawbacks.refund_activity_id = ? AND clawbacks.reversed > 0"
            " ) AS legs GROUP BY beneficiary ORDER BY beneficiary)"
            " INSERT INTO activity_feed (sequence, activity_id, points, credits, time_zone,"
            " record_us) SELECT ?, activity_id,"
            " COALESCE((SELECT points FROM credits WHERE beneficiary = activities.member_id), 0),"
            f" (SELECT {self.CREDITS_JSON} FROM credits),"
            f" COALESCE((SELECT {self.TIME_ZONE_JSON} FROM members"
            "  WHERE members.member_id = activities.member_id), ''),"
            " ? FROM activities WHERE activity_id = ?",
            (activity_id, activity_id, sequence, now_us, activity_id),
        )

    def events_after(self, sequence: int, limit: int) -> list[ActivityEvent]:
        return [
            ActivityEvent(
                sequence=position,
                activity=from_json(Activity, content),
                points=points,
                credits=tuple(MemberPoints(*credit) for credit in json.loads(credits)),
                time_zone=time_zone,
                record_us=record_us,
            )
            for position, content, points, credits, time_zone, record_us in self._db.execute(
                "SELECT activity_feed.sequence, activities.content, activity_feed.points,"
                " activity_feed.credits, activity_feed.time_zone, activity_feed.record_us"
                " FROM activity_feed JOIN activities USING (activity_id)"
                " WHERE activity_feed.sequence > ? ORDER BY activity_feed.sequence LIMIT ?",
                (sequence, limit),
            )
        ]

    def discard_activity(self, record: ActivityRecord, days: LocalDays) -> None:
        """Undo everything an activity recorded, when the ledger refused its chain."""
        activity_id = record.activity.activity_id
        for campaign_id, points, new_member, member_id in self._db.execute(
            "SELECT campaign_id, points, new_member, beneficiary FROM award_legs"
            " WHERE activity_id = ? AND is_bonus = 1",
            (activity_id,),
        ).fetchall():
            self._db.execute(
                "UPDATE campaigns SET budget_used = budget_used - ?,"
                " members_rewarded = members_rewarded - ? WHERE campaign_id = ?",
                (points, new_member, campaign_id),
            )
            if new_member:
                self._db.execute(
                    "DELETE FROM campaign_members WHERE campaign_id = ? AND member_id = ?",
                    (campaign_id, member_id),
                )
        for purchase_id, leg_key, campaign_id, is_bonus, reversed_, unrecovered in self._db.execute(
            "SELECT purchase_activity_id, leg_key, campaign_id, is_bonus, reversed, unrecovered"
            " FROM clawbacks WHERE refund_activity_id = ?",
            (activity_id,),
        ).fetchall():
            self._take_back(purchase_id, leg_key, campaign_id, is_bonus, -reversed_, -unrecovered)
        refund = record.activity.refund
        if refund is not None:
            self._add_refunded(refund.purchase_activity_id, -refund.amount_minor)
        self._count_refusals(record.outcome.decision, days, -1)
        for table, column in (
            ("grants", "activity_id"),
            ("award_legs", "activity_id"),
            ("clawbacks", "refund_activity_id"),
            ("activities", "activity_id"),
        ):
            self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (activity_id,))

    # Transitions.

    def announced_states(self) -> dict[str, CampaignState]:
        return {
            campaign_id: CampaignState(state)
            for campaign_id, state in self._db.execute(
                "SELECT campaign_id, state FROM announced_states"
            )
        }

    def _announced_state(self, campaign_id: str) -> CampaignState:
        row = self._db.execute(
            "SELECT state FROM announced_states WHERE campaign_id = ?", (campaign_id,)
        ).fetchone()
        return CampaignState(row[0]) if row else CampaignState.DRAFT

    def append_transitions(self, changes: Sequence[StateChange], scanned_us: int | None) -> None:
        """Store the changes not announced yet (another replica's tracker may have
        announced the same one first: its row then already holds the new state),
        each from the state last announced by any replica: a tracker's memory is
        behind for a campaign it knows only from the catalog feed."""
        for change in changes:
            before = self._announced_state(change.campaign_id)
            if self._db.execute(
                "INSERT INTO announced_states (campaign_id, state) VALUES (?, ?)"
                " ON CONFLICT (campaign_id) DO UPDATE SET state = excluded.state"
                " WHERE announced_states.state != excluded.state RETURNING campaign_id",
                (change.campaign_id, change.after.value),
            ).fetchone():
                self._transitions.append(replace(change, before=before))
        if scanned_us is not None:
            self._db.execute(
                "INSERT INTO scan_progress (id, scanned_us) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET scanned_us = excluded.scanned_us",
                (scanned_us,),
            )

    def scanned_us(self) -> int | None:
        row = self._db.execute("SELECT scanned_us FROM scan_progress WHERE id = 1").fetchone()
        return row[0] if row else None

    def transitions_after(self, sequence: int, limit: int) -> list[Transition]:
        return [
            Transition(
                seq, StateChange(campaign_id, CampaignState(before), CampaignState(after), effect)
            )
            for seq, campaign_id, before, after, effect in self._db.execute(
                "SELECT sequence, campaign_id, from_state, to_state, effect_us FROM transitions"
                " WHERE sequence > ? ORDER BY sequence LIMIT ?",
                (sequence, limit),
            )
        ]

    # Statistics.

    def figures(self, campaign_id: str) -> CampaignFigures:
        awarded = "SELECT {group} SUM(points - accounted), COUNT(DISTINCT activity_id),"
        awarded += " COUNT(DISTINCT beneficiary) FROM award_legs WHERE campaign_id = ?"
        points, activities, members = self._db.execute(
            awarded.format(group=""), (campaign_id,)
        ).fetchone()
        days = self._db.execute(
            awarded.format(group="local_day,") + " GROUP BY local_day ORDER BY local_day",
            (campaign_id,),
        ).fetchall()
        # Clawbacks count on the day of the purchase they reverse, already in `accounted`.
        refusals = self._db.execute(
            "SELECT local_day, reason, count FROM refusal_counts"
            " WHERE campaign_id = ? AND count > 0 ORDER BY local_day, reason",
            (campaign_id,),
        ).fetchall()
        return CampaignFigures(
            points=points or 0,
            activities=activities,
            members=members,
            days=tuple(DayFigures(day, p or 0, a, m) for day, p, a, m in days),
            refusals=tuple(
                RefusalTally(day, RefusalReason(reason), count) for day, reason, count in refusals
            ),
            pending_entries=self.outbox.backlog().pending,
        )


# The store the use cases see, on either engine (server.campaigns_store picks one).
CampaignsStore = UnitStore[CampaignsUnit]


class SqliteCampaignsStore(SqliteStore[CampaignsUnit]):
    """The campaigns service's SQLite file."""

    def __init__(self, path: Path | str, **options: Unpack[StoreOptions]) -> None:
        super().__init__(path, MIGRATIONS, SqliteCampaignsUnit, **options)
