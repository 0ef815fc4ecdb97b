"""Batches that wait for the writer together share one unit of work: over a real
temporary store, what they commit is exactly what the same batches commit one
call after another, and a batch that breaks the shared work fails alone."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from contextlib import closing

import pytest

from services.kit.clock import MICROS_PER_SECOND, ManualClock
from services.ledger import domain
from services.ledger.domain import (
    Result,
    TransferCode,
    TransferKind,
    TransferRequest,
)
from services.ledger.store import LedgerStore
from tests.support.ledger import SERVICE_WALLETS, moved, open_service

WALLETS = SERVICE_WALLETS


def batches_for(seed: int, now: int) -> list[list[TransferRequest]]:
    """Earns (some already expired), spends, chains that fail, holds posted and
    voided and reversals of transfers posted a few batches earlier, retries."""
    rng = random.Random(seed)
    batches: list[list[TransferRequest]] = []
    made: list[str] = []
    holds: list[str] = []
    for n in range(120):
        wallet, other = rng.sample(WALLETS, 2)
        shape = rng.choice(("earn", "earn", "spend", "chain", "hold", "end", "reverse", "retry"))
        if shape == "earn":
            life = rng.choice((None, -1, 30))
            expires = None if life is None else now + life * MICROS_PER_SECOND
            batch = [moved(f"e{n}", "iss", wallet, rng.randint(1, 40), expires_at=expires)]
            made.append(f"e{n}")
        elif shape == "spend":
            batch = [moved(f"s{n}", wallet, other, rng.randint(1, 30), code=TransferCode.REDEEM)]
        elif shape == "chain":
            first = moved(f"c{n}a", wallet, other, rng.randint(1, 60), linked=True)
            batch = [first, moved(f"c{n}b", other, "brk", rng.randint(1, 60))]
        elif shape == "hold":
            batch = [moved(f"h{n}", wallet, "brk", rng.randint(1, 20), kind=TransferKind.PENDING)]
            holds.append(f"h{n}")
        elif shape == "end" and holds:
            kind = rng.choice((TransferKind.POST_PENDING, TransferKind.VOID_PENDING))
            batch = [TransferRequest(id=f"p{n}", kind=kind, pending_id=rng.choice(holds))]
        elif shape == "reverse" and made:
            reverses = rng.choice(made[-5:])
            batch = [
                TransferRequest(
                    id=f"r{n}", kind=TransferKind.REVERSAL, reverses_id=reverses, amount=1
                )
            ]
        elif shape == "retry" and batches:
            batch = rng.choice(batches)
        else:
            batch = [moved(f"x{n}", "iss", wallet, 1)]
        batches.append(batch)
    return batches


def rows(store: LedgerStore) -> dict[str, list]:
    with closing(sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)) as db:
        return {
            table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("transfers", "accounts", "lots", "holds")
        }


def shape_of(outcomes) -> list[tuple]:
    return [(o.index, o.id, o.result, o.field, o.transfer) for o in outcomes]


@pytest.mark.parametrize("seed", range(4))
async def test_shared_work_commits_what_one_call_after_another_commits(tmp_path, seed):
    clock = ManualClock()
    together, together_service = await open_service(tmp_path / "together.db", clock)
    apart, apart_service = await open_service(tmp_path / "apart.db", clock)
    writes = 0
    write = together.write

    async def counted(work):
        nonlocal writes
        writes += 1
        return await write(work)

    together.write = counted
    try:
        batches = batches_for(seed, clock.now_us())
        shared = await asyncio.gather(*(together_service.post_transfers(b) for b in batches))
        for batch, outcomes in zip(batches, shared, strict=True):
            assert shape_of(outcomes) == shape_of(await apart_service.post_transfers(batch))
        assert writes < len(batches) / 2, "the batches shared units of work"
        assert rows(together) == rows(apart)
    finally:
        await together.close()
        await apart.close()


async def test_a_batch_that_breaks_the_shared_work_fails_alone(tmp_path, monkeypatch):
    store, service = await open_service(tmp_path / "ledger.db", ManualClock())
    post = domain.Book.post

    def breaks_on_boom(book, requests):
        if any(request.id == "boom" for request in requests):
            raise RuntimeError("a bug for this batch only")
        return post(book, requests)

    monkeypatch.setattr(domain.Book, "post", breaks_on_boom)
    try:
        outcomes = await asyncio.gather(
            *(service.post_transfers([moved(f"ok{n}", "iss", "w1", 1)]) for n in range(5)),
            service.post_transfers([moved("boom", "iss", "w1", 1)]),
            *(service.post_transfers([moved(f"later{n}", "iss", "w1", 1)]) for n in range(5)),
            return_exceptions=True,
        )
        assert isinstance(outcomes[5], RuntimeError)
        others = outcomes[:5] + outcomes[6:]
        assert all(result[0].result == Result.OK for result in others), others
        assert (await service.get_account("w1", None)).account.balance == 10
    finally:
        await store.close()
