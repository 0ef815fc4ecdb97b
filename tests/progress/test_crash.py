"""SIGKILL of the progress process while it catches up on the ledger's feed
(real processes, started through tools/suite.py's Suite), restarted on the
same database (a SQLite file, a PostgreSQL schema): every count exact, every
badge bonus paid once, checked against the ledger itself."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc
from loyalty.progress.v1 import progress_service_pb2 as pb
from loyalty.progress.v1 import progress_service_pb2_grpc as progress_grpc

from tests.support.ledger import history, open_program, post, posted, wallet_request
from tests.support.progress import apply
from tools.suite import Suite

pytestmark = pytest.mark.slow

TIMEOUT = 10.0
MEMBERS = [f"m-{n}" for n in range(12)]
SENTINEL = "m-last"
CREDITS_EACH = 1000
POINTS = 10
LEVELS = ((100, 1), (500, 5), (1_000, 10))
SPENDER = {
    "id": "spender",
    "badge": {
        "displayName": "Spender",
        "rule": {"measure": "MEASURE_POINTS_EARNED"},
        "levels": [
            {"levelId": f"l{n}", "threshold": str(threshold), "bonusPoints": str(bonus)}
            for n, (threshold, bonus) in enumerate(LEVELS)
        ],
        "budgetId": "rewards",
    },
}


async def feed_cursor(stub) -> int:
    status = await stub.GetFeedStatus(pb.GetFeedStatusRequest(), timeout=TIMEOUT)
    return next(f.cursor for f in status.feeds if f.feed == "ledger")


async def achievements(progress, member: str, count: int) -> list[pb.Achievement]:
    """The member's first `count` achievements, as progress records them."""
    stream = progress.WatchAchievements(pb.WatchAchievementsRequest(member_id=member), timeout=60)
    found = [(await asyncio.wait_for(stream.read(), 60)).achievement for _ in range(count)]
    stream.cancel()
    return found


async def bonuses_after(ledger, after: int, count: int) -> list[ledger_pb.Transfer]:
    """The first `count` BONUS transfers the ledger commits after `after`."""
    stream = ledger.WatchTransfers(
        ledger_pb.WatchTransfersRequest(after_sequence=after), timeout=60
    )
    found = []
    while len(found) < count:
        transfer = (await asyncio.wait_for(stream.read(), 60)).transfer
        if transfer.code == ledger_pb.TRANSFER_CODE_BONUS:
            found.append(transfer)
    stream.cancel()
    return found


@dataclass
class Behind:
    """Progress restarted behind every credit (`last` the sentinel's sequence)."""

    suite: Suite
    ledger: ledger_grpc.LedgerServiceStub
    progress: progress_grpc.ProgressServiceStub
    process: Any
    last: int


@contextlib.asynccontextmanager
async def restarted_behind(tmp_path, progress_db, catch_up_lag: str) -> AsyncIterator[Behind]:
    """Progress stopped while the ledger takes every credit, then started again:
    it catches up 5 events a transaction."""
    suite = Suite(
        tmp_path / "data",
        env={"PROGRESS_FEED_BATCH": "5", "PROGRESS_CATCH_UP_LAG_SECONDS": catch_up_lag},
        log_dir=tmp_path / "logs",
        databases={"progress": progress_db},
    )
    try:
        await suite.start("ledger")
        process = await suite.start("progress")
        async with (
            grpc.aio.insecure_channel(suite.target("ledger")) as ledger_channel,
            grpc.aio.insecure_channel(suite.target("progress")) as progress_channel,
        ):
            ledger = ledger_grpc.LedgerServiceStub(ledger_channel)
            progress = progress_grpc.ProgressServiceStub(progress_channel)
            await set_up(ledger, progress)
            await process.stop()
            last = await credit_everyone(ledger)
            process = await suite.start("progress")
            yield Behind(suite, ledger, progress, process, last)
    finally:
        await suite.stop_all()


async def test_sigkill_mid_feed_then_restart_counts_exactly_once(tmp_path, progress_db) -> None:
    # Evaluated batch by batch: the backlog never counts as one to defer.
    async with restarted_behind(tmp_path, progress_db, "86400") as behind:
        # Killed once under way: when the second member's first badge level is
        # recorded, long before the end.
        await achievements(behind.progress, MEMBERS[1], 1)
        await behind.process.kill()
        await behind.suite.start("progress")
        resumed = await feed_cursor(behind.progress)
        assert CREDITS_EACH <= resumed < behind.last, (resumed, behind.last)
        await achievements(behind.progress, SENTINEL, 1)
        await check_counted_once(behind.ledger, behind.progress, behind.last)


async def test_sigkill_while_catching_up_then_restart_counts_exactly_once(
    tmp_path, progress_db
) -> None:
    # Any queued event is a backlog's: evaluation deferred until it is read.
    async with restarted_behind(tmp_path, progress_db, "0") as behind:
        # Killed a fifth of the way through, while it is catching up: facts and
        # cursor stored, members waiting to be evaluated.
        status = await ledger_status(behind.progress, lambda s: s.applied >= behind.last // 5)
        assert status.catching_up and status.applied < behind.last, status
        await behind.process.kill()
        await behind.suite.start("progress")
        await achievements(behind.progress, SENTINEL, 1)
        await ledger_status(behind.progress, lambda s: s.cursor >= behind.last)
        await check_counted_once(behind.ledger, behind.progress, behind.last)


async def ledger_status(progress, condition) -> pb.FeedStatus:
    """The ledger feed's status once `condition` holds, asked every 10 ms (there
    is no stream of it): what is found does not depend on how often."""
    for _ in range(6_000):
        status = await progress.GetFeedStatus(pb.GetFeedStatusRequest(), timeout=TIMEOUT)
        (found,) = [feed for feed in status.feeds if feed.feed == "ledger"]
        if condition(found):
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"the ledger feed never got there: {found}")


async def set_up(ledger, progress) -> None:
    """The program's accounts, the badge and its budget."""
    await open_program(ledger)
    await apply(progress, SPENDER)
    await progress.FundBudget(
        pb.FundBudgetRequest(budget_id="rewards", points=10_000, request_id="f1"),
        timeout=TIMEOUT,
    )


async def credit_everyone(ledger, credits_each: int = CREDITS_EACH) -> int:
    """`credits_each` credits of POINTS to every member, then the sentinel's: the
    sequence of that last transfer."""
    for member in MEMBERS:
        await ledger.OpenAccount(wallet_request(member), timeout=TIMEOUT)
        await ledger.PostTransfers(
            ledger_pb.PostTransfersRequest(
                transfers=[
                    ledger_pb.Transfer(
                        id=f"earn:{member}:{n}",
                        debit_account_id="program:issuance",
                        credit_account_id=member,
                        amount=POINTS,
                        code=ledger_pb.TRANSFER_CODE_EARN,
                        kind=ledger_pb.TRANSFER_KIND_POSTED,
                    )
                    for n in range(credits_each)
                ]
            ),
            timeout=TIMEOUT,
        )
    # The last transfer of all earns a sentinel member a badge: once progress has
    # recorded that, it has applied everything before it (the feed is in order).
    await ledger.OpenAccount(wallet_request(SENTINEL), timeout=TIMEOUT)
    (result,) = await post(
        ledger, posted("earn:sentinel", "program:issuance", SENTINEL, LEVELS[0][0])
    )
    return result.transfer.sequence


async def check_counted_once(ledger, progress, last: int, credits_each: int = CREDITS_EACH) -> None:
    """Every member's badge counts each credit once, every level's bonus is in the
    ledger once, and nothing differs from a rebuild."""
    paid = await bonuses_after(ledger, last - 1, len(MEMBERS) * len(LEVELS) + 1)
    assert Counter(t.credit_account_id for t in paid) == Counter(
        {member: len(LEVELS) for member in MEMBERS} | {SENTINEL: 1}
    )
    for member in MEMBERS:
        found = await progress.GetMemberProgress(
            pb.GetMemberProgressRequest(member_id=member), timeout=TIMEOUT
        )
        (badge,) = found.badges
        assert badge.value == credits_each * POINTS
        assert all(level.earned for level in badge.levels)
        rebuilt = await progress.RebuildMember(
            pb.RebuildMemberRequest(member_id=member), timeout=TIMEOUT
        )
        assert list(rebuilt.differences) == []
        # The ledger holds each bonus exactly once.
        entries = await history(ledger, member)
        bonuses = Counter(
            e.transfer.amount for e in entries if e.transfer.code == ledger_pb.TRANSFER_CODE_BONUS
        )
        assert bonuses == Counter(bonus for _, bonus in LEVELS), (member, bonuses)
