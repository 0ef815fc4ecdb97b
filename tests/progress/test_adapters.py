"""The feed adapters, over messages of the real contracts: which ledger
transfers are progress events, and which are not; what a campaigns activity
carries into its event; which games results are plays."""

from __future__ import annotations

from loyalty.campaigns.v1 import campaigns_service_pb2 as campaigns_pb
from loyalty.games.v1 import games_service_pb2 as games_pb
from loyalty.ledger.v1 import ledger_service_pb2 as pb
from structlog.testing import capture_logs

from services.kit.feeds import FeedItem
from services.progress.adapters import campaigns, games, ledger
from services.progress.domain.definitions import QUALIFYING_CODES
from services.progress.domain.events import (
    ActivityEvent,
    PlayEvent,
    PlayKind,
    PointsCredited,
    PointsReversed,
)


def transfer(**fields) -> pb.WatchTransfersResponse:
    fields.setdefault("kind", pb.TRANSFER_KIND_POSTED)
    fields.setdefault("amount", 100)
    message = pb.WatchTransfersResponse(transfer=pb.Transfer(id="t", sequence=7, **fields))
    message.transfer.create_time.FromSeconds(1_800_000_000)
    return message


def events_of(response: pb.WatchTransfersResponse) -> list:
    item = ledger.item_of(response)
    assert (item.sequence, item.at_us) == (7, 1_800_000_000_000_000)
    return item.value


def test_a_credit_to_a_member_wallet_carries_its_code_and_activity() -> None:
    (event,) = events_of(
        transfer(
            debit_account_id="campaign:double:budget",
            credit_account_id="m-1",
            code=pb.TRANSFER_CODE_BONUS,
            metadata={"activity_id": "a-1", "campaign_id": "double"},
        )
    )
    assert event == PointsCredited("t", "m-1", "BONUS", 100, 1_800_000_000_000_000, "a-1")


def test_a_code_from_a_newer_ledger_is_named_by_its_number_and_qualifies_nothing() -> None:
    message = transfer(debit_account_id="program:issuance", credit_account_id="m-1", code=97)
    with capture_logs() as logs:
        (event,) = events_of(message)
    assert (event.code, event.amount, logs) == ("CODE_97", 100, [])
    assert event.code not in QUALIFYING_CODES


def test_a_posted_hold_counts_when_posted() -> None:
    posted = transfer(
        debit_account_id="program:issuance",
        credit_account_id="m-1",
        code=pb.TRANSFER_CODE_EARN,
        kind=pb.TRANSFER_KIND_POST_PENDING,
    )
    pending = transfer(
        debit_account_id="program:issuance",
        credit_account_id="m-1",
        code=pb.TRANSFER_CODE_EARN,
        kind=pb.TRANSFER_KIND_PENDING,
    )
    assert len(events_of(posted)) == 1
    assert events_of(pending) == []


def test_spending_expiry_prizes_and_budgets_are_not_progress_events() -> None:
    for debit, credit, code in (
        ("m-1", "games:revenue", pb.TRANSFER_CODE_GAME_COST),
        ("m-1", "program:breakage", pb.TRANSFER_CODE_EXPIRY),
        ("wheel:w:pool:prize:coffee", "m-1/prize:coffee", pb.TRANSFER_CODE_GAME_PRIZE),
        ("program:issuance", "campaign:c:budget", pb.TRANSFER_CODE_FUNDING),
    ):
        assert (
            events_of(transfer(debit_account_id=debit, credit_account_id=credit, code=code)) == []
        )


def test_a_clawback_reverses_the_member_credit_it_names() -> None:
    (event,) = events_of(
        transfer(
            debit_account_id="m-1",
            credit_account_id="program:issuance",
            code=pb.TRANSFER_CODE_CLAWBACK,
            kind=pb.TRANSFER_KIND_REVERSAL,
            reverses_transfer_id="activity:a-1:base",
            amount=40,
        )
    )
    assert event == PointsReversed("t", "m-1", "activity:a-1:base", 40, 1_800_000_000_000_000)


def activity(**fields) -> campaigns_pb.WatchActivitiesResponse:
    message = campaigns_pb.WatchActivitiesResponse(sequence=3, points=20, time_zone="Europe/Paris")
    message.activity.MergeFrom(campaigns_pb.Activity(activity_id="a-1", member_id="m-1", **fields))
    message.activity.occur_time.FromSeconds(1_800_000_000)
    return message


def test_a_purchase_carries_its_amount_attributes_in_order_and_its_record_time() -> None:
    message = activity(
        type="purchase",
        purchase=campaigns_pb.Purchase(amount_minor=1250),
        attributes={"store": "lyon", "channel": "app"},
    )
    message.record_time.FromSeconds(1_800_000_060)
    assert campaigns.item_of(message) == FeedItem(
        3,
        [
            ActivityEvent(
                "a-1",
                "m-1",
                "purchase",
                1_800_000_000_000_000,
                points=20,
                time_zone="Europe/Paris",
                amount_minor=1250,
                attributes=(("channel", "app"), ("store", "lyon")),
            )
        ],
        1_800_000_060_000_000,
    )


def test_a_refund_names_its_purchase_and_an_unset_record_time_is_unknown() -> None:
    message = activity(
        type="refund", refund=campaigns_pb.Refund(purchase_activity_id="a-0", amount_minor=300)
    )
    (event,) = campaigns.item_of(message).value
    assert (event.amount_minor, event.refunds_activity_id, event.attributes) == (300, "a-0", ())
    assert campaigns.item_of(message).at_us == 0


def test_an_activity_without_a_member_moves_the_cursor_only() -> None:
    message = activity(type="app_login")
    message.activity.member_id = ""
    assert campaigns.item_of(message) == FeedItem(3, [], 0)


def play(**fields) -> games_pb.WatchPlaysResponse:
    fields = {
        "play_id": "s-1",
        "member_id": "m-1",
        "game_id": "daily",
        "kind": games_pb.PLAY_KIND_SPIN,
        "status": games_pb.PLAY_STATUS_SETTLED,
        **fields,
    }
    message = games_pb.WatchPlaysResponse(sequence=5, play=games_pb.Play(**fields))
    message.play.create_time.FromSeconds(1_800_000_000)
    return message


def test_a_settled_spin_counts_at_its_create_time_with_the_points_it_won() -> None:
    message = play(prize=games_pb.Prize(points=20))
    assert games.item_of(message) == FeedItem(
        5,
        [PlayEvent("s-1", "m-1", PlayKind.SPIN, "daily", 1_800_000_000_000_000, points_won=20)],
        1_800_000_000_000_000,
    )


def test_a_prize_item_or_nothing_wins_no_points() -> None:
    coffee = games_pb.Prize(item=games_pb.PrizeItem(unit="prize:free-coffee", quantity=1))
    for message in (play(prize=coffee), play()):
        (event,) = games.item_of(message).value
        assert event.points_won == 0


def test_a_fallback_spin_is_a_spin_and_a_catch_carries_its_score() -> None:
    (fallback,) = games.item_of(play(status=games_pb.PLAY_STATUS_FALLBACK, reason="SOLD_OUT")).value
    assert fallback.kind is PlayKind.SPIN
    (caught,) = games.item_of(
        play(kind=games_pb.PLAY_KIND_CATCH, score=340, prize=games_pb.Prize(points=34))
    ).value
    assert (caught.kind, caught.score, caught.points_won) == (PlayKind.CATCH, 340, 34)


def test_refused_pending_and_unknown_results_move_the_cursor_only() -> None:
    for message in (
        play(status=games_pb.PLAY_STATUS_REJECTED, reason="INSUFFICIENT_POINTS"),
        play(status=games_pb.PLAY_STATUS_PENDING),
        play(status=games_pb.PLAY_STATUS_UNSPECIFIED),
        play(kind=games_pb.PLAY_KIND_UNSPECIFIED),
        play(member_id=""),
    ):
        assert games.item_of(message) == FeedItem(5, [], 1_800_000_000_000_000)
