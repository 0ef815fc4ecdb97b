"""The writer's cache of accounts and open lots over a real temporary store: after
every write it equals the database, and whatever rolls back clears it."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from contextlib import closing

import pytest

from services.kit.clock import MICROS_PER_SECOND, ManualClock
from services.ledger.domain import (
    Result,
    TransferCode,
    TransferKind,
    TransferRequest,
)
from services.ledger.store import LedgerStore
from tests.support.ledger import SERVICE_WALLETS, moved, open_service

WALLETS = SERVICE_WALLETS


@pytest.fixture
async def ledger(tmp_path):
    clock = ManualClock()
    store, service = await open_service(tmp_path / "ledger.db", clock)
    yield store, service, clock
    await store.close()


def assert_cache_matches_database(store: LedgerStore) -> None:
    with closing(sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)) as db:
        for account_id, account in store.cache.accounts.items():
            row = db.execute(
                "SELECT debits_pending, debits_posted, credits_pending, credits_posted, closed_at"
                " FROM accounts WHERE id = ?",
                (account_id,),
            ).fetchone()
            cached = (
                account.debits_pending,
                account.debits_posted,
                account.credits_pending,
                account.credits_posted,
                account.closed_at,
            )
            assert cached == row, account_id
        for account_id, lots in store.cache.open_lots.items():
            rows = db.execute(
                "SELECT sequence, remaining, expires_at FROM lots"
                " WHERE account_id = ? AND remaining > 0",
                (account_id,),
            ).fetchall()
            cached = sorted((lot.sequence, lot.remaining, lot.expires_at) for lot in lots.values())
            assert cached == sorted(rows), account_id
            assert all(sequence == lot.sequence for sequence, lot in lots.items())
        if store.cache.last is not None:
            assert (
                store.cache.last
                == db.execute(
                    "SELECT sequence, created_at FROM transfers ORDER BY sequence DESC LIMIT 1"
                ).fetchone()
            )


request = moved


async def test_the_cache_follows_every_kind_of_write(ledger):
    """Earns with and without expiry, spends, holds posted and voided, reversals,
    expiry on debit and by the sweep, a closed account: after each, the cache is the
    database."""
    store, service, clock = ledger
    rng = random.Random(7)
    holds: list[str] = []
    posted: list[str] = []
    for step in range(300):
        now = clock.now_us()
        shape = rng.choice(("earn", "earn", "spend", "hold", "post", "void", "reverse", "sweep"))
        wallet, other = rng.sample(WALLETS, 2)
        batch: list[TransferRequest] = []
        if shape == "earn":
            life = rng.choice((None, 5, 50))
            batch.append(
                request(
                    f"e{step}",
                    "iss",
                    wallet,
                    rng.randint(1, 30),
                    expires_at=None if life is None else now + life * MICROS_PER_SECOND,
                )
            )
            posted.append(f"e{step}")
        elif shape == "spend":
            batch.append(
                request(f"s{step}", wallet, other, rng.randint(1, 20), code=TransferCode.REDEEM)
            )
            batch.append(request(f"s{step}b", other, "brk", 1, code=TransferCode.REDEEM))
            batch[0].linked = True
        elif shape == "hold":
            batch.append(
                request(
                    f"h{step}",
                    wallet,
                    "brk",
                    rng.randint(1, 15),
                    kind=TransferKind.PENDING,
                    timeout_us=rng.choice((0, 20 * MICROS_PER_SECOND)),
                )
            )
            holds.append(f"h{step}")
        elif shape in ("post", "void") and holds:
            kind = TransferKind.POST_PENDING if shape == "post" else TransferKind.VOID_PENDING
            batch.append(
                TransferRequest(
                    id=f"p{step}", kind=kind, pending_id=holds.pop(rng.randrange(len(holds)))
                )
            )
        elif shape == "reverse" and posted:
            batch.append(
                TransferRequest(
                    id=f"r{step}",
                    kind=TransferKind.REVERSAL,
                    reverses_id=rng.choice(posted),
                    amount=1,
                )
            )
        elif shape == "sweep":
            await service.sweep()
        if batch:
            await service.post_transfers(batch)
        clock.advance(rng.choice((0, 1, 10)))
        assert_cache_matches_database(store)
    assert store.cache.accounts, "the writer kept accounts"
    await service.close_account("w3")
    assert_cache_matches_database(store)
    (outcome,) = await service.post_transfers([request("after-close", "iss", "w3", 1)])
    assert outcome.result == Result.ACCOUNT_CLOSED


async def test_a_write_that_fails_after_changing_cached_accounts_clears_the_cache(ledger):
    store, service, _ = ledger
    await service.post_transfers([request("seed", "iss", "w1", 50)])
    assert "w1" in store.cache.accounts

    def fails_after_saving(unit):
        book = unit.load_for_batch([request("lost", "w1", "w2", 20)], 0)
        book.post([request("lost", "w1", "w2", 20)])
        unit.save(book)
        raise RuntimeError("a bug after the rules ran")

    with pytest.raises(RuntimeError):
        await store.write(fails_after_saving)
    assert store.cache.accounts == {} and store.cache.last is None
    (outcome,) = await service.post_transfers([request("spend", "w1", "w2", 50)])
    assert outcome.result == Result.OK
    view = await service.get_account("w1", None)
    assert view.account.balance == 0
    assert_cache_matches_database(store)


async def test_a_group_whose_commit_fails_clears_the_cache(ledger):
    """Every request of a group fails with its COMMIT; the next write reads the database."""
    store, service, _ = ledger
    await service.post_transfers([request("seed", "iss", "w1", 50)])

    def breaks_the_commit(unit):
        # Deferred to COMMIT, where this dangling lot fails the whole group.
        unit._db.execute("PRAGMA defer_foreign_keys=ON")
        unit._db.execute("INSERT INTO lots VALUES (999999, 'nobody', 1, NULL)")

    results = await asyncio.gather(
        service.post_transfers([request("in-the-group", "w1", "w2", 30)]),
        store.write(breaks_the_commit),
        return_exceptions=True,
    )
    assert all(isinstance(result, sqlite3.IntegrityError) for result in results), results
    assert store.cache.accounts == {}
    (outcome,) = await service.post_transfers([request("again", "w1", "w2", 50)])
    assert outcome.result == Result.OK
    assert (await service.get_account("w2", None)).account.balance == 50
    assert_cache_matches_database(store)


async def test_the_cache_stays_bounded(ledger):
    store, service, _ = ledger
    store.cache.limit = 2
    await service.post_transfers([request("a", "iss", "w1", 5), request("b", "iss", "w2", 5)])
    assert len(store.cache.accounts) > 2
    await service.post_transfers([request("c", "iss", "w3", 5)])
    assert len(store.cache.accounts) <= 3
    assert_cache_matches_database(store)
