"""SQL for the campaigns service. Writes run inside the group-commit writer as
functions of a sqlite3 connection (so a use case can compose them into one
transaction); reads that need no transaction go through the aiosqlite reader."""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from services.campaigns.codec import from_json, to_json
from services.campaigns.domain.evaluation import BASE_LEG, Decision, Usage, UsageQuery
from services.campaigns.domain.model import (
    Activity,
    Campaign,
    CampaignSpec,
    CampaignState,
    CampaignStatus,
    Member,
)
from services.campaigns.domain.outcome import Outcome
from services.campaigns.domain.refund import AwardedLeg, ClawbackPlan
from services.kit.outbox import OUTBOX_MIGRATION
from services.kit.sqlite import Database

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

MIGRATIONS = (SCHEMA, OUTBOX_MIGRATION)


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    activity: Activity
    outcome: Outcome
    settled: bool
    entry_id: str | None


@dataclass(frozen=True, slots=True)
class Transition:
    sequence: int
    campaign_id: str
    from_state: CampaignState
    to_state: CampaignState
    effect_us: int


@dataclass(frozen=True, slots=True)
class DayFigures:
    day: str
    points: int
    activities: int
    members: int


@dataclass(frozen=True, slots=True)
class CampaignFigures:
    points: int
    activities: int
    members: int
    days: tuple[DayFigures, ...]
    # (local day, reason, count); day "" for the totals.
    refusals: tuple[tuple[str, str, int], ...]
    pending_entries: int


def _member(row) -> Member:
    return from_json(Member, row[0])


def _campaign(row) -> Campaign:
    campaign_id, version, spec, status, create_us, update_us, funded, used = row
    return Campaign(
        campaign_id=campaign_id,
        version=version,
        spec=from_json(CampaignSpec, spec),
        status=CampaignStatus(status),
        create_us=create_us,
        update_us=update_us,
        budget_funded=funded,
        budget_used=used,
    )


ACTIVITY_QUERY = (
    "SELECT content, outcome, state, entry_id, balance FROM activities WHERE activity_id = ?"
)
CAMPAIGN_COLUMNS = (
    "campaign_id, version, spec, status, create_us, update_us, budget_funded, budget_used"
)


class CampaignsStore(Database):
    """The campaigns' SQLite file and its SQL."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(path, MIGRATIONS)

    async def _rows(self, sql: str, *args) -> list:
        return await self.rows(sql, args)

    async def _row(self, sql: str, *args):
        rows = await self._rows(sql, *args)
        return rows[0] if rows else None

    # Members.

    @staticmethod
    def member(connection: sqlite3.Connection, member_id: str) -> Member | None:
        row = connection.execute(
            "SELECT profile FROM members WHERE member_id = ?", (member_id,)
        ).fetchone()
        return _member(row) if row else None

    @staticmethod
    def put_member(connection: sqlite3.Connection, member: Member) -> None:
        connection.execute(
            "INSERT INTO members (member_id, profile, create_us, update_us) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (member_id) DO UPDATE SET profile = excluded.profile,"
            " update_us = excluded.update_us",
            (member.member_id, to_json(member), member.create_us, member.update_us),
        )

    async def read_member(self, member_id: str) -> Member | None:
        row = await self._row("SELECT profile FROM members WHERE member_id = ?", member_id)
        return _member(row) if row else None

    # Campaigns.

    @staticmethod
    def campaign(connection: sqlite3.Connection, campaign_id: str) -> Campaign | None:
        row = connection.execute(
            f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE campaign_id = ?", (campaign_id,)
        ).fetchone()
        return _campaign(row) if row else None

    @staticmethod
    def put_campaign(connection: sqlite3.Connection, campaign: Campaign) -> None:
        """Insert or replace the campaign's definition; budgets change only by awards."""
        spec = to_json(campaign.spec)
        connection.execute(
            "INSERT INTO campaigns (campaign_id, version, spec, status, create_us, update_us)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (campaign_id) DO UPDATE SET"
            " version = excluded.version, spec = excluded.spec, status = excluded.status,"
            " update_us = excluded.update_us",
            (
                campaign.campaign_id,
                campaign.version,
                spec,
                campaign.status.value,
                campaign.create_us,
                campaign.update_us,
            ),
        )
        connection.execute(
            "INSERT OR IGNORE INTO campaign_versions (campaign_id, version, spec, create_us)"
            " VALUES (?, ?, ?, ?)",
            (campaign.campaign_id, campaign.version, spec, campaign.update_us),
        )

    async def read_campaign(self, campaign_id: str) -> Campaign | None:
        row = await self._row(
            f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE campaign_id = ?", campaign_id
        )
        return _campaign(row) if row else None

    async def read_campaigns(self) -> list[Campaign]:
        rows = await self._rows(f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns ORDER BY campaign_id")
        return [_campaign(row) for row in rows]

    @staticmethod
    def funding_intended(connection: sqlite3.Connection, campaign_id: str) -> int:
        return connection.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM fundings WHERE campaign_id = ?", (campaign_id,)
        ).fetchone()[0]

    @staticmethod
    def add_funding(
        connection: sqlite3.Connection, transfer_id: str, campaign_id: str, amount: int
    ) -> None:
        connection.execute(
            "INSERT INTO fundings (transfer_id, campaign_id, amount) VALUES (?, ?, ?)",
            (transfer_id, campaign_id, amount),
        )

    @staticmethod
    def settle_funding(connection: sqlite3.Connection, transfer_id: str) -> str | None:
        """Count a posted funding in the budget, once; returns its campaign id."""
        row = connection.execute(
            "UPDATE fundings SET settled = 1 WHERE transfer_id = ? AND settled = 0"
            " RETURNING campaign_id, amount",
            (transfer_id,),
        ).fetchone()
        if row is None:
            return None
        connection.execute(
            "UPDATE campaigns SET budget_funded = budget_funded + ? WHERE campaign_id = ?",
            (row[1], row[0]),
        )
        return row[0]

    # Activities and awards.

    @staticmethod
    def activity(connection: sqlite3.Connection, activity_id: str) -> ActivityRecord | None:
        row = connection.execute(
            ACTIVITY_QUERY,
            (activity_id,),
        ).fetchone()
        return _activity_record(row) if row else None

    async def read_activity(self, activity_id: str) -> ActivityRecord | None:
        row = await self._row(
            ACTIVITY_QUERY,
            activity_id,
        )
        return _activity_record(row) if row else None

    @staticmethod
    def has_purchase(connection: sqlite3.Connection, member_id: str) -> bool:
        return (
            connection.execute(
                "SELECT 1 FROM activities WHERE member_id = ? AND type = 'purchase' LIMIT 1",
                (member_id,),
            ).fetchone()
            is not None
        )

    @staticmethod
    def usages(connection: sqlite3.Connection, queries: Sequence[UsageQuery]) -> dict[str, Usage]:
        """Budgets, per-member points per period, quotas and grants, each asked only when
        the campaign has such a limit, so evaluation cost follows the candidates."""
        if not queries:
            return {}
        marks = ",".join("?" * len(queries))
        budgets = {
            campaign_id: (funded - used, rewarded)
            for campaign_id, funded, used, rewarded in connection.execute(
                "SELECT campaign_id, budget_funded, budget_used, members_rewarded FROM campaigns"
                f" WHERE campaign_id IN ({marks})",
                [query.campaign_id for query in queries],
            )
        }
        return {
            query.campaign_id: _usage(connection, query, *budgets[query.campaign_id])
            for query in queries
        }

    @staticmethod
    def next_entry_id(connection: sqlite3.Connection, activity_id: str) -> str:
        """A fresh outbox entry id for another attempt at posting this activity."""
        prefix = f"activity:{activity_id}:"
        # A key range, so the primary key index answers (ids are printable ASCII).
        (count,) = connection.execute(
            "SELECT COUNT(*) FROM ledger_outbox WHERE entry_id >= ? AND entry_id < ?",
            (prefix, prefix + "\x7f"),
        ).fetchone()
        return f"{prefix}{count + 1}"

    @staticmethod
    def insert_activity(
        connection: sqlite3.Connection,
        activity: Activity,
        outcome: Outcome,
        entry_id: str | None,
        now_us: int,
    ) -> None:
        amount = activity.purchase.amount_minor if activity.purchase else 0
        connection.execute(
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

    @staticmethod
    def record_award(
        connection: sqlite3.Connection,
        activity: Activity,
        decision: Decision,
        local_days: dict[str, str],
    ) -> None:
        """The award's legs and what they use of budgets, quotas and grants."""
        actor = activity.member_id
        for applied in decision.applied:
            new_member = connection.execute(
                "INSERT OR IGNORE INTO campaign_members (campaign_id, member_id) VALUES (?, ?)",
                (applied.campaign_id, actor),
            ).rowcount
            connection.execute(
                "UPDATE campaigns SET budget_used = budget_used + ?,"
                " members_rewarded = members_rewarded + ? WHERE campaign_id = ?",
                (applied.points, new_member, applied.campaign_id),
            )
            if applied.grant_key is not None:
                connection.execute(
                    "INSERT INTO grants (campaign_id, member_id, grant_key, activity_id)"
                    " VALUES (?, ?, ?, ?)",
                    (applied.campaign_id, actor, applied.grant_key, activity.activity_id),
                )
            for index, leg in enumerate(applied.legs):
                _insert_leg(
                    connection,
                    activity,
                    leg,
                    applied.version,
                    True,
                    new_member and not index,
                    local_days,
                )
        if decision.base_leg is not None:
            version = decision.base_version
            _insert_leg(connection, activity, decision.base_leg, version, False, 0, local_days)
        _count_refusals(connection, decision, local_days, 1)

    @staticmethod
    def purchase_legs(
        connection: sqlite3.Connection, purchase_activity_id: str
    ) -> tuple[int, int, str, list[AwardedLeg]] | None:
        """(amount, refunded so far, member, legs in chain order) of a purchase."""
        row = connection.execute(
            "SELECT amount_minor, refunded_minor, member_id FROM activities"
            " WHERE activity_id = ? AND type = 'purchase'",
            (purchase_activity_id,),
        ).fetchone()
        if row is None:
            return None
        legs = [
            AwardedLeg(*leg)
            for leg in connection.execute(
                "SELECT leg_key, transfer_id, beneficiary, campaign_id, points, accounted"
                " FROM award_legs WHERE activity_id = ? ORDER BY is_bonus, leg_key",
                (purchase_activity_id,),
            )
        ]
        return row[0], row[1], row[2], legs

    @staticmethod
    def record_clawback(
        connection: sqlite3.Connection, refund: Activity, plan: ClawbackPlan
    ) -> None:
        assert refund.refund is not None
        purchase_id = refund.refund.purchase_activity_id
        _add_refunded(connection, purchase_id, refund.refund.amount_minor)
        for planned in plan.legs:
            leg = planned.leg
            is_bonus = leg.leg_key != BASE_LEG
            _take_back(
                connection,
                purchase_id,
                leg.leg_key,
                leg.campaign_id,
                is_bonus,
                planned.reverse,
                planned.unrecovered,
            )
            connection.execute(
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

    @staticmethod
    def discard_activity(
        connection: sqlite3.Connection, activity_id: str, local_days: dict[str, str]
    ) -> None:
        """Undo everything an activity recorded, when the ledger refused its chain."""
        for campaign_id, points, new_member, member_id in connection.execute(
            "SELECT campaign_id, points, new_member, beneficiary FROM award_legs"
            " WHERE activity_id = ? AND is_bonus = 1",
            (activity_id,),
        ).fetchall():
            connection.execute(
                "UPDATE campaigns SET budget_used = budget_used - ?,"
                " members_rewarded = members_rewarded - ? WHERE campaign_id = ?",
                (points, new_member, campaign_id),
            )
            if new_member:
                connection.execute(
                    "DELETE FROM campaign_members WHERE campaign_id = ? AND member_id = ?",
                    (campaign_id, member_id),
                )
        for (
            purchase_id,
            leg_key,
            campaign_id,
            is_bonus,
            reversed_,
            unrecovered,
        ) in connection.execute(
            "SELECT purchase_activity_id, leg_key, campaign_id, is_bonus, reversed, unrecovered"
            " FROM clawbacks WHERE refund_activity_id = ?",
            (activity_id,),
        ).fetchall():
            _take_back(
                connection, purchase_id, leg_key, campaign_id, is_bonus, -reversed_, -unrecovered
            )
        record = CampaignsStore.activity(connection, activity_id)
        if record is not None:
            refund = record.activity.refund
            if refund is not None:
                _add_refunded(connection, refund.purchase_activity_id, -refund.amount_minor)
            _count_refusals(connection, record.outcome.decision, local_days, -1)
        for table, column in (
            ("grants", "activity_id"),
            ("award_legs", "activity_id"),
            ("clawbacks", "refund_activity_id"),
            ("activities", "activity_id"),
        ):
            connection.execute(f"DELETE FROM {table} WHERE {column} = ?", (activity_id,))

    @staticmethod
    def outbox_request(connection: sqlite3.Connection, entry_id: str) -> bytes:
        return connection.execute(
            "SELECT request FROM ledger_outbox WHERE entry_id = ?", (entry_id,)
        ).fetchone()[0]

    @staticmethod
    def pending_member(connection: sqlite3.Connection, activity_id: str, entry_id: str):
        """The member of an activity still waiting for this outbox entry, else None."""
        row = connection.execute(
            "SELECT member_id FROM activities"
            " WHERE activity_id = ? AND entry_id = ? AND state = 'pending'",
            (activity_id, entry_id),
        ).fetchone()
        return row[0] if row else None

    @staticmethod
    def settle_activity(connection: sqlite3.Connection, activity_id: str, balance: int) -> None:
        connection.execute(
            "UPDATE activities SET state = 'settled', balance = ? WHERE activity_id = ?",
            (balance, activity_id),
        )

    @staticmethod
    def budgets(
        connection: sqlite3.Connection, campaign_ids: Sequence[str]
    ) -> dict[str, tuple[int, int]]:
        """(funded, used) per campaign."""
        marks = ",".join("?" * len(campaign_ids))
        return {
            campaign_id: (funded, used)
            for campaign_id, funded, used in connection.execute(
                "SELECT campaign_id, budget_funded, budget_used FROM campaigns"
                f" WHERE campaign_id IN ({marks})",
                list(campaign_ids),
            )
        }

    # Transitions.

    @staticmethod
    def announced_states(connection: sqlite3.Connection) -> dict[str, CampaignState]:
        return {
            campaign_id: CampaignState(state)
            for campaign_id, state in connection.execute(
                "SELECT campaign_id, state FROM announced_states"
            )
        }

    @staticmethod
    def append_transitions(
        connection: sqlite3.Connection,
        changes: Iterable[tuple[str, CampaignState, CampaignState, int]],
        scanned_us: int | None,
    ) -> None:
        for campaign_id, before, after, effect_us in changes:
            connection.execute(
                "INSERT INTO transitions (campaign_id, from_state, to_state, effect_us)"
                " VALUES (?, ?, ?, ?)",
                (campaign_id, before.value, after.value, effect_us),
            )
            connection.execute(
                "INSERT INTO announced_states (campaign_id, state) VALUES (?, ?)"
                " ON CONFLICT (campaign_id) DO UPDATE SET state = excluded.state",
                (campaign_id, after.value),
            )
        if scanned_us is not None:
            connection.execute(
                "INSERT INTO scan_progress (id, scanned_us) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET scanned_us = excluded.scanned_us",
                (scanned_us,),
            )

    @staticmethod
    def scanned_us(connection: sqlite3.Connection) -> int | None:
        row = connection.execute("SELECT scanned_us FROM scan_progress WHERE id = 1").fetchone()
        return row[0] if row else None

    async def transitions_after(self, sequence: int, limit: int = 500) -> list[Transition]:
        rows = await self._rows(
            "SELECT sequence, campaign_id, from_state, to_state, effect_us FROM transitions"
            " WHERE sequence > ? ORDER BY sequence LIMIT ?",
            sequence,
            limit,
        )
        return [
            Transition(seq, cid, CampaignState(before), CampaignState(after), effect)
            for seq, cid, before, after, effect in rows
        ]

    # Statistics.

    async def figures(self, campaign_id: str) -> CampaignFigures:
        awarded = "SELECT {group} SUM(points - accounted), COUNT(DISTINCT activity_id),"
        awarded += " COUNT(DISTINCT beneficiary) FROM award_legs WHERE campaign_id = ?"
        ((points, activities, members),) = await self._rows(awarded.format(group=""), campaign_id)
        days = await self._rows(
            awarded.format(group="local_day,") + " GROUP BY local_day ORDER BY local_day",
            campaign_id,
        )
        # Clawbacks count on the day of the purchase they reverse, already in `accounted`.
        refusals = await self._rows(
            "SELECT local_day, reason, count FROM refusal_counts"
            " WHERE campaign_id = ? AND count > 0 ORDER BY local_day, reason",
            campaign_id,
        )
        ((pending,),) = await self._rows(
            "SELECT COUNT(*) FROM ledger_outbox WHERE state = 'pending'"
        )
        return CampaignFigures(
            points=points or 0,
            activities=activities,
            members=members,
            days=tuple(DayFigures(day, p or 0, a, m) for day, p, a, m in days),
            refusals=tuple(refusals),
            pending_entries=pending,
        )


def _count_refusals(
    connection: sqlite3.Connection, decision: Decision, local_days: dict[str, str], step: int
) -> None:
    """Counters per campaign, local day and reason: one small row each, however many
    activities, so recording a refusal touches a page already in cache."""
    connection.executemany(
        "INSERT INTO refusal_counts (campaign_id, local_day, reason, count) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (campaign_id, local_day, reason)"
        " DO UPDATE SET count = count + excluded.count",
        [
            (refused.campaign_id, local_days[refused.campaign_id], refused.reason.value, step)
            for refused in decision.refused
        ],
    )


def _take_back(connection, purchase_id, leg_key, campaign_id, is_bonus, reversed_, unrecovered):
    """Count a clawback (negative amounts undo one): on the leg, and in its budget."""
    connection.execute(
        "UPDATE award_legs SET accounted = accounted + ? WHERE activity_id = ? AND leg_key = ?",
        (reversed_ + unrecovered, purchase_id, leg_key),
    )
    if is_bonus:
        connection.execute(
            "UPDATE campaigns SET budget_used = budget_used - ? WHERE campaign_id = ?",
            (reversed_, campaign_id),
        )


def _add_refunded(connection, purchase_id: str, amount_minor: int) -> None:
    connection.execute(
        "UPDATE activities SET refunded_minor = refunded_minor + ? WHERE activity_id = ?",
        (amount_minor, purchase_id),
    )


def _usage(
    connection: sqlite3.Connection, query: UsageQuery, remaining: int, rewarded: int
) -> Usage:
    in_period = {
        period: connection.execute(
            "SELECT COALESCE(SUM(points - accounted), 0) FROM award_legs"
            " WHERE campaign_id = ? AND beneficiary = ? AND occur_us >= ? AND occur_us < ?",
            (query.campaign_id, query.member_id, start, end),
        ).fetchone()[0]
        for period, start, end in query.periods
    }
    before = (
        query.counts_members
        and connection.execute(
            "SELECT 1 FROM campaign_members WHERE campaign_id = ? AND member_id = ?",
            (query.campaign_id, query.member_id),
        ).fetchone()
    )
    granted = (
        query.grant_key is not None
        and connection.execute(
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


def _insert_leg(connection, activity, leg, version, is_bonus, new_member, local_days) -> None:
    connection.execute(
        "INSERT INTO award_legs (activity_id, leg_key, transfer_id, campaign_id,"
        " campaign_version, beneficiary, points, is_bonus, new_member, occur_us, local_day)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            activity.activity_id,
            leg.leg_key,
            leg.transfer_id(activity.activity_id),
            leg.campaign_id,
            version,
            leg.beneficiary,
            leg.points,
            int(is_bonus),
            int(bool(new_member)),
            activity.occur_us,
            local_days[leg.campaign_id],
        ),
    )


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
