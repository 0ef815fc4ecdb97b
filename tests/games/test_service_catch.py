"""Catch-to-earn's use cases over a temporary store and the in-process ledger."""

from __future__ import annotations

import pytest

from services.games.domain.catch import BasketSample, CatchClaim, CatchConfig, ObjectType
from services.games.domain.records import SessionStatus
from services.kit.errors import Unavailable
from tests.support.games import honest_play
from tests.support.ledger import balance

RULES = CatchConfig(
    display_name="Rain",
    duration_millis=10_000,
    spawn_interval_millis=1_000,
    field_width=1_000,
    basket_width=120,
    basket_top_speed=900,
    catch_window_millis=250,
    object_types=(ObjectType("bean", 5, 1, 1_800),),
    session_score_cap=1_000,
    daily_points_cap=0,
    time_zone="Europe/Paris",
    submit_grace_millis=5_000,
)


async def played(rig, member: str, request_id: str):
    """A session started and played to its end by an honest player: what to submit."""
    view = await rig.catch.start_catch("rain", member, request_id)
    session_id = view.session.session_id
    rig.games.clock.advance(RULES.duration_millis / 1000)
    revealed = [r.object async for r in rig.catch.watch_objects(session_id, member)]
    play = honest_play(RULES, revealed)
    claims = [CatchClaim(o, m, x) for o, m, x in play.catches]
    return session_id, claims, [BasketSample(m, x) for m, x in play.trace]


async def session(rig, session_id: str):
    return await rig.games.store.read(lambda unit: unit.catch_session(session_id))


async def test_an_award_the_ledger_never_saw_is_paid_once_by_recovery(rig):
    await rig.catch.create_catch_game("rain", RULES)
    warm_up, claims, trace = await played(rig, "m-1", "warm-up")  # opens the accounts
    await rig.catch.submit_catch(warm_up, "m-1", claims, 0, trace)
    paid_before = await balance(rig.ledger, "m-1")
    session_id, claims, trace = await played(rig, "m-1", "s-1")
    rig.ledger.reachable = False
    with pytest.raises(Unavailable):
        await rig.catch.submit_catch(session_id, "m-1", claims, 0, trace)
    pending = await session(rig, session_id)
    assert pending.status == SessionStatus.PENDING and pending.awarded > 0
    rig.ledger.reachable = True
    assert await rig.outbox.recover() == 1
    assert await rig.outbox.recover() == 0
    settled = await session(rig, session_id)
    assert settled.status == SessionStatus.SETTLED
    assert await balance(rig.ledger, "m-1") == paid_before + settled.awarded
    # A replay of the submission returns the result and pays nothing more.
    again = await rig.catch.submit_catch(session_id, "m-1", claims, 0, trace)
    assert again.session == settled
    assert await balance(rig.ledger, "m-1") == paid_before + settled.awarded
