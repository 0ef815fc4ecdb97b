"""The campaigns service on PostgreSQL, taking writes from any number of replicas.

The SQL is SqliteCampaignsUnit's (through the kit's PgConnection); what differs
is the DDL, two JSON functions, and the locks. A write runs at READ COMMITTED,
where each statement sees what committed before it started, and a unit locks
what it decides from before reading it, so the decision holds at COMMIT:

- a member's row, when a write reads the member (tracking, upserts): one
  member's activities take turns, so "first purchase" is decided once;
- the rows of the campaigns whose usage a write reads (SELECT ... FOR UPDATE,
  in id order), before budgets, per-member caps, quotas, members rewarded and
  once-only grants are read: every write that changes those (an award, its
  undoing, a clawback, a funding) updates that row, so two replicas racing
  for the last of a budget take turns and the second reads what the first
  left. A waiting write is not rolled back: SERIALIZABLE would fail every
  writer but one on a hot budget row and retry them all;
- a purchase's row when a refund reads what it can still take back; a feed
  cursor's row when a follower moves it; a campaign's announced state when a
  transition is stored from it;
- a feed's counter (the activity feed, transitions: the kit's feed_sequences),
  from taking its numbers at the end of the write to COMMIT: numbers are taken
  in commit order, and a rolled-back write gives them back, so a reader past 7
  never misses 6. Its NOTIFY at COMMIT wakes every replica's Watch readers;
- the catalog feed's counter likewise: a write that changes a campaign stamps
  its row with the next number, and every replica's tracker reloads the rows
  stamped past what it has read (transitions.py). An award reads the counter
  after locking the campaign rows it decides from: past what its replica has
  read, it runs again on the reloaded catalog, so none is decided from a stale
  campaign (tracking.py).

Read units run in one REPEATABLE READ READ ONLY snapshot and lock nothing.
Budgets are also floors in the database: a CHECK refuses an award its budget
cannot pay, whatever the code decided.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Unpack

from services.campaigns.domain.evaluation import Usage, UsageQuery
from services.campaigns.domain.model import CampaignState, Member
from services.campaigns.domain.records import BudgetFigures, PurchaseLegs
from services.campaigns.store import (
    ACTIVITY_FEED_NAME,
    CATALOG_FEED,
    CATALOG_SEQUENCES,
    FEED_COUNTERS,
    TRANSITIONS_FEED,
    CampaignsUnit,
    SqliteCampaignsUnit,
)
from services.kit.cursors import CURSORS_MIGRATION
from services.kit.outbox import PG_OUTBOX_MIGRATION
from services.kit.postgres import READ_COMMITTED, PgConnection, PgStore, refuse_change_function
from services.kit.sqlite import StoreOptions

# SQLite's schema after all its migrations, in PostgreSQL's types (BIGINT:
# microseconds and points pass 2^31), with the floors as CHECKs and the
# activity feed append-only by trigger.
PG_SCHEMA_V1 = (
    refuse_change_function("campaigns_refuse_change")
    + """
CREATE TABLE members (
  member_id TEXT PRIMARY KEY,
  profile TEXT NOT NULL,
  create_us BIGINT NOT NULL,
  update_us BIGINT NOT NULL
);
CREATE TABLE campaigns (
  campaign_id TEXT PRIMARY KEY,
  version INTEGER NOT NULL,
  spec TEXT NOT NULL,
  status TEXT NOT NULL,
  create_us BIGINT NOT NULL,
  update_us BIGINT NOT NULL,
  budget_funded BIGINT NOT NULL DEFAULT 0,
  budget_used BIGINT NOT NULL DEFAULT 0,
  members_rewarded BIGINT NOT NULL DEFAULT 0 CHECK (members_rewarded >= 0),
  pauses TEXT NOT NULL DEFAULT '[]',
  CONSTRAINT campaigns_budget_never_below_zero
    CHECK (budget_used >= 0 AND budget_used <= budget_funded)
);
CREATE TABLE campaign_versions (
  campaign_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  spec TEXT NOT NULL,
  create_us BIGINT NOT NULL,
  PRIMARY KEY (campaign_id, version)
);
CREATE TABLE fundings (
  transfer_id TEXT PRIMARY KEY,
  campaign_id TEXT NOT NULL,
  amount BIGINT NOT NULL CHECK (amount > 0),
  settled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE activities (
  activity_id TEXT PRIMARY KEY,
  member_id TEXT NOT NULL,
  type TEXT NOT NULL,
  occur_us BIGINT NOT NULL,
  content TEXT NOT NULL,
  outcome BYTEA NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'settled')),
  entry_id TEXT,
  balance BIGINT NOT NULL DEFAULT 0,
  amount_minor BIGINT NOT NULL DEFAULT 0,
  refunded_minor BIGINT NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
  create_us BIGINT NOT NULL
);
CREATE INDEX activities_member_type ON activities (member_id, type);
CREATE TABLE award_legs (
  activity_id TEXT NOT NULL,
  leg_key TEXT NOT NULL,
  transfer_id TEXT NOT NULL,
  campaign_id TEXT NOT NULL,
  campaign_version INTEGER NOT NULL,
  beneficiary TEXT NOT NULL,
  points BIGINT NOT NULL,
  is_bonus INTEGER NOT NULL,
  new_member INTEGER NOT NULL,
  occur_us BIGINT NOT NULL,
  local_day TEXT NOT NULL,
  accounted BIGINT NOT NULL DEFAULT 0,
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
  count BIGINT NOT NULL,
  PRIMARY KEY (campaign_id, local_day, reason)
);
CREATE TABLE clawbacks (
  refund_activity_id TEXT NOT NULL,
  purchase_activity_id TEXT NOT NULL,
  leg_key TEXT NOT NULL,
  campaign_id TEXT NOT NULL,
  is_bonus INTEGER NOT NULL,
  reversed BIGINT NOT NULL,
  unrecovered BIGINT NOT NULL,
  PRIMARY KEY (refund_activity_id, leg_key)
);
CREATE TABLE announced_states (
  campaign_id TEXT PRIMARY KEY,
  state TEXT NOT NULL
);
CREATE TABLE transitions (
  sequence BIGINT PRIMARY KEY,
  campaign_id TEXT NOT NULL,
  from_state TEXT NOT NULL,
  to_state TEXT NOT NULL,
  effect_us BIGINT NOT NULL
);
CREATE TABLE scan_progress (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  scanned_us BIGINT NOT NULL
);
CREATE TABLE activity_attempts (
  activity_id TEXT PRIMARY KEY,
  attempts INTEGER NOT NULL
);
CREATE TABLE activity_feed (
  sequence BIGINT PRIMARY KEY,
  activity_id TEXT NOT NULL UNIQUE,
  points BIGINT NOT NULL,
  credits TEXT NOT NULL,
  time_zone TEXT NOT NULL,
  record_us BIGINT NOT NULL
);
CREATE TRIGGER activity_feed_is_append_only BEFORE UPDATE OR DELETE ON activity_feed
  FOR EACH ROW EXECUTE FUNCTION campaigns_refuse_change();
CREATE TABLE standings (
  member_id TEXT NOT NULL,
  program_id TEXT NOT NULL,
  tier_id TEXT NOT NULL,
  tier_ids TEXT NOT NULL,
  PRIMARY KEY (member_id, program_id)
);
"""
)

PG_MIGRATIONS = (
    PG_SCHEMA_V1 + PG_OUTBOX_MIGRATION + CURSORS_MIGRATION + FEED_COUNTERS,
    CATALOG_SEQUENCES,
)


class PgCampaignsUnit(SqliteCampaignsUnit):
    CREDITS_JSON = (
        "COALESCE(json_agg(json_build_array(beneficiary, points) ORDER BY beneficiary), '[]')"
    )
    TIME_ZONE_JSON = "profile::json ->> 'time_zone'"

    def __init__(self, connection: PgConnection) -> None:
        super().__init__(connection)  # type: ignore[arg-type]  # the sqlite3 shape
        self._writing: bool | None = None

    def _locks(self) -> bool:
        """Whether this unit is a write (a read-only snapshot takes no lock)."""
        if self._writing is None:
            (read_only,) = self._db.execute("SHOW transaction_read_only").fetchone()
            self._writing = read_only == "off"
        return self._writing

    def _lock(self, table: str, column: str, keys: Iterable[str]) -> None:
        ordered = sorted(set(keys))
        if ordered and self._locks():
            self._db.execute(
                f"SELECT 1 FROM {table} WHERE {column} IN ({','.join('?' * len(ordered))})"
                f" ORDER BY {column} FOR UPDATE",
                ordered,
            )

    def member(self, member_id: str) -> Member | None:
        self._lock("members", "member_id", (member_id,))
        return super().member(member_id)

    def cursor(self, feed: str) -> int:
        self._lock("cursors", "feed", (feed,))
        return super().cursor(feed)

    def campaign(self, campaign_id: str):
        self._lock("campaigns", "campaign_id", (campaign_id,))
        return super().campaign(campaign_id)

    def budgets(self, campaign_ids: Iterable[str]) -> dict[str, BudgetFigures]:
        ids = list(campaign_ids)
        self._lock("campaigns", "campaign_id", ids)
        return super().budgets(ids)

    def usages(self, queries: Sequence[UsageQuery]) -> dict[str, Usage]:
        self._lock("campaigns", "campaign_id", (query.campaign_id for query in queries))
        return super().usages(queries)

    def _announced_state(self, campaign_id: str) -> CampaignState:
        self._lock("announced_states", "campaign_id", (campaign_id,))
        return super()._announced_state(campaign_id)

    def purchase_legs(self, purchase_activity_id: str) -> PurchaseLegs | None:
        self._lock("activities", "activity_id", (purchase_activity_id,))
        return super().purchase_legs(purchase_activity_id)


class PgCampaignsStore(PgStore[CampaignsUnit]):
    """The campaigns tables on PostgreSQL (READ COMMITTED with the locks above)."""

    def __init__(self, url: str, **options: Unpack[StoreOptions]) -> None:
        super().__init__(
            url,
            "campaigns",
            PG_MIGRATIONS,
            PgCampaignsUnit,
            isolation=READ_COMMITTED,
            # Every replica's commits to the feeds wake this one's Watch readers.
            feeds=(ACTIVITY_FEED_NAME, TRANSITIONS_FEED, CATALOG_FEED),
            **options,
        )
