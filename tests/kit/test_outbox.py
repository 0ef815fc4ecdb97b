"""The kit's outbox over a real temporary SQLite store and a real ledger: an
entry closes in the same transaction as what it means, whoever settles it."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3

import grpc
import pytest
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb
from loyalty.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

from services.kit.clock import ManualClock
from services.kit.errors import Unavailable
from services.kit.ledger_stream import StreamPoster
from services.kit.metrics import Metrics
from services.kit.outbox import (
    OUTBOX_KINDS_MIGRATION,
    OUTBOX_MIGRATION,
    POLICY,
    LedgerOutbox,
    Settlement,
    SqliteOutbox,
    watch_backlog,
)
from services.kit.sqlite import SqliteStore
from tests.support.ledger import NEVER_SECONDS, balance, fund, history, posted
from tools.suite import Suite

AWARD = "award"
LANES = 32
KILL_AFTER = 200
AWARDS_MIGRATION = "CREATE TABLE awards (award_id TEXT PRIMARY KEY, state TEXT NOT NULL);"


class AwardsUnit:
    """A service's unit in miniature: one table of its own and the outbox."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self.outbox = SqliteOutbox(connection)

    def record_award(self, award_id: str, request: ledger_pb.PostTransfersRequest, now_us: int):
        self._db.execute("INSERT INTO awards VALUES (?, 'pending')", (award_id,))
        return self.outbox.record(award_id, AWARD, request, now_us)

    def schedule(self) -> tuple[int, int]:
        return self._db.execute("SELECT attempts, next_attempt_at FROM ledger_outbox").fetchone()

    def set_state(self, award_id: str, state: str) -> None:
        self._db.execute("UPDATE awards SET state = ? WHERE award_id = ?", (state, award_id))

    def state(self, award_id: str) -> str:
        return self._db.execute(
            "SELECT state FROM awards WHERE award_id = ?", (award_id,)
        ).fetchone()[0]


def apply_award(unit: AwardsUnit, settlement: Settlement) -> str:
    if settlement.answer is None:
        state = "failed"
    else:
        state = "paid" if settlement.answer.accepted else "refused"
    unit.set_state(settlement.entry.entry_id, state)
    return state


@pytest.fixture
async def store(tmp_path):
    store = SqliteStore(
        tmp_path / "awards.db",
        (AWARDS_MIGRATION, OUTBOX_MIGRATION, OUTBOX_KINDS_MIGRATION),
        AwardsUnit,
    )
    await store.open()
    yield store
    await store.close()


def outbox_for(store, ledger, stub=None, metrics: Metrics | None = None) -> LedgerOutbox:
    return LedgerOutbox(
        store,
        stub or ledger.stub,
        ledger.clock,
        {AWARD: apply_award},
        timeout=2.0,
        metrics=metrics,
    )


async def record(store, ledger, award_id: str, *transfers: ledger_pb.Transfer):
    request = ledger_pb.PostTransfersRequest(
        transfers=transfers or [posted(f"award:{award_id}", "program:issuance", "m-1", 10)]
    )
    now = ledger.clock.now_us()
    return await store.write(lambda unit: unit.record_award(award_id, request, now))


async def test_settling_posts_once_and_applies_in_the_same_transaction(store, ledger):
    await fund(ledger.stub, "m-1", 1, "seed")
    outbox = outbox_for(store, ledger)
    entry = await record(store, ledger, "a1")
    assert await outbox.settle(entry) == "paid"
    # A second settle (a retry, the relay) posts again (EXISTS) and applies nothing.
    assert await outbox.settle(entry) is None
    assert await store.read(lambda unit: unit.state("a1")) == "paid"
    assert await balance(ledger.stub, "m-1") == 11
    assert (await store.read(lambda unit: unit.outbox.backlog())).pending == 0


async def test_an_answer_the_process_never_applied_is_applied_by_recovery(store, ledger):
    """The process died after the ledger answered and before its own commit."""
    await fund(ledger.stub, "m-1", 5, "seed")
    entry = await record(store, ledger, "a1")
    await ledger.stub.PostTransfers(entry.request, timeout=5)
    assert await store.read(lambda unit: unit.state("a1")) == "pending"
    assert await outbox_for(store, ledger).recover() == 1
    assert await store.read(lambda unit: unit.state("a1")) == "paid"
    assert await balance(ledger.stub, "m-1") == 15


async def test_a_malformed_request_closes_the_entry_as_failed(store, ledger):
    entry = await record(store, ledger, "a1", posted("x", "", "m-1", 1))
    assert await outbox_for(store, ledger).settle(entry) == "failed"
    backlog = await store.read(lambda unit: unit.outbox.backlog())
    assert backlog.pending == 0
    # The relay does not post it again.
    ledger.clock.advance(3600)
    assert await outbox_for(store, ledger).relay_once() == 0


async def test_a_refused_chain_is_a_settlement_the_handler_decides(store, ledger):
    await fund(ledger.stub, "m-1", 1, "seed")
    entry = await record(store, ledger, "a1", posted("spend", "m-1", "program:issuance", 50))
    assert await outbox_for(store, ledger).settle(entry) == "refused"


async def test_an_unreachable_ledger_leaves_the_entry_to_the_relay_with_backoff(store, ledger):
    await fund(ledger.stub, "m-1", 1, "seed")
    entry = await record(store, ledger, "a1")
    async with grpc.aio.insecure_channel("127.0.0.1:1") as nowhere:
        away = outbox_for(store, ledger, ledger_grpc.LedgerServiceStub(nowhere))
        with pytest.raises(Unavailable):
            await away.settle(entry, attempts=1)
        # Inside its grace period the entry belongs to its own request.
        assert await away.relay_once() == 0
        ledger.clock.advance(POLICY.grace_us / 1e6)
        assert await away.relay_once() == 0
        due = await store.read(lambda unit: unit.schedule())
        assert due == (1, ledger.clock.now_us() + POLICY.backoff_us(1))
    # Not due yet for the next attempt: the relay leaves it.
    outbox = outbox_for(store, ledger)
    assert await outbox.relay_once() == 0
    ledger.clock.advance(POLICY.backoff_us(1) / 1e6)
    assert await outbox.relay_once() == 1
    assert await store.read(lambda unit: unit.state("a1")) == "paid"


async def test_a_handler_that_fails_leaves_its_entry_pending_and_the_others_go_on(store, ledger):
    await fund(ledger.stub, "m-1", 1, "seed")
    await record(store, ledger, "a1")
    await record(store, ledger, "a2")
    calls = []

    def flaky(unit, settlement):
        calls.append(settlement.entry.entry_id)
        if settlement.entry.entry_id == "a1":
            raise RuntimeError("a bug in a handler")
        return apply_award(unit, settlement)

    outbox = LedgerOutbox(store, ledger.stub, ledger.clock, {AWARD: flaky})
    assert await outbox.recover() == 1
    assert calls == ["a1", "a2"]
    assert await store.read(lambda unit: unit.state("a1")) == "pending"
    assert await store.read(lambda unit: unit.state("a2")) == "paid"
    assert (await store.read(lambda unit: unit.outbox.backlog())).pending == 1


async def test_settling_through_a_stream_posts_once_and_applies_once(store, ledger):
    await fund(ledger.stub, "m-1", 1, "seed")
    poster = StreamPoster(ledger.stub)
    try:
        outbox = outbox_for(store, ledger, poster)
        entries = [await record(store, ledger, f"a{n}") for n in range(20)]
        assert await asyncio.gather(*(outbox.settle(e) for e in entries)) == ["paid"] * 20
        assert poster.streams_opened == 1
        # Settling again (a retry, the relay) posts again (EXISTS) and applies nothing.
        assert await outbox.settle(entries[0]) is None
        assert await balance(ledger.stub, "m-1") == 1 + 20 * 10
    finally:
        await poster.close()


async def test_an_answer_lost_with_its_stream_is_settled_by_the_relay(store, ledger):
    """The stream breaks while the entry waits: UNAVAILABLE, the entry stays pending,
    and the relay posts the same ids again: paid once."""
    await fund(ledger.stub, "m-1", 1, "seed")
    poster = StreamPoster(ledger.stub)
    try:
        outbox = outbox_for(store, ledger, poster)
        entry = await record(store, ledger, "a1")
        settling = asyncio.ensure_future(outbox.settle(entry, attempts=1))
        await asyncio.sleep(0)
        await poster.reset()
        try:
            settled = await settling
        except Unavailable:
            settled = None
        ledger.clock.advance(POLICY.grace_us / 1e6)
        relayed = await outbox.relay_once()
        assert (settled, relayed) in (("paid", 0), (None, 1))
        assert await store.read(lambda unit: unit.state("a1")) == "paid"
        assert await balance(ledger.stub, "m-1") == 11
    finally:
        await poster.close()


async def test_an_entry_recovery_could_not_settle_is_tried_again_after_its_backoff(store, ledger):
    """Recovery claims every pending entry whatever its schedule; an entry it could
    not settle (the ledger away at start) is due again one backoff from now, not
    one backoff after the end of time."""
    await fund(ledger.stub, "m-1", 1, "seed")
    await record(store, ledger, "a1")
    async with grpc.aio.insecure_channel("127.0.0.1:1") as nowhere:
        away = outbox_for(store, ledger, ledger_grpc.LedgerServiceStub(nowhere))
        assert await away.recover() == 0
    assert await store.read(lambda unit: unit.schedule()) == (
        1,
        ledger.clock.now_us() + POLICY.backoff_us(1),
    )
    ledger.clock.advance(POLICY.backoff_us(1) / 1e6)
    assert await outbox_for(store, ledger).relay_once() == 1
    assert await store.read(lambda unit: unit.state("a1")) == "paid"


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_the_relay_counts_its_retries_by_kind_and_outcome(store, ledger):
    await fund(ledger.stub, "m-1", 1, "seed")
    metrics = Metrics()
    await record(store, ledger, "a1")
    async with grpc.aio.insecure_channel("127.0.0.1:1") as nowhere:
        away = outbox_for(store, ledger, ledger_grpc.LedgerServiceStub(nowhere), metrics)
        assert await away.recover() == 0
    retries = "loyalty_outbox_relay_retries_total"
    assert _value(metrics, retries, kind=AWARD, outcome="deferred") == 1
    ledger.clock.advance(POLICY.backoff_us(1) / 1e6)
    assert await outbox_for(store, ledger, metrics=metrics).relay_once() == 1
    assert _value(metrics, retries, kind=AWARD, outcome="settled") == 1
    # A settlement by the entry's own request is no retry.
    entry = await record(store, ledger, "a2")
    await outbox_for(store, ledger, metrics=metrics).settle(entry)
    assert _value(metrics, retries, kind=AWARD, outcome="settled") == 1


async def test_the_backlog_shows_what_is_pending_and_how_old_the_oldest_is(store, ledger):
    metrics = Metrics(cache_seconds=0)
    watch_backlog(metrics, store, ledger.clock)
    await metrics.refresh()
    assert _value(metrics, "loyalty_outbox_pending") == 0
    assert _value(metrics, "loyalty_outbox_oldest_pending_age_seconds") == 0
    await record(store, ledger, "a1")
    ledger.clock.advance(30)
    await record(store, ledger, "a2")
    ledger.clock.advance(12)
    await metrics.refresh()
    assert _value(metrics, "loyalty_outbox_pending") == 2
    assert _value(metrics, "loyalty_outbox_oldest_pending_age_seconds") == 42
    # The age is the clock's at every scrape, whatever was read when.
    ledger.clock.advance(8)
    assert _value(metrics, "loyalty_outbox_oldest_pending_age_seconds") == 50


async def test_a_ledger_process_killed_under_a_stream_loses_nothing_and_doubles_nothing(
    store, tmp_path
):
    """SIGKILL the ledger process while entries wait on the stream for answers: those
    answers are lost (UNAVAILABLE, the entries stay pending, whether or not the ledger
    committed them), and once it is back the relay posts the same ids again: every
    award is paid, and paid once."""
    clock = ManualClock()
    suite = Suite(
        tmp_path / "data",
        log_dir=tmp_path / "logs",
        env={"LEDGER_SWEEP_INTERVAL_SECONDS": str(NEVER_SECONDS), "LOG_LEVEL": "warning"},
    )
    process = await suite.start("ledger")
    channel = grpc.aio.insecure_channel(process.target)
    stub = ledger_grpc.LedgerServiceStub(channel)
    poster = StreamPoster(stub, reopen_after_seconds=0)
    try:
        await fund(stub, "m-1", 1, "seed")
        outbox = LedgerOutbox(store, poster, clock, {AWARD: apply_award}, timeout=10.0)
        awards: list[str] = []
        settled = 0
        enough = asyncio.Event()

        async def lane(number: int) -> None:
            """Record an award and settle it, again and again, until the ledger is away."""
            nonlocal settled
            for n in itertools.count():
                award = f"a{number}-{n}"
                awards.append(award)
                entry = await store.write(
                    lambda unit, award=award: unit.record_award(
                        award,
                        ledger_pb.PostTransfersRequest(
                            transfers=[posted(f"award:{award}", "program:issuance", "m-1", 10)]
                        ),
                        clock.now_us(),
                    )
                )
                try:
                    assert await outbox.settle(entry, attempts=1) == "paid"
                except Unavailable:
                    return  # this entry's answer is lost: it stays pending
                settled += 1
                if settled >= KILL_AFTER:
                    enough.set()

        lanes = [asyncio.ensure_future(lane(number)) for number in range(LANES)]
        await asyncio.wait_for(enough.wait(), 60)
        await process.kill()
        await asyncio.wait_for(asyncio.gather(*lanes), 60)
        # Each lane ends on the entry whose answer the kill took (committed or not).
        lost = (await store.read(lambda unit: unit.outbox.backlog())).pending
        assert lost == LANES

        await suite.start("ledger")
        await asyncio.wait_for(channel.channel_ready(), 30)
        clock.advance(POLICY.grace_us / 1e6)
        assert await asyncio.wait_for(outbox.relay_once(), 60) == lost
        assert poster.streams_opened == 2
        states = await store.read(lambda unit: [unit.state(award) for award in awards])
        assert states == ["paid"] * len(awards)
        assert (await store.read(lambda unit: unit.outbox.backlog())).pending == 0
        assert await balance(stub, "m-1") == 1 + 10 * len(awards)
        ids = [entry.transfer.id for entry in await history(stub, "m-1")]
        assert sorted(ids) == sorted(["seed", *(f"award:{award}" for award in awards)])
    finally:
        await poster.close()
        await channel.close()
        await suite.stop_all()
