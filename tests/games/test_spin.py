"""Spin-the-wheel through real channels: games server + ledger server, real SQLite."""

from __future__ import annotations

import asyncio

import grpc
from loyalty.games.v1 import games_service_pb2 as pb
from loyalty.ledger.v1 import ledger_service_pb2 as ledger_pb

from services.games.domain.draw import draw_segment
from services.kit.status import error_info, field_violations
from tests.support.errors import expect_error
from tests.support.games import (
    STANDARD_WHEEL,
    create_stocked_wheel,
    item,
    plays_of,
    points,
    seed_number,
    spin,
    wheel_config,
)
from tests.support.ledger import balance, fund, post, posted


async def create(games, wheel_id: str = "daily", config: pb.WheelConfig = STANDARD_WHEEL):
    return await create_stocked_wheel(games.stub, wheel_id, config)


async def test_create_wheel_is_idempotent_and_publishes_exact_odds(games):
    wheel = await create(games)
    assert wheel.odds_version == 1
    assert wheel.algorithm == "hmac-sha256-v1"
    assert [o.percent for o in wheel.odds] == ["50.00", "30.00", "15.00", "5.00"]
    assert sum(o.basis_points for o in wheel.odds) == 10_000
    assert wheel.odds[0].fallback and not wheel.odds[1].fallback
    again = await games.stub.CreateWheel(
        pb.CreateWheelRequest(wheel_id="daily", config=STANDARD_WHEEL)
    )
    assert not again.created and again.wheel.config_sha256 == wheel.config_sha256
    changed = pb.WheelConfig()
    changed.CopyFrom(STANDARD_WHEEL)
    changed.cost_points = 11
    await expect_error(
        games.stub.CreateWheel(pb.CreateWheelRequest(wheel_id="daily", config=changed)),
        grpc.StatusCode.ALREADY_EXISTS,
        "WHEEL_EXISTS_WITH_DIFFERENT_CONFIG",
    )


async def test_bad_wheels_are_refused_and_change_nothing(games):
    cases = {
        "config.segments": wheel_config(),
        "config.segments[0].weight": wheel_config(
            pb.Segment(label="a", weight=-1), pb.Segment(label="b", weight=2)
        ),
        "config.segments[1].prize.points": wheel_config(
            pb.Segment(label="a", weight=1), pb.Segment(label="b", weight=1, prize=points(0))
        ),
    }
    for field, config in cases.items():
        error = await expect_error(
            games.stub.CreateWheel(pb.CreateWheelRequest(wheel_id="bad", config=config)),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert field in field_violations(error)
    zero = wheel_config(pb.Segment(label="a", weight=0), pb.Segment(label="b", weight=0))
    error = await expect_error(
        games.stub.CreateWheel(pb.CreateWheelRequest(wheel_id="bad", config=zero)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "more than 0" in field_violations(error)["config.segments"]
    await expect_error(
        games.stub.CreateWheel(pb.CreateWheelRequest(wheel_id="no spaces", config=STANDARD_WHEEL)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    listed = await games.stub.ListWheels(pb.ListWheelsRequest())
    assert list(listed.wheels) == []


async def test_a_spin_charges_once_pays_once_and_replays(games, ledger, ledger_stub):
    await create(games)
    await fund(ledger_stub, "m-1", 100)
    seed = await games.stub.GetSeedPair(pb.GetSeedPairRequest(member_id="m-1"))
    request = pb.SpinRequest(wheel_id="daily", member_id="m-1", request_id="r-1")
    spin = (await games.stub.Spin(request)).spin
    expected = draw_segment(seed_number(1), seed.seed_pair.client_seed, 0, [50, 30, 15, 5])
    assert (spin.proof.draw_value, spin.landed_segment_index) == (
        expected.value,
        expected.segment_index,
    )
    won = STANDARD_WHEEL.segments[spin.landed_segment_index].prize.WhichOneof("kind")
    assert spin.outcome == (pb.SPIN_OUTCOME_WON if won else pb.SPIN_OUTCOME_NO_PRIZE)
    assert spin.proof.server_seed_sha256 == seed.seed_pair.server_seed_sha256
    assert spin.proof.server_seed == ""  # not revealed before rotation
    assert spin.transfer_ids[0] == f"spin:{spin.spin_id}:cost"
    assert spin.spins_left_today == 4
    points_won = STANDARD_WHEEL.segments[spin.landed_segment_index].prize.points
    assert spin.points_balance_after == 90 + points_won
    assert await balance(ledger_stub, "m-1") == 90 + points_won

    replay = (await games.stub.Spin(request)).spin
    assert replay == spin
    assert await balance(ledger_stub, "m-1") == 90 + points_won
    assert await balance(ledger_stub, "games:revenue") == 10
    after = await games.stub.GetSeedPair(pb.GetSeedPairRequest(member_id="m-1"))
    assert after.seed_pair.nonce == 1


async def test_too_few_points_draws_nothing_and_keeps_the_nonce(games, ledger, ledger_stub):
    await create(games)
    await fund(ledger_stub, "m-2", 5)
    await expect_error(
        games.stub.Spin(pb.SpinRequest(wheel_id="daily", member_id="m-2", request_id="r-1")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "INSUFFICIENT_POINTS",
    )
    seed = await games.stub.GetSeedPair(pb.GetSeedPairRequest(member_id="m-2"))
    assert seed.seed_pair.nonce == 0
    assert await balance(ledger_stub, "m-2") == 5
    plays = await games.stub.ListPlays(pb.ListPlaysRequest(member_id="m-2"))
    assert [(p.status, p.reason) for p in plays.plays] == [
        (pb.PLAY_STATUS_REJECTED, "INSUFFICIENT_POINTS")
    ]


async def test_the_daily_limit_resets_at_midnight_in_the_wheels_zone(games, ledger, ledger_stub):
    await create(
        games, config=wheel_config(*STANDARD_WHEEL.segments, spins_per_day=2, cost_points=0)
    )
    for n in range(2):
        await games.stub.Spin(
            pb.SpinRequest(wheel_id="daily", member_id="m-3", request_id=f"r-{n}")
        )
    await expect_error(
        games.stub.Spin(pb.SpinRequest(wheel_id="daily", member_id="m-3", request_id="r-2")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "SPIN_LIMIT_REACHED",
    )
    wheel = (await games.stub.GetWheel(pb.GetWheelRequest(wheel_id="daily", member_id="m-3"))).wheel
    assert wheel.allowance.spins_left_today == 0
    ledger.clock.set(wheel.allowance.reset_time.ToMicroseconds() - 1)
    await expect_error(
        games.stub.Spin(pb.SpinRequest(wheel_id="daily", member_id="m-3", request_id="r-3")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "SPIN_LIMIT_REACHED",
    )
    ledger.clock.set(wheel.allowance.reset_time.ToMicroseconds())
    spin = (
        await games.stub.Spin(pb.SpinRequest(wheel_id="daily", member_id="m-3", request_id="r-4"))
    ).spin
    assert spin.spins_left_today == 1


async def test_rotation_reveals_the_seed_and_verifies_past_spins(games, ledger, ledger_stub):
    await create(games)
    await fund(ledger_stub, "m-4", 100)
    await games.stub.SetClientSeed(pb.SetClientSeedRequest(member_id="m-4", client_seed="my-luck"))
    spin = (
        await games.stub.Spin(pb.SpinRequest(wheel_id="daily", member_id="m-4", request_id="a"))
    ).spin
    assert spin.proof.client_seed == "my-luck"
    await expect_error(
        games.stub.VerifySpin(pb.VerifySpinRequest(spin_id=spin.spin_id)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "SEED_NOT_REVEALED",
    )
    rotated = await games.stub.RotateSeed(pb.RotateSeedRequest(member_id="m-4"))
    assert rotated.revealed.server_seed == seed_number(1).hex()
    assert rotated.revealed.server_seed_sha256 == spin.proof.server_seed_sha256
    assert rotated.revealed.next_nonce == 1
    assert rotated.seed_pair.nonce == 0
    assert rotated.seed_pair.server_seed_sha256 != spin.proof.server_seed_sha256
    verified = await games.stub.VerifySpin(pb.VerifySpinRequest(spin_id=spin.spin_id))
    assert verified.verified
    assert verified.recomputed_segment_index == spin.proof.drawn_segment_index
    assert verified.spin.proof.server_seed == seed_number(1).hex()


async def test_bad_client_seeds_are_refused(games):
    for bad in ("", "has:colon", "x" * 65, "naïve"):
        await expect_error(
            games.stub.SetClientSeed(pb.SetClientSeedRequest(member_id="m-5", client_seed=bad)),
            grpc.StatusCode.INVALID_ARGUMENT,
        )


ONE_COFFEE_WHEEL = wheel_config(
    pb.Segment(label="Try again", weight=0),
    pb.Segment(label="Coffee", weight=1, prize=item("prize:free-coffee")),
    cost_points=10,
    spins_per_day=0,
)


async def test_the_last_unit_goes_to_exactly_one_of_many_concurrent_spins(
    games, ledger, ledger_stub
):
    await games.stub.CreateWheel(pb.CreateWheelRequest(wheel_id="coffee", config=ONE_COFFEE_WHEEL))
    stocked = await games.stub.StockWheel(
        pb.StockWheelRequest(
            wheel_id="coffee", unit="prize:free-coffee", quantity=1, request_id="s1"
        )
    )
    assert stocked.stock == 1
    members = [f"c-{n}" for n in range(12)]
    for member in members:
        await fund(ledger_stub, member, 10)
    spins = await asyncio.gather(
        *(
            games.stub.Spin(pb.SpinRequest(wheel_id="coffee", member_id=m, request_id="go"))
            for m in members
        )
    )
    outcomes = sorted(s.spin.outcome for s in spins)
    assert outcomes.count(pb.SPIN_OUTCOME_WON) == 1
    fallbacks = [s.spin for s in spins if s.spin.outcome == pb.SPIN_OUTCOME_FALLBACK]
    assert len(fallbacks) == 11
    assert {s.fallback_reason for s in fallbacks} == {pb.FALLBACK_REASON_SOLD_OUT}
    assert {s.landed_segment_index for s in fallbacks} == {0}
    assert await balance(ledger_stub, "wheel:coffee:pool:prize:free-coffee") == 0
    winners = [m for m in members if await balance(ledger_stub, f"{m}/prize:free-coffee") == 1]
    assert len(winners) == 1
    for member in members:
        assert await balance(ledger_stub, member) == 0  # each charged exactly once
    assert await balance(ledger_stub, "games:revenue") == 120
    wheel = (await games.stub.GetWheel(pb.GetWheelRequest(wheel_id="coffee"))).wheel
    assert wheel.odds_version == 2 and wheel.odds[1].sold_out
    # Restocking clears the mark in a new odds version.
    restocked = await games.stub.StockWheel(
        pb.StockWheelRequest(
            wheel_id="coffee", unit="prize:free-coffee", quantity=3, request_id="s2"
        )
    )
    assert restocked.wheel.odds_version == 3 and not restocked.wheel.odds[1].sold_out
    again = await games.stub.StockWheel(
        pb.StockWheelRequest(
            wheel_id="coffee", unit="prize:free-coffee", quantity=3, request_id="s2"
        )
    )
    assert again.stock == 3  # the same request id stocks once
    await expect_error(
        games.stub.StockWheel(
            pb.StockWheelRequest(
                wheel_id="coffee", unit="prize:free-coffee", quantity=4, request_id="s2"
            )
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "REQUEST_ID_REUSED",
    )


async def test_a_daily_win_cap_gives_the_fallback(games, ledger, ledger_stub):
    config = wheel_config(
        pb.Segment(label="Try again", weight=0),
        pb.Segment(label="5 points", weight=1, prize=points(5), max_wins_per_member_per_day=1),
        cost_points=0,
    )
    await create(games, "capped", config)
    first = (
        await games.stub.Spin(pb.SpinRequest(wheel_id="capped", member_id="m-6", request_id="1"))
    ).spin
    second = (
        await games.stub.Spin(pb.SpinRequest(wheel_id="capped", member_id="m-6", request_id="2"))
    ).spin
    assert first.outcome == pb.SPIN_OUTCOME_WON and first.points_balance_after == 5
    assert (second.outcome, second.fallback_reason) == (
        pb.SPIN_OUTCOME_FALLBACK,
        pb.FALLBACK_REASON_CAP_REACHED,
    )
    assert await balance(ledger_stub, "m-6") == 5


async def test_bad_spin_requests_change_nothing(games, ledger, ledger_stub):
    await create(games)
    for request in (
        pb.SpinRequest(wheel_id="daily", member_id="m/1", request_id="r"),
        pb.SpinRequest(wheel_id="daily", member_id="m-1", request_id=""),
        pb.SpinRequest(wheel_id="", member_id="m-1", request_id="r"),
    ):
        await expect_error(games.stub.Spin(request), grpc.StatusCode.INVALID_ARGUMENT)
    await expect_error(
        games.stub.Spin(pb.SpinRequest(wheel_id="nope", member_id="m-1", request_id="r")),
        grpc.StatusCode.NOT_FOUND,
        "WHEEL_NOT_FOUND",
    )
    await expect_error(
        games.stub.ListPlays(pb.ListPlaysRequest(member_id="m-1", page_size=-1)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await expect_error(
        games.stub.ListPlays(pb.ListPlaysRequest()), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (await games.stub.ListPlays(pb.ListPlaysRequest(game_id="daily"))).plays == []


async def test_plays_are_audited_and_paginated(games, ledger, ledger_stub):
    await create(games, config=wheel_config(*STANDARD_WHEEL.segments, cost_points=0))
    for n in range(3):
        await games.stub.Spin(pb.SpinRequest(wheel_id="daily", member_id="m-7", request_id=f"r{n}"))
        ledger.clock.advance(1)
    first = await games.stub.ListPlays(pb.ListPlaysRequest(game_id="daily", page_size=4))
    assert len(first.plays) == 4 and first.next_page_token
    rest = await games.stub.ListPlays(
        pb.ListPlaysRequest(game_id="daily", page_size=4, page_token=first.next_page_token)
    )
    plays = [*first.plays, *rest.plays]
    assert rest.next_page_token == ""
    # Each spin: a pending entry, then its settlement, with the nonce moving on.
    assert [p.status for p in plays] == [pb.PLAY_STATUS_PENDING, pb.PLAY_STATUS_SETTLED] * 3
    settled = [p for p in plays if p.status == pb.PLAY_STATUS_SETTLED]
    assert [(p.counters_before.nonce, p.counters_after.nonce) for p in settled] == [
        (0, 1),
        (1, 2),
        (2, 3),
    ]
    assert all(p.proof.server_seed_sha256 for p in plays)


async def test_wheel_stats_compare_draws_with_the_odds(games, ledger, ledger_stub):
    await create(
        games, config=wheel_config(*STANDARD_WHEEL.segments, cost_points=0, spins_per_day=0)
    )
    for n in range(20):
        await games.stub.Spin(pb.SpinRequest(wheel_id="daily", member_id="m-8", request_id=f"r{n}"))
    stats = await games.stub.GetWheelStats(pb.GetWheelStatsRequest(wheel_id="daily"))
    assert stats.total_spins == 20
    assert stats.degrees_of_freedom == 3
    assert [s.expected for s in stats.segments] == [10.0, 6.0, 3.0, 1.0]
    assert 0.0 <= stats.p_value <= 1.0


async def spend_everything_elsewhere(ledger_stub, member: str, amount: int) -> None:
    """The member redeems `amount` outside games, which does not see it."""
    (result,) = await post(
        ledger_stub,
        posted("elsewhere", member, "games:revenue", amount, code=ledger_pb.TRANSFER_CODE_REDEEM),
    )
    assert result.code == ledger_pb.TRANSFER_RESULT_CODE_OK


async def test_points_spent_elsewhere_are_refused_by_the_chain_itself(games, ledger, ledger_stub):
    """The service remembers the balance of the last spin to spare a read; when
    the member spent points elsewhere since, the ledger's chain refuses the spin."""
    await create(games)
    await fund(ledger_stub, "m-9", 20)
    first = (
        await games.stub.Spin(pb.SpinRequest(wheel_id="daily", member_id="m-9", request_id="1"))
    ).spin
    await spend_everything_elsewhere(ledger_stub, "m-9", first.points_balance_after)
    await expect_error(
        games.stub.Spin(pb.SpinRequest(wheel_id="daily", member_id="m-9", request_id="2")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "INSUFFICIENT_POINTS",
    )
    assert await balance(ledger_stub, "m-9") == 0
    seed = await games.stub.GetSeedPair(pb.GetSeedPairRequest(member_id="m-9"))
    assert seed.seed_pair.nonce == 1
    rejected = (await games.stub.ListPlays(pb.ListPlaysRequest(member_id="m-9"))).plays[-1]
    assert rejected.status == pb.PLAY_STATUS_REJECTED
    assert not rejected.proof.draw_value and rejected.landed_segment_index == -1
    # The rejected draw's nonce is drawn again by the next spin.
    await fund(ledger_stub, "m-9", 10, transfer_id="fund-again")
    again = (
        await games.stub.Spin(pb.SpinRequest(wheel_id="daily", member_id="m-9", request_id="3"))
    ).spin
    assert again.proof.nonce == 1


def reveals_a_draw(play: pb.Play) -> bool:
    """Whether an audit entry shows anything of where its spin's draw landed."""
    return bool(
        play.proof.draw_value
        or play.proof.drawn_segment_index != -1
        or play.landed_segment_index != -1
        or play.HasField("prize")
        or play.reason in ("SOLD_OUT", "CAP_REACHED")
    )


async def test_an_unpaid_draw_is_never_shown_so_it_cannot_be_chosen(games, ledger, ledger_stub):
    """The attack: games still believes from its cached balance that the member can
    pay, draws and records the spin, and the ledger refuses the cost. The nonce
    stays, so the next paid spin on this seed pair gives exactly that draw; had
    anything shown it, the member could pay for a good one or reroll a bad one
    with SetClientSeed. Nothing the member can read shows it."""
    await create(games, config=wheel_config(*STANDARD_WHEEL.segments, spins_per_day=0))
    await fund(ledger_stub, "m-10", 20)
    first = await spin(games.stub, "daily", "m-10", "r-1")
    await spend_everything_elsewhere(ledger_stub, "m-10", first.points_balance_after)
    error = await expect_error(
        games.stub.Spin(pb.SpinRequest(wheel_id="daily", member_id="m-10", request_id="r-2")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "INSUFFICIENT_POINTS",
    )
    unpaid_id = error_info(error).metadata["spin_id"]

    # Everything the member can read between the refusal and paying again.
    plays = await plays_of(games.stub, "m-10")
    unpaid = [p for p in plays if p.play_id == unpaid_id]
    assert [p.status for p in unpaid] == [pb.PLAY_STATUS_PENDING, pb.PLAY_STATUS_REJECTED]
    await expect_error(
        games.stub.VerifySpin(pb.VerifySpinRequest(spin_id=unpaid_id)),
        grpc.StatusCode.NOT_FOUND,
        "SPIN_NOT_FOUND",
    )
    assert not any(reveals_a_draw(p) for p in unpaid)

    # The member pays: the next spin draws that nonce again, and nothing read before
    # said what it gives.
    await fund(ledger_stub, "m-10", 10, transfer_id="fund-again")
    paid = await spin(games.stub, "daily", "m-10", "r-3")
    assert paid.proof.nonce == unpaid[0].proof.nonce
    assert paid.proof.draw_value not in [p.proof.draw_value for p in unpaid]


async def test_published_odds_are_the_effective_odds_once_a_prize_sells_out(games, ledger_stub):
    await games.stub.CreateWheel(pb.CreateWheelRequest(wheel_id="coffee", config=ONE_COFFEE_WHEEL))
    await games.stub.StockWheel(
        pb.StockWheelRequest(
            wheel_id="coffee", unit="prize:free-coffee", quantity=1, request_id="s"
        )
    )
    for member in ("a", "b"):
        await fund(ledger_stub, member, 10)
        await spin(games.stub, "coffee", member, "go")
    wheel = (await games.stub.GetWheel(pb.GetWheelRequest(wheel_id="coffee"))).wheel
    fallback, coffee = wheel.odds
    assert coffee.sold_out and (coffee.weight, coffee.basis_points, coffee.percent) == (
        0,
        0,
        "0.00",
    )
    assert (fallback.weight, fallback.total_weight, fallback.percent) == (1, 1, "100.00")
    assert [o.draw_weight for o in wheel.odds] == [0, 1]  # what the draw is taken over
    assert sum(o.basis_points for o in wheel.odds) == 10_000


async def test_a_segment_with_no_prize_has_its_own_outcome(games):
    never_wins = wheel_config(
        pb.Segment(label="Try again", weight=1),
        pb.Segment(label="20 points", weight=0, prize=points(20)),
        cost_points=0,
    )
    await create(games, "nothing", never_wins)
    result = await spin(games.stub, "nothing", "m-11", "r-1")
    assert (result.outcome, result.fallback_reason) == (pb.SPIN_OUTCOME_NO_PRIZE, 0)
    assert not result.prize.WhichOneof("kind")
