"""The spin use cases over a temporary SQLite store and a real ledger in the same
process (tests/support/ledger_stub.py): no gRPC, so each test says exactly which
commit, answer or failure it is about."""

from __future__ import annotations

from dataclasses import replace

import grpc
import pytest

from services.games.domain.records import PlayStatus, SpinStatus
from services.games.domain.wheel import Prize, Segment, WheelConfig
from services.kit.errors import FailedPrecondition, Unavailable
from services.kit.ids import GAMES_REVENUE_ACCOUNT
from tests.support import deadlines
from tests.support.ledger import balance, fund, post, posted

COST = 10
WHEEL = WheelConfig(
    display_name="Wheel",
    segments=(
        Segment("Try again", 50),
        Segment("20 points", 30, Prize(points=20)),
        Segment("Coffee", 20, Prize(unit="prize:free-coffee", quantity=1)),
    ),
    fallback_segment_index=0,
    cost_points=COST,
    spins_per_day=0,
    time_zone="Europe/Paris",
)


@pytest.fixture
async def wheel(rig):
    await rig.wheels.create_wheel("w", WHEEL)
    for unit in ("points", "prize:free-coffee"):
        await rig.wheels.stock_wheel("w", unit, 1_000, "initial")
    return rig


async def nonce(rig, member: str) -> int:
    return (await rig.seeds.get_seed_pair(member)).next_nonce


async def leave_pending(rig, member: str, request_id: str) -> None:
    """A spin drawn and recorded whose chain never reached the ledger."""
    await rig.spins.spin("w", member, "warm-up")  # the accounts opened, the balance seen
    rig.ledger.reachable = False
    with pytest.raises(Unavailable):
        await rig.spins.spin("w", member, request_id)


# SQLite's group commits; on PostgreSQL the signal also counts other replicas' wakes.
@pytest.mark.parametrize("engine", ["sqlite"])
async def test_a_spin_costs_two_local_commits(wheel):
    rig = wheel
    await fund(rig.ledger, "m-1", 100)
    await rig.spins.spin("w", "m-1", "warm-up")  # opens the ledger accounts, commits a seed pair
    before = rig.commits.count
    view = await rig.spins.spin("w", "m-1", "r-1")
    assert view.spin.status == SpinStatus.SETTLED
    # One to record the draw with its outbox entry; one to settle and apply it.
    assert rig.commits.count - before == 2


async def test_a_cost_the_ledger_refuses_rejects_the_spin_and_discloses_nothing(wheel):
    rig = wheel
    await fund(rig.ledger, "m-1", 20)
    first = await rig.spins.spin("w", "m-1", "r-1")
    # Spent elsewhere: the balance games saw last still covers a spin; the ledger does not.
    spent = first.points_balance
    (spend,) = await post(rig.ledger, posted("elsewhere", "m-1", GAMES_REVENUE_ACCOUNT, spent))
    assert spend.transfer.id == "elsewhere"
    with pytest.raises(FailedPrecondition) as refused:
        await rig.spins.spin("w", "m-1", "r-2")
    assert refused.value.reason == "INSUFFICIENT_POINTS"
    assert await nonce(rig, "m-1") == 1
    page = await rig.plays.list_plays("m-1", "", None, None, 50, "")
    unpaid = [p.entry for p in page.items if p.entry.play_id == refused.value.metadata["spin_id"]]
    assert [e.status for e in unpaid] == [PlayStatus.PENDING, PlayStatus.REJECTED]
    for entry in unpaid:
        assert entry.detail.proof.draw_value is None
        assert entry.detail.proof.drawn_index is None
        assert entry.detail.landed_index is None and entry.detail.prize is None
    assert unpaid[0].reason is None


async def test_a_request_the_ledger_calls_malformed_closes_it_and_blocks_no_one(wheel):
    rig = wheel
    await fund(rig.ledger, "m-1", 100)
    await rig.spins.spin("w", "m-1", "warm-up")
    rig.ledger.refuse_next["PostTransfers"] = grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(FailedPrecondition) as refused:
        await rig.spins.spin("w", "m-1", "r-1")
    assert refused.value.reason == "LEDGER_INVALID_ARGUMENT"
    assert (await rig.games.store.read(lambda unit: unit.outbox.backlog())).pending == 0
    # Not relayed again, and the member spins on with the same nonce.
    assert await rig.outbox.recover() == 0
    assert await nonce(rig, "m-1") == 1
    await rig.spins.spin("w", "m-1", "r-2")
    assert await nonce(rig, "m-1") == 2


async def test_an_answer_the_process_never_applied_is_applied_by_recovery(wheel):
    """The process died after the ledger committed the chain and before its own
    commit: recovery posts the same ids (EXISTS) and applies them once."""
    rig = wheel
    await fund(rig.ledger, "m-1", 100)
    await leave_pending(rig, "m-1", "r-1")
    rig.ledger.reachable = True
    pending = await rig.games.store.read(lambda unit: unit.pending_spin_of("m-1"))
    entry = await rig.games.store.read(lambda unit: unit.outbox.entry(pending.entry_id))
    await rig.ledger.PostTransfers(entry.request)
    assert await rig.outbox.recover() == 1
    settled = await rig.games.store.read(lambda unit: unit.spin(pending.spin_id))
    assert settled.status == SpinStatus.SETTLED
    assert await nonce(rig, "m-1") == 2
    assert await balance(rig.ledger, GAMES_REVENUE_ACCOUNT) == 2 * COST
    await rig.seeds.set_client_seed("m-1", "afterwards")


async def test_a_pending_spin_is_settled_before_the_next_draw(wheel):
    rig = wheel
    await fund(rig.ledger, "m-1", 100)
    await leave_pending(rig, "m-1", "r-1")
    with pytest.raises(FailedPrecondition) as refused:
        await rig.seeds.rotate_seed("m-1", "")
    assert refused.value.reason == "SPIN_IN_PROGRESS"
    rig.ledger.reachable = True
    second = await rig.spins.spin("w", "m-1", "r-2")
    assert second.spin.nonce == 2  # r-1 was settled first, with nonce 1
    assert await balance(rig.ledger, GAMES_REVENUE_ACCOUNT) == 3 * COST


async def next_result(feed):
    return await deadlines.within(feed.__anext__())


async def test_a_spin_enters_the_feed_in_the_transaction_that_settles_it(wheel):
    rig = wheel
    await fund(rig.ledger, "m-1", 100)
    feed = rig.plays.watch(0)
    await leave_pending(rig, "m-1", "r-1")  # warm-up settled (result 1), r-1 pending
    first = await next_result(feed)
    assert (first.sequence, first.play.entry.status) == (1, PlayStatus.SETTLED)
    assert await rig.games.store.read(lambda unit: unit.results_after(1, 10)) == []
    rig.ledger.reachable = True
    await rig.outbox.recover()
    second = await next_result(feed)
    assert second.sequence == 2 and second.play.entry.play_id.startswith("s-")
    assert second.play.entry.status == PlayStatus.SETTLED
    await feed.aclose()


PLAIN = WheelConfig(
    display_name="Plain",
    segments=(Segment("Nothing", 1), Segment("Never", 0)),
    fallback_segment_index=0,
    cost_points=COST,
    spins_per_day=0,
    time_zone="UTC",
)


async def test_a_spin_pays_the_odds_version_it_draws_from_not_the_one_seen_before(rig):
    """The pay check works from the last version this process saw: a refusal is
    decided on the current one, and a newer version's accounts are opened before
    its chain is posted."""
    await rig.wheels.create_wheel("u", PLAIN)
    await fund(rig.ledger, "m-1", COST)
    await rig.spins.spin("u", "m-1", "r-1")  # version 1 seen; nothing left to spend
    await rig.wheels.update_wheel("u", replace(PLAIN, cost_points=5), ["cost_points"], 0)
    await fund(rig.ledger, "m-1", 5)
    cheaper = await rig.spins.spin("u", "m-1", "r-2")
    assert cheaper.spin.status == SpinStatus.SETTLED and cheaper.points_balance == 0
    hats = (Segment("Never", 0), Segment("Hat", 1, Prize(unit="prize:hat", quantity=1)))
    await rig.wheels.update_wheel("u", replace(PLAIN, segments=hats), ["segments"], 0)
    await rig.wheels.stock_wheel("u", "prize:hat", 3, "hats")
    await fund(rig.ledger, "m-1", COST, "fund:again")
    won = await rig.spins.spin("u", "m-1", "r-3")
    assert won.spin.status == SpinStatus.SETTLED and won.wheel.version == 3
    assert await balance(rig.ledger, "m-1/prize:hat") == 1


async def test_a_request_id_spun_again_without_the_points_is_the_same_spin(wheel):
    rig = wheel
    await fund(rig.ledger, "m-1", COST)
    first = await rig.spins.spin("w", "m-1", "r-1")
    spent = first.points_balance
    if spent:
        await post(rig.ledger, posted("elsewhere", "m-1", GAMES_REVENUE_ACCOUNT, spent))
    again = await rig.spins.spin("w", "m-1", "r-1")
    assert again.spin == first.spin
    with pytest.raises(FailedPrecondition) as refused:
        await rig.spins.spin("w", "m-1", "r-2")
    assert refused.value.reason == "INSUFFICIENT_POINTS"
