"""Pure rules: no server, no database."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.games.domain import calendar, catch, records, stats
from services.games.domain import draw as draws
from services.games.domain import wheel as wheels
from services.games.domain.canonical import canonical_json
from services.games.domain.catch import CatchClaim, Verdict
from services.games.domain.draw import DrawStream
from services.games.domain.wheel import FallbackReason, Prize, Segment, WheelConfig
from services.kit.clock import from_datetime
from services.kit.errors import InvalidArgument
from services.kit.ids import member_account, prize_pool_account
from tests.support.games import honest_play

VECTORS = json.loads((Path(__file__).parent / "vectors.json").read_text())
NODE_SCRIPT = Path(__file__).parent / "js" / "draw.mjs"
SEED = bytes(range(32))


def wheel(*segments: Segment, fallback: int = 0, **changes) -> WheelConfig:
    fields = dict(
        display_name="Wheel",
        segments=segments,
        fallback_segment_index=fallback,
        cost_points=10,
        spins_per_day=3,
        time_zone="Europe/Paris",
    )
    fields.update(changes)
    return WheelConfig(**fields)


def violations_of(config: WheelConfig) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as raised:
        wheels.validate_wheel_config(config)
    return {v.field: v.description for v in raised.value.violations}


# ---------------------------------------------------------------- the draw


@pytest.mark.parametrize(
    "vector", VECTORS["draws"], ids=lambda v: f"{v['client_seed']}:{v['nonce']}"
)
def test_known_answer_draws(vector):
    draw = draws.draw_segment(
        bytes.fromhex(vector["server_seed"]),
        vector["client_seed"],
        vector["nonce"],
        vector["weights"],
    )
    assert (draw.value, draw.segment_index) == (vector["draw_value"], vector["segment_index"])


@pytest.mark.parametrize(
    "vector", VECTORS["uniform"], ids=lambda v: f"{v['client_seed']}:{v['nonce']}"
)
def test_known_answer_rejection_sampling(vector):
    stream = DrawStream(
        bytes.fromhex(vector["server_seed"]), vector["client_seed"], vector["nonce"]
    )
    assert stream.uniform_below(vector["n"]) == vector["value"]


def test_first_word_is_the_big_endian_start_of_round_zero():
    block = hmac.new(SEED, b"lucky:0:0", hashlib.sha256).digest()
    assert DrawStream(SEED, "lucky", 0).next_u32() == int.from_bytes(block[:4], "big")


def test_words_after_the_first_block_come_from_round_one():
    stream = DrawStream(SEED, "lucky", 5)
    words = [stream.next_u32() for _ in range(9)]
    second_block = hmac.new(SEED, b"lucky:5:1", hashlib.sha256).digest()
    assert words[8] == int.from_bytes(second_block[:4], "big")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_an_independent_node_implementation_reproduces_every_vector():
    completed = subprocess.run(
        ["node", str(NODE_SCRIPT), str(Path(__file__).parent / "vectors.json")],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    output = json.loads(completed.stdout)
    assert output["draws"] == [
        {"draw_value": v["draw_value"], "segment_index": v["segment_index"]}
        for v in VECTORS["draws"]
    ]
    assert output["uniform"] == [{"value": v["value"]} for v in VECTORS["uniform"]]


def test_rejection_sampling_draws_again_at_the_limit_itself():
    """No known-answer vector reaches the boundary, so the words are scripted: the
    largest multiple of n is the first value rejected (accepting it would make 0
    one word likelier than the rest)."""
    for n in (3, 10, 2**31 + 1):
        limit = (2**32 // n) * n
        words = iter([limit, limit + 1 if limit + 1 < 2**32 else limit, 7])
        assert draws.uniform_below(lambda words=words: next(words), n) == 7 % n
        below = iter([limit - 1])
        assert draws.uniform_below(lambda below=below: next(below), n) == (limit - 1) % n


def test_uniform_below_refuses_impossible_ranges():
    for n in (0, -1, 2**32 + 1):
        with pytest.raises(ValueError):
            DrawStream(SEED, "c", 0).uniform_below(n)


def test_the_commitment_is_the_sha256_of_the_seed_bytes():
    assert draws.seed_commitment(SEED) == hashlib.sha256(SEED).hexdigest()


@given(st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=10))
def test_segment_for_never_picks_a_zero_weight(weights):
    total = sum(weights)
    if total == 0:
        return
    for r in range(total):
        assert weights[draws.segment_for(weights, r)] > 0


DRAWS = 200_000


def draw_counts(weights: list[int], count: int = DRAWS) -> list[int]:
    counts = Counter(
        draws.draw_segment(SEED, "chi-square", nonce, weights).segment_index
        for nonce in range(count)
    )
    return [counts[i] for i in range(len(weights))]


@pytest.fixture(scope="module")
def fair_counts() -> list[int]:
    return draw_counts(FAIR_WEIGHTS)


FAIR_WEIGHTS = [500, 250, 150, 70, 0, 25, 5]


def test_two_hundred_thousand_draws_fit_the_configured_odds(fair_counts):
    fit = stats.chi_square_test(fair_counts, FAIR_WEIGHTS)
    assert fit.degrees_of_freedom == 5
    assert fit.p_value > 0.001, fit


def test_a_zero_weight_segment_is_never_drawn(fair_counts):
    assert fair_counts[4] == 0
    assert sum(fair_counts) == DRAWS


def test_a_mis_weighted_wheel_is_detected():
    # The wheel publishes equal odds but actually draws with one segment 10% heavier.
    observed = draw_counts([100, 100, 100, 110], 100_000)
    assert stats.chi_square_test(observed, [1, 1, 1, 1]).p_value < 1e-6


@given(st.floats(min_value=1e-6, max_value=700))
def test_q_of_one_is_the_exponential_tail(x):
    assert math.isclose(stats.upper_regularized_gamma(1.0, x), math.exp(-x), rel_tol=1e-9)


@given(st.floats(min_value=1e-6, max_value=40))
def test_q_of_a_half_is_the_normal_tail(x):
    expected = math.erfc(math.sqrt(x))
    assert math.isclose(
        stats.upper_regularized_gamma(0.5, x), expected, rel_tol=1e-7, abs_tol=1e-300
    )


def test_chi_square_p_values_match_tables():
    # The 5% critical values of chi-square with 1, 5 and 10 degrees of freedom.
    for dof, critical in ((1, 3.841), (5, 11.070), (10, 18.307)):
        assert math.isclose(
            stats.upper_regularized_gamma(dof / 2, critical / 2), 0.05, rel_tol=1e-3
        )


# ---------------------------------------------------------------- wheels


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=64))
def test_published_percentages_add_up_to_exactly_one_hundred(weights):
    if sum(weights) == 0:
        return
    odds = wheels.exact_odds(weights)
    assert sum(o.basis_points for o in odds) == 10_000
    for o in odds:
        exact = o.weight * 10_000 / o.total_weight
        assert math.floor(exact) <= o.basis_points <= math.floor(exact) + 1


def test_percent_strings_have_two_decimals():
    odds = wheels.exact_odds([1, 1, 1])
    assert [o.percent for o in odds] == ["33.34", "33.33", "33.33"]
    assert wheels.exact_odds([1, 0])[1].percent == "0.00"


def test_a_valid_wheel_passes():
    wheels.validate_wheel_config(
        wheel(Segment("Try again", 5), Segment("50 pts", 3, Prize(points=50)))
    )


def test_an_empty_wheel_is_rejected():
    assert "config.segments" in violations_of(wheel())


def test_negative_weights_and_zero_totals_are_rejected():
    found = violations_of(wheel(Segment("a", -1), Segment("b", 1)))
    assert "config.segments[0].weight" in found
    found = violations_of(wheel(Segment("a", 0), Segment("b", 0)))
    assert "more than 0" in found["config.segments"]


def test_every_bad_field_is_named_at_once():
    config = wheel(
        Segment("", 1, Prize(unit="coffee", quantity=0)),
        Segment("b", 1, Prize(points=-5)),
        fallback=0,
        cost_points=-1,
        spins_per_day=-2,
        time_zone="Mars/Olympus",
        start_us=10,
        end_us=5,
    )
    assert set(violations_of(config)) == {
        "config.segments[0].label",
        "config.segments[0].prize.item.unit",
        "config.segments[0].prize.item.quantity",
        "config.segments[1].prize.points",
        "config.fallback_segment_index",
        "config.cost_points",
        "config.spins_per_day",
        "config.time_zone",
        "config.end_time",
    }


def test_the_fallback_must_exist_and_award_nothing():
    assert "config.fallback_segment_index" in violations_of(
        wheel(Segment("a", 1), Segment("b", 1), fallback=2)
    )


COFFEE = Prize(unit="prize:free-coffee", quantity=1)
CAPPED = wheel(
    Segment("Try again", 1),
    Segment("Coffee", 1, COFFEE),
    Segment("Jackpot", 1, Prize(points=100), max_wins_per_member_per_day=1),
)


def test_landing_on_a_sold_out_segment_gives_the_fallback():
    assert wheels.land(CAPPED, 1, sold_out=[1], wins_today=0) == wheels.Landing(
        0, wheels.NOTHING, FallbackReason.SOLD_OUT
    )
    assert wheels.land(CAPPED, 1, sold_out=[], wins_today=0).prize == COFFEE


def test_a_daily_win_cap_gives_the_fallback():
    assert wheels.land(CAPPED, 2, sold_out=[], wins_today=0).segment_index == 2
    capped = wheels.land(CAPPED, 2, sold_out=[], wins_today=1)
    assert (capped.segment_index, capped.fallback_reason) == (0, FallbackReason.CAP_REACHED)


def test_the_config_hash_is_canonical_and_covers_sold_out_marks():
    document = wheels.stored_document(CAPPED, [])
    restored = wheels.config_from_stored(json.loads(canonical_json(document)))
    assert restored == CAPPED
    assert wheels.config_hash(CAPPED, []) == wheels.config_hash(restored, [])
    assert wheels.config_hash(CAPPED, [1]) != wheels.config_hash(CAPPED, [])


def test_prize_units_and_pools():
    assert CAPPED.prize_units == ["prize:free-coffee", "points"]
    assert wheels.segments_paid_from(CAPPED, "points") == [2]
    assert prize_pool_account("w1", "points") == "wheel:w1:pool:points"
    assert member_account("m-1", "prize:free-coffee") == "m-1/prize:free-coffee"


def test_derived_ids_are_stable_and_distinct():
    assert records.spin_id("m-1", "r-1") == records.spin_id("m-1", "r-1")
    assert records.spin_id("m-1", "r-1") != records.spin_id("m-2", "r-1")
    assert len(records.spin_id("m-1", "r-1")) == 34


# ---------------------------------------------------------------- days and weeks


def utc(*parts: int) -> int:
    return from_datetime(datetime(*parts, tzinfo=UTC))


def test_the_day_resets_at_local_midnight():
    paris = ZoneInfo("Europe/Paris")
    # 23:30 UTC on 14 January is 00:30 on the 15th in Paris (UTC+1).
    assert calendar.local_day(utc(2026, 1, 14, 23, 30), paris) == date(2026, 1, 15)
    assert calendar.next_day_start_us(utc(2026, 1, 14, 12), paris) == utc(2026, 1, 14, 23)


def test_a_spring_forward_day_is_23_hours_long():
    paris = ZoneInfo("Europe/Paris")
    start = calendar.day_start_us(date(2026, 3, 29), paris)
    end = calendar.next_day_start_us(start, paris)
    assert (start, end) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))


def test_a_fall_back_day_is_25_hours_long():
    paris = ZoneInfo("Europe/Paris")
    start = calendar.day_start_us(date(2026, 10, 25), paris)
    assert calendar.next_day_start_us(start, paris) - start == 25 * 3_600_000_000


def test_midnight_in_a_dst_gap_starts_the_day_at_the_transition():
    # Chile springs forward at midnight: 6 September 2026 begins at 01:00 local (04:00 UTC).
    santiago = ZoneInfo("America/Santiago")
    reset = calendar.next_day_start_us(utc(2026, 9, 5, 15), santiago)
    assert reset == utc(2026, 9, 6, 4)
    assert calendar.local_day(reset, santiago) == date(2026, 9, 6)
    assert calendar.local_day(reset - 1, santiago) == date(2026, 9, 5)


def test_weeks_start_on_monday_in_the_games_zone():
    tokyo = ZoneInfo("Asia/Tokyo")
    # Sunday 22:00 UTC is already Monday 07:00 in Tokyo.
    assert calendar.week_start(utc(2026, 11, 22, 22), tokyo) == date(2026, 11, 23)
    assert calendar.week_start(utc(2026, 11, 22, 12), tokyo) == date(2026, 11, 16)


# ---------------------------------------------------------------- catch-to-earn

CATCH = catch.CatchConfig(
    display_name="Catch",
    duration_millis=30_000,
    spawn_interval_millis=1_000,
    field_width=1_000,
    basket_width=100,
    basket_top_speed=800,
    catch_window_millis=200,
    object_types=(
        catch.ObjectType("coin", 10, 90, 2_000),
        catch.ObjectType("star", 100, 5, 1_500),
        catch.ObjectType("bomb", -50, 5, 2_500),
    ),
    session_score_cap=500,
    daily_points_cap=800,
    time_zone="Europe/Paris",
    submit_grace_millis=10_000,
)


def schedule(session_id: str = "c-1") -> list[catch.SpawnedObject]:
    return catch.spawn_schedule(CATCH, SEED, session_id)


def test_the_spawn_schedule_is_deterministic_and_playable():
    spawns = schedule()
    assert spawns == schedule()
    assert spawns != schedule("c-2")
    assert len(spawns) >= 25
    for spawned in spawns:
        assert spawned.object_id * 1_000 <= spawned.spawn_millis < spawned.object_id * 1_000 + 500
        assert spawned.land_millis <= CATCH.duration_millis
        assert 0 <= spawned.x < CATCH.field_width


def test_catch_configs_are_validated():
    with pytest.raises(InvalidArgument) as raised:
        catch.validate_catch_config(catch.CatchConfig(**_broken_catch()))
    fields = {v.field for v in raised.value.violations}
    assert {"config.basket_width", "config.object_types[1].name", "config.time_zone"} <= fields


def _broken_catch() -> dict:
    return dict(
        display_name="x",
        duration_millis=30_000,
        spawn_interval_millis=1_000,
        field_width=100,
        basket_width=200,
        basket_top_speed=1,
        catch_window_millis=10,
        object_types=(catch.ObjectType("a", 1, 1, 10), catch.ObjectType("a", 1, 1, 10)),
        session_score_cap=10,
        daily_points_cap=0,
        time_zone="Nowhere/Special",
        submit_grace_millis=0,
    )


def honest_claims(spawns, count: int) -> list[CatchClaim]:
    """Catches an honest player can make: the basket moves at most at top speed."""
    claims, at_millis, at_x = [], 0, CATCH.field_width // 2
    for spawned in spawns:
        if len(claims) == count:
            break
        if spawned.points <= 0:
            continue
        reachable = abs(spawned.x - at_x) * 1_000 <= CATCH.basket_top_speed * (
            spawned.land_millis - at_millis
        )
        if reachable:
            claims.append(CatchClaim(spawned.object_id, spawned.land_millis, spawned.x))
            at_millis, at_x = spawned.land_millis, spawned.x
    return claims


def test_honest_catches_score_their_points():
    spawns = schedule()
    claims = honest_claims(spawns, 5)
    result = catch.score_catches(CATCH, spawns, claims)
    by_id = {s.object_id: s for s in spawns}
    assert [v.code for v in result.verdicts] == [Verdict.ACCEPTED] * 5
    assert result.score == sum(by_id[c.object_id].points for c in claims)


def test_each_cheat_gets_its_own_verdict():
    spawns = schedule()
    first = honest_claims(spawns, 1)[0]
    later = next(s for s in spawns if s.land_millis > first.catch_millis + 3_000)
    claims = [
        first,
        CatchClaim(first.object_id, first.catch_millis, first.basket_x),
        CatchClaim(9_999, first.catch_millis, first.basket_x),
        CatchClaim(later.object_id, later.land_millis - 500, later.x),
    ]
    result = catch.score_catches(CATCH, spawns, claims)
    assert [v.code for v in result.verdicts] == [
        Verdict.ACCEPTED,
        Verdict.DUPLICATE_OBJECT,
        Verdict.UNKNOWN_OBJECT,
        Verdict.OUTSIDE_WINDOW,
    ]
    assert result.score == result.verdicts[0].points


def test_a_basket_faster_than_its_top_speed_is_refused():
    left = catch.SpawnedObject(0, "coin", 0, 100, 1_000, 10)
    right = catch.SpawnedObject(1, "coin", 200, 900, 1_000, 10)
    # 800 units in 200 ms needs 4,000 units/s; the top speed is 800.
    claims = [CatchClaim(0, 1_000, 100), CatchClaim(1, 1_200, 900)]
    result = catch.score_catches(CATCH, [left, right], claims)
    assert [v.code for v in result.verdicts] == [Verdict.ACCEPTED, Verdict.BASKET_TOO_FAST]
    assert result.score == 10


def test_a_basket_beside_the_object_misses_it():
    spawned = catch.SpawnedObject(0, "coin", 1_000, 500, 2_000, 10)
    miss = catch.score_catches(CATCH, [spawned], [CatchClaim(0, 3_000, 551)])
    hit = catch.score_catches(CATCH, [spawned], [CatchClaim(0, 3_000, 550)])
    assert miss.verdicts[0].code == Verdict.OUTSIDE_BASKET
    assert hit.verdicts[0].code == Verdict.ACCEPTED


def test_negative_objects_never_push_the_score_below_zero():
    bomb = catch.SpawnedObject(0, "bomb", 1_000, 500, 2_500, -50)
    result = catch.score_catches(CATCH, [bomb], [CatchClaim(0, 3_500, 500)])
    assert (result.verdicts[0].points, result.score) == (-50, 0)


def test_claims_must_be_in_time_order_and_on_the_field():
    with pytest.raises(InvalidArgument) as raised:
        catch.validate_catch_claims(
            [CatchClaim(1, 5_000, 10), CatchClaim(2, 4_000, 1_000), CatchClaim(3, 40_000, -1)],
            CATCH,
        )
    assert {v.field for v in raised.value.violations} == {
        "catches[1].catch_millis",
        "catches[1].basket_x",
        "catches[2].catch_millis",
        "catches[2].basket_x",
    }


def test_awards_are_clamped_to_the_session_and_daily_caps():
    assert catch.award_after_caps(900, CATCH, earned_today=0) == 500
    assert catch.award_after_caps(400, CATCH, earned_today=500) == 300
    assert catch.award_after_caps(400, CATCH, earned_today=900) == 0


def test_submission_fingerprints_tell_replays_from_new_attempts():
    claims = [CatchClaim(1, 2, 3)]
    assert catch.submission_fingerprint(claims, 10) == catch.submission_fingerprint(claims, 10)
    assert catch.submission_fingerprint(claims, 10) != catch.submission_fingerprint(claims, 11)


VERIFIER = Path(__file__).parents[2] / "tools" / "verify_spin.py"


def verifier(vector: dict, seed: str) -> list[str]:
    """tools/verify_spin.py's command line for a vector's spin with `seed`."""
    return [
        sys.executable,
        str(VERIFIER),
        "--server-seed",
        seed,
        "--client-seed",
        vector["client_seed"],
        "--nonce",
        str(vector["nonce"]),
        "--weights",
        ",".join(map(str, vector["weights"])),
    ]


@pytest.mark.parametrize(
    "vector", VECTORS["draws"][:4], ids=lambda v: f"{v['client_seed']}:{v['nonce']}"
)
def test_the_standalone_verifier_agrees_with_the_vectors(vector):
    seed = vector["server_seed"]
    commitment = hashlib.sha256(bytes.fromhex(seed)).hexdigest()
    arguments = [*verifier(vector, seed), "--commitment", commitment]
    honest = subprocess.run(
        [*arguments, "--expect-segment", str(vector["segment_index"])], check=False
    )
    assert honest.returncode == 0
    wrong = (vector["segment_index"] + 1) % len(vector["weights"])
    tampered = subprocess.run(
        [*arguments, "--expect-segment", str(wrong)], capture_output=True, check=False
    )
    assert tampered.returncode == 1


def test_the_standalone_verifier_refuses_to_verify_without_the_commitment():
    """A tampered seed with no commitment to check it against is not verified."""
    without = subprocess.run(
        verifier(VECTORS["draws"][0], "ff" * 32),
        capture_output=True,
        text=True,
        check=False,
    )
    assert without.returncode != 0
    assert "--commitment" in without.stderr


# ---------------------------------------------------------------- is a human playing?

Sample = catch.BasketSample


def still(x: int, until: int, step: int = 100) -> list[catch.BasketSample]:
    return [Sample(m, x) for m in range(0, until + 1, step)]


def test_an_honest_traced_play_is_accepted_in_full():
    spawns = schedule()
    play = honest_play(CATCH, spawns)
    claims = [CatchClaim(o, m, x) for o, m, x in play.catches]
    trace = [Sample(m, x) for m, x in play.trace]
    result = catch.score_catches(CATCH, spawns, claims, trace)
    assert result.findings == ()
    assert len(claims) >= 5
    assert {v.code for v in result.verdicts} == {Verdict.ACCEPTED}


def test_a_trace_with_gaps_or_too_short_is_missing():
    assert catch.judge_trace(CATCH, [], 0) == (catch.Finding.TRACE_MISSING,)
    gappy = [Sample(0, 500), Sample(100, 500), Sample(400, 500), Sample(500, 500)]
    assert catch.judge_trace(CATCH, gappy, 0) == (catch.Finding.TRACE_MISSING,)
    assert catch.judge_trace(CATCH, still(500, 1_000), 2_000) == (catch.Finding.TRACE_MISSING,)
    assert catch.judge_trace(CATCH, still(500, 2_000), 2_000) == ()


def test_a_basket_that_teleports_or_jolts_is_not_a_persons():
    teleport = [*still(100, 1_000), Sample(1_020, 900), *still(900, 2_000)[11:]]
    assert catch.Finding.TRACE_TOO_FAST in catch.judge_trace(CATCH, teleport, 0)
    # Within top speed (800/s), but from rest to full speed and back within 50 ms steps.
    jolt = [
        Sample(m, 100 if m <= 1_000 else min(900, 100 + (m - 1_000) * 8 // 10))
        for m in range(0, 3_000, 50)
    ]
    assert catch.judge_trace(CATCH, jolt, 0) == (catch.Finding.INHUMAN_ACCELERATION,)


def test_setting_off_sooner_after_the_reveal_than_a_person_can_is_refused():
    coin = catch.SpawnedObject(0, "coin", 1_000, 900, 2_000, 10)
    revealed = catch.reveal_millis(CATCH, coin)  # 250 ms before it spawns
    assert revealed == 750

    def trace_leaving_at(leave: int) -> list[catch.BasketSample]:
        """Still at 500, then an eased move to 900 that ends as the coin lands."""
        samples = []
        for m in range(0, 3_001, 20):
            share = 0.0 if m <= leave else min(1.0, (m - leave) / (3_000 - leave))
            samples.append(Sample(m, round(500 + 400 * (1 - math.cos(math.pi * share)) / 2)))
        return samples

    claim = CatchClaim(0, 3_000, 900)
    hasty = trace_leaving_at(revealed + 60)
    human = trace_leaving_at(revealed + CATCH.min_reaction_millis + 40)
    assert catch.score_catches(CATCH, [coin], [claim], hasty).verdicts[0].code == (
        Verdict.REACTION_TOO_FAST
    )
    assert catch.score_catches(CATCH, [coin], [claim], human).verdicts[0].code == Verdict.ACCEPTED
    # Already over the basket at its reveal: nothing to react to.
    near = catch.SpawnedObject(0, "coin", 1_000, 520, 2_000, 10)
    resting = catch.score_catches(CATCH, [near], [CatchClaim(0, 3_000, 500)], still(500, 3_000))
    assert resting.verdicts[0].code == Verdict.ACCEPTED


def test_a_catch_must_be_where_the_trace_has_the_basket():
    coin = catch.SpawnedObject(0, "coin", 1_000, 520, 2_000, 10)
    result = catch.score_catches(CATCH, [coin], [CatchClaim(0, 3_000, 540)], still(500, 3_000))
    assert result.verdicts[0].code == Verdict.TRACE_MISMATCH


def test_an_object_with_a_width_is_caught_where_the_extents_overlap():
    wide = catch.SpawnedObject(0, "crate", 1_000, 600, 2_000, 10, width=40)
    # Basket 100 wide at 530: it reaches 580, the crate starts at 580.
    assert catch.score_catches(CATCH, [wide], [CatchClaim(0, 3_000, 530)]).score == 10
    assert catch.score_catches(CATCH, [wide], [CatchClaim(0, 3_000, 529)]).score == 0
