"""The kit outbox on PostgreSQL: replicas relaying at once claim disjoint entries."""

from __future__ import annotations

import psycopg
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from services.kit.outbox import EVERYTHING_US, PG_OUTBOX_MIGRATION, SqliteOutbox
from services.kit.postgres import PgConnection, migrate
from tests.support.postgres import fresh_database


def test_two_relays_claim_disjoint_entries_and_the_second_takes_the_rest(postgres, tmp_path):
    db = fresh_database(tmp_path, "postgres", "outbox")
    with psycopg.connect(db, autocommit=True) as setup:
        migrate(setup, "outbox", (PG_OUTBOX_MIGRATION,))
        with setup.transaction():
            outbox = SqliteOutbox(PgConnection(setup))
            for number in range(4):
                outbox.record(f"e{number}", "award", ledger_pb.PostTransfersRequest(), number)
    with psycopg.connect(db) as first, psycopg.connect(db) as second:
        # The first relay's claim is still open (its transaction holds the rows).
        mine = SqliteOutbox(PgConnection(first)).claim_due(EVERYTHING_US, 10, 2)
        theirs = SqliteOutbox(PgConnection(second)).claim_due(EVERYTHING_US, 10, 10)
        assert [e.entry_id for e in mine] == ["e0", "e1"]
        assert [e.entry_id for e in theirs] == ["e2", "e3"]
        second.commit()
        first.rollback()  # a relay that died mid-claim: its claim never counted
        again = SqliteOutbox(PgConnection(second)).claim_due(EVERYTHING_US, 10, 10)
        assert {e.entry_id: e.attempts for e in again} == {"e0": 1, "e1": 1, "e2": 2, "e3": 2}
