"""Progress through gRPC: real servers on port 0, the real ledger, fake
campaigns and games feeds, one ManualClock; every wait has a deadline."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.progress.v1 import progress_service_pb2 as pb

from services.kit.status import error_info, field_violations
from tests.support.ledger import history, post
from tests.support.progress import (
    CLUB,
    REVIEWER,
    TIMEOUT,
    apply,
    at,
    caught_up,
    definition,
    earn,
)


async def test_definitions_are_versioned_and_idempotent(running) -> None:
    first = await apply(running.progress, CLUB)
    again = await apply(running.progress, CLUB)
    assert (first.changed, again.changed, again.definition.version) == (True, False, 1)
    changed = dict(CLUB, tierProgram={**CLUB["tierProgram"], "displayName": "The Club"})
    assert (await apply(running.progress, changed)).definition.version == 2
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await running.progress.ApplyDefinition(
            pb.ApplyDefinitionRequest(definition=definition(CLUB), expected_version=1),
            timeout=TIMEOUT,
        )
    assert error_info(raised.value).reason == "VERSION_MISMATCH"
    archived = await running.progress.ArchiveDefinition(
        pb.ArchiveDefinitionRequest(id="club"), timeout=TIMEOUT
    )
    assert archived.definition.state == pb.DEFINITION_STATE_ARCHIVED
    listed = await running.progress.ListDefinitions(
        pb.ListDefinitionsRequest(kind=pb.DEFINITION_KIND_TIER_PROGRAM), timeout=TIMEOUT
    )
    assert [d.id for d in listed.definitions] == ["club"]


async def test_bad_definition_names_its_fields(running) -> None:
    bad = {"id": "x", "tierProgram": {"timeZone": "Mars/Olympus", "tiers": []}}
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await apply(running.progress, bad)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = field_violations(raised.value)
    assert {
        "definition.tier_program.display_name",
        "definition.tier_program.time_zone",
        "definition.tier_program.tiers",
        "definition.tier_program.window",
    } <= set(fields)


async def test_points_from_the_ledger_make_a_tier_and_the_change_is_streamed(running) -> None:
    await apply(running.progress, CLUB)
    await earn(running.ledger, "activity:a1:base", "m-1", 600, "a1")
    sequence = await earn(running.ledger, "activity:a2:base", "m-1", 600, "a2")
    await caught_up(running.host, "ledger", sequence)
    progress = await running.progress.GetMemberProgress(
        pb.GetMemberProgressRequest(member_id="m-1"), timeout=TIMEOUT
    )
    (status,) = progress.tiers
    assert (status.tier_id, status.qualifying_points) == ("silver", 1_200)
    assert (status.next_tier_id, status.points_to_next) == ("gold", 3_800)
    assert status.kept_until_time.ToMicroseconds() == at(2028, 1, 31)
    stream = running.progress.WatchTierChanges(
        pb.WatchTierChangesRequest(after_sequence=0), timeout=TIMEOUT
    )
    first = await asyncio.wait_for(stream.read(), TIMEOUT)
    stream.cancel()
    change = first.change
    assert (change.sequence, change.member_id, change.to_tier_id, change.upgrade) == (
        1,
        "m-1",
        "silver",
        True,
    )
    assert change.reason == pb.TIER_CHANGE_REASON_QUALIFIED
    # A refund clawed back pulls the member below silver; resuming after 1 shows only that.
    (result,) = await post(
        running.ledger,
        ledger_pb.Transfer(
            id="activity:r1:claw",
            kind=ledger_pb.TRANSFER_KIND_REVERSAL,
            code=ledger_pb.TRANSFER_CODE_CLAWBACK,
            reverses_transfer_id="activity:a2:base",
            amount=300,
        ),
    )
    await caught_up(running.host, "ledger", result.transfer.sequence)
    resumed = running.progress.WatchTierChanges(
        pb.WatchTierChangesRequest(after_sequence=1), timeout=TIMEOUT
    )
    second = await asyncio.wait_for(resumed.read(), TIMEOUT)
    resumed.cancel()
    assert (second.change.sequence, second.change.to_tier_id) == (2, "member")
    assert second.change.reason == pb.TIER_CHANGE_REASON_POINTS_REVERSED
    rebuilt = await running.progress.RebuildMember(
        pb.RebuildMemberRequest(member_id="m-1"), timeout=TIMEOUT
    )
    assert (rebuilt.events, list(rebuilt.differences)) == (3, [])


async def test_archiving_a_tier_program_announces_that_its_members_hold_none_of_its_tiers(
    running,
) -> None:
    await apply(running.progress, CLUB)
    sequence = await earn(running.ledger, "activity:a1:base", "m-1", 1_200, "a1")
    await caught_up(running.host, "ledger", sequence)
    await running.progress.ArchiveDefinition(
        pb.ArchiveDefinitionRequest(id="club"), timeout=TIMEOUT
    )
    stream = running.progress.WatchTierChanges(
        pb.WatchTierChangesRequest(after_sequence=1), timeout=TIMEOUT
    )
    archived = (await asyncio.wait_for(stream.read(), TIMEOUT)).change
    stream.cancel()
    assert (archived.sequence, archived.member_id, archived.from_tier_id, archived.to_tier_id) == (
        2,
        "m-1",
        "silver",
        "",
    )
    assert (archived.reason, archived.upgrade) == (pb.TIER_CHANGE_REASON_PROGRAM_ARCHIVED, False)
    assert list(archived.program_tier_ids) == ["member", "silver", "gold"]
    progress = await running.progress.GetMemberProgress(
        pb.GetMemberProgressRequest(member_id="m-1"), timeout=TIMEOUT
    )
    assert list(progress.tiers) == []


async def test_badge_bonus_is_paid_once_through_the_real_ledger(running) -> None:
    await apply(running.progress, REVIEWER)
    funded = await running.progress.FundBudget(
        pb.FundBudgetRequest(budget_id="rewards", points=1_000, request_id="fund-1"),
        timeout=TIMEOUT,
    )
    assert (funded.account_id, funded.balance) == ("progress:rewards:budget", 1_000)
    achievements = running.progress.WatchAchievements(
        pb.WatchAchievementsRequest(member_id="m-1"), timeout=TIMEOUT
    )
    for n in range(4):
        last = await running.upstream.activity(f"r{n}", "m-1", "product_review", at(2026, 3, 2, 9))
    await caught_up(running.host, "campaigns", last)
    seen = [await asyncio.wait_for(achievements.read(), TIMEOUT) for _ in range(2)]
    achievements.cancel()
    assert [(a.achievement.detail, a.achievement.bonus_points) for a in seen] == [
        ("bronze", 0),
        ("silver", 50),
    ]
    bonuses = [
        entry.transfer
        for entry in await history(running.ledger, "m-1")
        if entry.transfer.code == ledger_pb.TRANSFER_CODE_BONUS
    ]
    assert [(t.amount, t.debit_account_id) for t in bonuses] == [(50, "progress:rewards:budget")]
    progress = await running.progress.GetMemberProgress(
        pb.GetMemberProgressRequest(member_id="m-1"), timeout=TIMEOUT
    )
    (badge,) = progress.badges
    assert (badge.value, badge.progress_text, badge.next_level_id) == (4, "complete", "")


async def test_player_calls_refuse_bad_ids_and_feeds_report_their_status(running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await running.progress.GetMemberProgress(
            pb.GetMemberProgressRequest(member_id="no/slash"), timeout=TIMEOUT
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await running.upstream.play("s1", "m-1", at(2026, 3, 2, 9))
    await caught_up(running.host, "games", 1)
    status = await running.progress.GetFeedStatus(pb.GetFeedStatusRequest(), timeout=TIMEOUT)
    assert {(f.feed, f.cursor) for f in status.feeds} >= {("games", 1)}
