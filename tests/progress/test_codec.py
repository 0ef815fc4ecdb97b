"""The journal's rows: events written today read back the same, and rows
written by earlier builds (JSON objects with every field and the member) still
decode, so a rebuild of an existing database keeps working."""

from __future__ import annotations

import pytest

from services.progress.domain.codec import decode_event, encode_event
from services.progress.domain.events import (
    ActivityEvent,
    ChallengeJoined,
    PlayEvent,
    PlayKind,
    PointsCredited,
    PointsReversed,
)

# Rows as journals written before this codec hold them, and the events they are.
EARLIER_ROWS = [
    (
        "points_credited",
        '{"transfer_id":"activity:a-1:base","member_id":"m-1","code":"EARN","amount":10,'
        '"commit_us":1800000000000000,"activity_id":"a-1"}',
        PointsCredited("activity:a-1:base", "m-1", "EARN", 10, 1_800_000_000_000_000, "a-1"),
    ),
    (
        "points_reversed",
        '{"transfer_id":"r-1","member_id":"m-1","reversed_id":"activity:a-1:base","amount":4,'
        '"commit_us":1800000000000001}',
        PointsReversed("r-1", "m-1", "activity:a-1:base", 4, 1_800_000_000_000_001),
    ),
    (
        "activity",
        '{"activity_id":"a-2","member_id":"m-1","type":"purchase","occur_us":1800000000000002,'
        '"points":5,"time_zone":"Europe/Paris","amount_minor":1250,"refunds_activity_id":"",'
        '"attributes":[["sku","caf\\u00e9"],["store","lyon"]]}',
        ActivityEvent(
            "a-2",
            "m-1",
            "purchase",
            1_800_000_000_000_002,
            5,
            "Europe/Paris",
            1250,
            "",
            (("sku", "café"), ("store", "lyon")),
        ),
    ),
    (
        "play",
        '{"play_id":"s-1","member_id":"m-1","kind":"SPIN","game_id":"wheel","occur_us":3,'
        '"points_won":50,"score":0}',
        PlayEvent("s-1", "m-1", PlayKind.SPIN, "wheel", 3, 50, 0),
    ),
    (
        "challenge_joined",
        '{"challenge_id":"weekly","member_id":"m-1","occur_us":4}',
        ChallengeJoined("weekly", "m-1", 4),
    ),
]


# What today's build writes for the same events: neither the member (the
# journal's own column) nor a field at its default.
TODAY = [
    '{"transfer_id":"activity:a-1:base","code":"EARN","amount":10,"commit_us":1800000000000000,'
    '"activity_id":"a-1"}',
    '{"transfer_id":"r-1","reversed_id":"activity:a-1:base","amount":4,"commit_us":1800000000000001}',
    '{"activity_id":"a-2","type":"purchase","occur_us":1800000000000002,"points":5,'
    '"time_zone":"Europe/Paris","amount_minor":1250,"attributes":[["sku","caf\\u00e9"],'
    '["store","lyon"]]}',
    '{"play_id":"s-1","kind":"SPIN","game_id":"wheel","occur_us":3,"points_won":50}',
    '{"challenge_id":"weekly","occur_us":4}',
]


@pytest.mark.parametrize(("row", "today"), zip(EARLIER_ROWS, TODAY, strict=True))
def test_rows_written_before_and_today_decode_to_the_same_event(row, today) -> None:
    kind, payload, event = row
    assert decode_event(kind, payload, "m-1") == event
    assert encode_event(event) == (kind, today)
    assert decode_event(kind, today, "m-1") == event


def test_an_activity_reads_back_with_tuples_not_lists() -> None:
    event = decode_event(*EARLIER_ROWS[2][:2], "m-1")
    assert isinstance(event.attributes, tuple)
    assert all(isinstance(pair, tuple) for pair in event.attributes)


def test_a_row_older_than_a_field_reads_its_default_and_a_dropped_field_is_ignored() -> None:
    # Before activity_id was journaled, and with a field no event has any more.
    payload = (
        '{"transfer_id":"t","member_id":"m-1","code":"EARN","amount":1,"commit_us":2,"gone":true}'
    )
    assert decode_event("points_credited", payload, "m-1") == PointsCredited(
        "t", "m-1", "EARN", 1, 2
    )
