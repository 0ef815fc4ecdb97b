"""A var/games.db written by the previous version of the service (schema 2, kinds
unknown, one entry closed but never applied, draws in pending audit entries)
upgrades in place and keeps working: what it left half done is finished once."""

from __future__ import annotations

import json
import sqlite3

import pytest
from loyalty.games.v1 import games_service_pb2 as pb
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from services.games.domain.wheel import Prize
from services.games.ledger import REVENUE, catch_award, issuance, pool, spin_chain
from services.games.store import MIGRATIONS, SCHEMA_V1
from services.kit.outbox import OUTBOX_MIGRATION
from tests.support import deadlines
from tests.support.games import games_settings, numbered_seeds, plays_of, start_games
from tests.support.ledger import balance, fund, open_accounts, post

# Upgrades of a SQLite file written by an older version.
pytestmark = pytest.mark.parametrize("engine", ["sqlite"])

SPIN_ID = "s-00000000000000000000000000000001"
SESSION_ID = "c-00000000000000000000000000000001"
OLD_WHEEL = {
    "algorithm": "hmac-sha256-v1",
    "config": {
        "display_name": "Old wheel",
        "segments": [
            {
                "label": "Try again",
                "weight": 1,
                "prize": {"points": 0, "unit": "", "quantity": 0},
                "max_wins_per_member_per_day": 0,
            },
            {
                "label": "20 points",
                "weight": 1,
                "prize": {"points": 20, "unit": "", "quantity": 0},
                "max_wins_per_member_per_day": 0,
            },
        ],
        "fallback_segment_index": 0,
        "cost_points": 10,
        "spins_per_day": 0,
        "time_zone": "Europe/Paris",
        "start_us": None,
        "end_us": None,
    },
    "sold_out": [],
}
OLD_CATCH_GAME = {
    "display_name": "Old catch",
    "duration_millis": 1000,
    "spawn_interval_millis": 200,
    "field_width": 10,
    "basket_width": 10,
    "basket_top_speed": 10,
    "catch_window_millis": 200,
    "object_types": [{"name": "coin", "points": 5, "spawn_weight": 1, "fall_millis": 300}],
    "session_score_cap": 100,
    "daily_points_cap": 0,
    "time_zone": "Europe/Paris",
    "submit_grace_millis": 1000,
}


def write_old_database(path, now_us: int, spin_request, award_request) -> None:
    """What the previous version left: it posted the spin, marked its outbox entry
    settled and died before applying it; the catch award was recorded, not posted."""
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(SCHEMA_V1 + OUTBOX_MIGRATION)
    db.execute("PRAGMA user_version=2")
    db.execute("INSERT INTO wheels VALUES ('old', 1, ?)", (now_us,))
    db.execute(
        "INSERT INTO wheel_versions VALUES ('old', 1, ?, 'published-form-1-hash', ?)",
        (json.dumps(OLD_WHEEL), now_us),
    )
    db.execute(
        "INSERT INTO seed_pairs (pair_id, member_id, server_seed, commitment, client_seed,"
        " next_nonce, create_us) VALUES (1, 'm-old', ?, 'c0mm17', 'lucky', 0, ?)",
        (bytes(32), now_us),
    )
    db.execute(
        "INSERT INTO spins VALUES (?, 'old', 1, 'm-old', 'r-1', 1, 'lucky', 0, 1, 1, 1, NULL,"
        " ?, 'pending', NULL, ?, '[]', NULL, '2026-01-01', 1, ?, NULL)",
        (SPIN_ID, json.dumps({"points": 20, "unit": "", "quantity": 0}), SPIN_ID, now_us),
    )
    detail = {
        "proof": {
            "server_seed_sha256": "c0mm17",
            "client_seed": "lucky",
            "nonce": 0,
            "odds_version": 1,
            "draw_value": 1,
            "drawn_index": 1,
        },
        "landed_segment_index": 1,
        "prize": {"points": 20, "unit": "", "quantity": 0},
        "transfer_ids": [],
    }
    db.execute(
        "INSERT INTO plays (play_id, kind, game_id, member_id, status, reason, detail, create_us)"
        " VALUES ('s-earlier', 'spin', 'old', 'm-old', 'rejected', 'INSUFFICIENT_POINTS', '{}', ?)",
        (now_us,),
    )
    db.execute(
        "INSERT INTO plays (play_id, kind, game_id, member_id, status, reason, detail, create_us)"
        " VALUES (?, 'spin', 'old', 'm-old', 'pending', NULL, ?, ?)",
        (SPIN_ID, json.dumps(detail), now_us),
    )
    db.execute(
        "INSERT INTO ledger_outbox VALUES (?, ?, 'settled', ?, ?, NULL, NULL)",
        (SPIN_ID, spin_request.SerializeToString(), now_us, now_us),
    )
    db.execute(
        "INSERT INTO catch_games VALUES ('oldcatch', ?, ?)", (json.dumps(OLD_CATCH_GAME), now_us)
    )
    award_id = award_request.transfers[0].id
    db.execute(
        "INSERT INTO catch_sessions VALUES (?, 'oldcatch', 'm-old', 'r-c', ?, ?, ?, 'pending',"
        " 'f', 5, 5, '[]', ?, '2026-01-01', '2025-12-29', 0, ?)",
        (SESSION_ID, bytes(32), now_us, now_us + 10**7, award_id, now_us),
    )
    db.execute(
        "INSERT INTO ledger_outbox VALUES (?, ?, 'pending', ?, NULL, NULL, NULL)",
        (award_id, award_request.SerializeToString(), now_us),
    )
    db.close()


async def test_an_old_database_upgrades_and_finishes_what_it_left(tmp_path, ledger, ledger_stub):
    now = ledger.clock.now_us()
    chain = spin_chain(SPIN_ID, "old", "m-old", 10, Prize(points=20))
    award = catch_award(SESSION_ID, "oldcatch", "m-old", 5)
    await fund(ledger_stub, "m-old", 100)
    await open_accounts(ledger_stub, REVENUE, pool("old", "points"), issuance("points"))
    await post(
        ledger_stub,
        ledger_pb.Transfer(
            id="stock",
            debit_account_id="program:issuance",
            credit_account_id="wheel:old:pool:points",
            amount=100,
            code=ledger_pb.TRANSFER_CODE_FUNDING,
            kind=ledger_pb.TRANSFER_KIND_POSTED,
        ),
    )
    await post(ledger_stub, *chain.request.transfers)  # the old process got this far
    write_old_database(tmp_path / "games.db", now, chain.request, award)

    games = await start_games(
        games_settings(tmp_path / "games.db", ledger.target), ledger.clock, numbered_seeds()
    )
    try:
        with sqlite3.connect(tmp_path / "games.db") as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
            kinds = dict(db.execute("SELECT entry_id, kind FROM ledger_outbox"))
        assert kinds == {SPIN_ID: "spin", award.transfers[0].id: "catch_award"}
        # Recovery at start applied both, each once.
        pair = await games.stub.GetSeedPair(pb.GetSeedPairRequest(member_id="m-old"))
        assert pair.seed_pair.nonce == 1
        assert await balance(ledger_stub, "m-old") == 100 - 10 + 20 + 5
        assert await balance(ledger_stub, "games:revenue") == 10
        plays = await plays_of(games.stub, "m-old")
        assert [p.status for p in plays] == [
            pb.PLAY_STATUS_REJECTED,
            pb.PLAY_STATUS_PENDING,
            pb.PLAY_STATUS_SETTLED,
            pb.PLAY_STATUS_SETTLED,
        ]
        # The old pending entry stored its draw; it is not shown.
        assert plays[1].proof.drawn_segment_index == -1 and plays[1].landed_segment_index == -1
        # The feed numbers the old result first, then what recovery settled (in the
        # order it settled them).
        feed = games.stub.WatchPlays(pb.WatchPlaysRequest())
        stream = feed.__aiter__()
        numbered = [await deadlines.within(stream.__anext__()) for _ in range(3)]
        feed.cancel()
        assert [r.sequence for r in numbered] == [1, 2, 3]
        assert numbered[0].play.play_id == "s-earlier"
        assert {r.play.play_id for r in numbered[1:]} == {SPIN_ID, SESSION_ID}
        wheel = (await games.stub.GetWheel(pb.GetWheelRequest(wheel_id="old"))).wheel
        assert wheel.config_sha256 == "published-form-1-hash"
        assert wheel.config.segments[1].prize.points == 20
        spin = await games.stub.Spin(
            pb.SpinRequest(wheel_id="old", member_id="m-old", request_id="r-2")
        )
        assert spin.spin.proof.nonce == 1
        game = await games.stub.GetCatchGame(pb.GetCatchGameRequest(game_id="oldcatch"))
        assert game.game.config.display_name == "Old catch"
    finally:
        await games.stop()
