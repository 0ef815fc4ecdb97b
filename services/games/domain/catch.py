"""Catch-to-earn: the rules of a game, its spawn schedule drawn from the
session seed, server-authoritative scoring of the catches, and the caps."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise

from services.games.domain.calendar import check_zone
from services.games.domain.canonical import canonical_json
from services.games.domain.draw import DrawStream, segment_for
from services.kit.errors import Violations

MAX_OBJECT_TYPES = 16
MAX_CATCHES = 2_000
MAX_TOTAL_SPAWN_WEIGHT = 1_000_000_000
MAX_SAMPLES = 20_000
# Defaults of a game's plausibility rules (docs/games.md, "Is a human playing?").
DEFAULT_REVEAL_LEAD_MILLIS = 250
DEFAULT_MIN_REACTION_MILLIS = 150
# Without a maximum acceleration: from rest to top speed in a tenth of a second.
ACCELERATION_PER_TOP_SPEED = 10
# A trace must sample the basket at least this often...
MAX_SAMPLE_GAP_MILLIS = 250
# ...and its acceleration is judged over steps at least this long, so that whole
# units of position sampled every few milliseconds do not read as jolts.
ACCELERATION_STEP_MILLIS = 50


@dataclass(frozen=True, slots=True)
class ObjectType:
    name: str
    points: int
    spawn_weight: int
    fall_millis: int
    # The object's width in position units (0: a point), centred on its x.
    width: int = 0


@dataclass(frozen=True, slots=True)
class CatchConfig:
    display_name: str
    duration_millis: int
    spawn_interval_millis: int
    field_width: int
    basket_width: int
    basket_top_speed: int
    catch_window_millis: int
    object_types: tuple[ObjectType, ...]
    session_score_cap: int
    daily_points_cap: int
    time_zone: str
    submit_grace_millis: int
    reveal_lead_millis: int = DEFAULT_REVEAL_LEAD_MILLIS
    min_reaction_millis: int = DEFAULT_MIN_REACTION_MILLIS
    # Position units per second per second (0: ACCELERATION_PER_TOP_SPEED x top speed).
    basket_max_acceleration: int = 0

    @property
    def max_acceleration(self) -> int:
        return self.basket_max_acceleration or ACCELERATION_PER_TOP_SPEED * self.basket_top_speed


def validate_catch_config(config: CatchConfig, path: str = "config") -> None:
    violations = Violations()
    violations.check(
        1_000 <= config.duration_millis <= 600_000, f"{path}.duration_millis", "1 s to 10 min"
    )
    violations.check(
        100 <= config.spawn_interval_millis <= config.duration_millis,
        f"{path}.spawn_interval_millis",
        "must be at least 100 and at most duration_millis",
    )
    violations.check(1 <= config.field_width <= 100_000, f"{path}.field_width", "1 to 100,000")
    violations.check(
        1 <= config.basket_width <= config.field_width,
        f"{path}.basket_width",
        "must be at least 1 and at most field_width",
    )
    violations.check(config.basket_top_speed >= 1, f"{path}.basket_top_speed", "must be positive")
    violations.check(
        config.catch_window_millis >= 1, f"{path}.catch_window_millis", "must be positive"
    )
    if violations.check(
        1 <= len(config.object_types) <= MAX_OBJECT_TYPES,
        f"{path}.object_types",
        f"1 to {MAX_OBJECT_TYPES} object types",
    ):
        names = set()
        for index, kind in enumerate(config.object_types):
            where = f"{path}.object_types[{index}]"
            violations.check(1 <= len(kind.name) <= 32, f"{where}.name", "1 to 32 characters")
            violations.check(kind.name not in names, f"{where}.name", "names must be unique")
            names.add(kind.name)
            violations.check(
                kind.spawn_weight >= 0, f"{where}.spawn_weight", "must not be negative"
            )
            violations.check(
                1 <= kind.fall_millis < config.duration_millis,
                f"{where}.fall_millis",
                "must be positive and shorter than duration_millis",
            )
            violations.check(
                0 <= kind.width <= config.field_width,
                f"{where}.width",
                "must be 0 to field_width",
            )
        violations.check(
            0 < sum(kind.spawn_weight for kind in config.object_types) <= MAX_TOTAL_SPAWN_WEIGHT,
            f"{path}.object_types",
            f"the spawn weights must add up to 1 .. {MAX_TOTAL_SPAWN_WEIGHT}",
        )
    violations.check(config.session_score_cap >= 1, f"{path}.session_score_cap", "at least 1")
    violations.check(config.daily_points_cap >= 0, f"{path}.daily_points_cap", "not negative")
    check_zone(violations, f"{path}.time_zone", config.time_zone)
    violations.check(
        0 <= config.submit_grace_millis <= 600_000,
        f"{path}.submit_grace_millis",
        "0 to 600,000",
    )
    violations.check(
        0 <= config.reveal_lead_millis <= 10_000, f"{path}.reveal_lead_millis", "0 to 10,000"
    )
    violations.check(
        0 <= config.min_reaction_millis <= 1_000, f"{path}.min_reaction_millis", "0 to 1,000"
    )
    violations.check(
        config.basket_max_acceleration >= 0,
        f"{path}.basket_max_acceleration",
        "must not be negative",
    )
    violations.raise_if_any()


def catch_config_from_stored(document: dict) -> CatchConfig:
    raw = dict(document)
    raw["object_types"] = tuple(ObjectType(**item) for item in raw["object_types"])
    return CatchConfig(**raw)


def stored_catch_config(config: CatchConfig) -> str:
    return canonical_json(asdict(config))


@dataclass(frozen=True, slots=True)
class SpawnedObject:
    object_id: int
    type: str
    spawn_millis: int
    x: int
    fall_millis: int
    points: int
    width: int = 0

    @property
    def land_millis(self) -> int:
        return self.spawn_millis + self.fall_millis


def reveal_millis(config: CatchConfig, spawned: SpawnedObject) -> int:
    """When the server reveals an object: reveal_lead_millis before it spawns."""
    return max(0, spawned.spawn_millis - config.reveal_lead_millis)


def spawn_schedule(
    config: CatchConfig, session_seed: bytes, session_id: str
) -> list[SpawnedObject]:
    """Deterministic from the seed: the hmac-sha256-v1 stream with the session
    id as client seed and nonce 0. Per interval i: spawn = i * interval +
    uniform_below(interval // 2), type by cumulative spawn weight, x =
    uniform_below(field_width). Objects that would land after the end are dropped."""
    stream = DrawStream(session_seed, session_id, 0)
    weights = [kind.spawn_weight for kind in config.object_types]
    total = sum(weights)
    interval = config.spawn_interval_millis
    spawns = []
    for object_id in range(config.duration_millis // interval):
        spawn = object_id * interval + stream.uniform_below(max(1, interval // 2))
        kind = config.object_types[segment_for(weights, stream.uniform_below(total))]
        x = stream.uniform_below(config.field_width)
        if spawn + kind.fall_millis <= config.duration_millis:
            spawns.append(
                SpawnedObject(
                    object_id, kind.name, spawn, x, kind.fall_millis, kind.points, kind.width
                )
            )
    return spawns


@dataclass(frozen=True, slots=True)
class CatchClaim:
    object_id: int
    catch_millis: int
    basket_x: int


class Verdict:
    ACCEPTED = "ACCEPTED"
    UNKNOWN_OBJECT = "UNKNOWN_OBJECT"
    DUPLICATE_OBJECT = "DUPLICATE_OBJECT"
    OUTSIDE_WINDOW = "OUTSIDE_WINDOW"
    OUTSIDE_BASKET = "OUTSIDE_BASKET"
    BASKET_TOO_FAST = "BASKET_TOO_FAST"
    # The claimed basket position is not where the submitted trace has it.
    TRACE_MISMATCH = "TRACE_MISMATCH"
    # The basket turned toward the object sooner after its reveal than a person can.
    REACTION_TOO_FAST = "REACTION_TOO_FAST"


class Finding:
    """Why a whole trace is not a person's (any one voids the session's award)."""

    # Fewer than two samples, a gap longer than MAX_SAMPLE_GAP_MILLIS, or not
    # covering the play up to its last catch.
    TRACE_MISSING = "TRACE_MISSING"
    # Somewhere the basket moved faster than its top speed.
    TRACE_TOO_FAST = "TRACE_TOO_FAST"
    # Somewhere its speed changed faster than the game's maximum acceleration.
    INHUMAN_ACCELERATION = "INHUMAN_ACCELERATION"


@dataclass(frozen=True, slots=True)
class BasketSample:
    """Where the basket's centre was, milliseconds after the session's start."""

    millis: int
    x: int


@dataclass(frozen=True, slots=True)
class CatchVerdict:
    object_id: int
    code: str
    points: int


@dataclass(frozen=True, slots=True)
class CatchScore:
    verdicts: tuple[CatchVerdict, ...]
    # 0 when the trace has findings: nothing is awarded and nothing ranks.
    score: int
    findings: tuple[str, ...] = ()


def validate_catch_claims(
    claims: Sequence[CatchClaim], config: CatchConfig, trace: Sequence[BasketSample] = ()
) -> None:
    violations = Violations()
    violations.check(len(trace) <= MAX_SAMPLES, "trace", f"at most {MAX_SAMPLES} samples")
    last = 0
    for index, sample in enumerate(trace[:MAX_SAMPLES]):
        where = f"trace[{index}]"
        violations.check(
            last <= sample.millis <= config.duration_millis,
            f"{where}.millis",
            "samples must be in time order, within the session's duration",
        )
        last = max(last, sample.millis)
        violations.check(0 <= sample.x < config.field_width, f"{where}.x", "must be on the field")
        if len(violations.items) >= 20:
            break
    violations.check(len(claims) <= MAX_CATCHES, "catches", f"at most {MAX_CATCHES} catches")
    previous = 0
    for index, claim in enumerate(claims):
        where = f"catches[{index}]"
        violations.check(
            0 <= claim.catch_millis <= config.duration_millis,
            f"{where}.catch_millis",
            "must be within the session's duration",
        )
        violations.check(
            claim.catch_millis >= previous,
            f"{where}.catch_millis",
            "catches must be in the order they happened",
        )
        previous = max(previous, claim.catch_millis)
        violations.check(
            0 <= claim.basket_x < config.field_width, f"{where}.basket_x", "must be on the field"
        )
    violations.raise_if_any()


def position_at(trace: Sequence[BasketSample], millis: int) -> float:
    """The basket's position at `millis`, linear between samples (held at the ends)."""
    if millis <= trace[0].millis:
        return trace[0].x
    for before, after in pairwise(trace):
        if before.millis <= millis <= after.millis:
            if after.millis == before.millis:
                return after.x
            share = (millis - before.millis) / (after.millis - before.millis)
            return before.x + share * (after.x - before.x)
    return trace[-1].x


def judge_trace(
    config: CatchConfig, trace: Sequence[BasketSample], last_catch_millis: int
) -> tuple[str, ...]:
    """The findings against a whole trace (docs/games.md, "Is a human playing?")."""
    covered = (
        len(trace) >= 2
        and trace[0].millis <= MAX_SAMPLE_GAP_MILLIS
        and trace[-1].millis >= last_catch_millis
        and all(b.millis - a.millis <= MAX_SAMPLE_GAP_MILLIS for a, b in pairwise(trace))
    )
    if not covered:
        return (Finding.TRACE_MISSING,)
    findings = []
    # One unit of slack per step: positions are whole units.
    if any(
        (abs(b.x - a.x) - 1) * 1_000 > config.basket_top_speed * (b.millis - a.millis)
        for a, b in pairwise(trace)
    ):
        findings.append(Finding.TRACE_TOO_FAST)
    steps = [trace[0]]
    for sample in trace[1:]:
        if sample.millis - steps[-1].millis >= ACCELERATION_STEP_MILLIS:
            steps.append(sample)
    speeds = [
        ((b.x - a.x) * 1_000 / (b.millis - a.millis), (a.millis + b.millis) / 2)
        for a, b in pairwise(steps)
    ]
    for (v1, t1), (v2, t2) in pairwise(speeds):
        if abs(v2 - v1) * 1_000 > config.max_acceleration * (t2 - t1):
            findings.append(Finding.INHUMAN_ACCELERATION)
            break
    return tuple(findings)


def reacted_too_fast(
    config: CatchConfig, trace: Sequence[BasketSample], spawned: SpawnedObject, claim: CatchClaim
) -> bool:
    """Whether the basket set off toward the object sooner than min_reaction_millis
    after its reveal. It set off when it was last about as far from the object as at
    the reveal (within one unit, positions being whole units). An object already
    over the basket needs no reaction, and a basket already heading its way at the
    reveal is chance, not knowledge."""
    revealed = reveal_millis(config, spawned)
    reach = (config.basket_width + spawned.width) / 2
    at_reveal = abs(position_at(trace, revealed) - spawned.x)
    if at_reveal <= reach:
        return False
    before = abs(position_at(trace, max(0, revealed - ACCELERATION_STEP_MILLIS)) - spawned.x)
    if before > at_reveal + 1:
        return False
    set_off = max(
        (
            sample.millis
            for sample in trace
            if sample.millis <= claim.catch_millis and abs(sample.x - spawned.x) >= at_reveal - 1
        ),
        default=revealed,
    )
    return set_off < revealed + config.min_reaction_millis


def score_catches(
    config: CatchConfig,
    spawns: Sequence[SpawnedObject],
    claims: Sequence[CatchClaim],
    trace: Sequence[BasketSample] | None = None,
) -> CatchScore:
    """Server-authoritative scoring. The basket starts at the centre at time 0
    and only accepted catches move it; each catch must be reachable from the
    previous accepted one at the basket's top speed. With a trace (every game
    asks for one), each catch must be where the trace has the basket, reached
    after a human's reaction time, and the trace itself must be a person's."""
    by_id = {spawned.object_id: spawned for spawned in spawns}
    seen: set[int] = set()
    at_millis, at_x = 0, config.field_width // 2
    findings: tuple[str, ...] = ()
    if trace is not None:
        findings = judge_trace(config, trace, max((c.catch_millis for c in claims), default=0))
    traced = trace is not None and Finding.TRACE_MISSING not in findings
    verdicts = []
    total = 0
    for claim in claims:
        spawned = by_id.get(claim.object_id)
        if spawned is None:
            code = Verdict.UNKNOWN_OBJECT
        elif claim.object_id in seen:
            code = Verdict.DUPLICATE_OBJECT
        elif not (
            spawned.land_millis - config.catch_window_millis
            <= claim.catch_millis
            <= spawned.land_millis
        ):
            code = Verdict.OUTSIDE_WINDOW
        elif abs(claim.basket_x - spawned.x) * 2 > config.basket_width + spawned.width:
            code = Verdict.OUTSIDE_BASKET
        elif abs(claim.basket_x - at_x) * 1_000 > config.basket_top_speed * (
            claim.catch_millis - at_millis
        ):
            code = Verdict.BASKET_TOO_FAST
        elif traced and abs(position_at(trace, claim.catch_millis) - claim.basket_x) > 1:
            code = Verdict.TRACE_MISMATCH
        elif traced and reacted_too_fast(config, trace, spawned, claim):
            code = Verdict.REACTION_TOO_FAST
        else:
            code = Verdict.ACCEPTED
        seen.add(claim.object_id)
        points = spawned.points if code == Verdict.ACCEPTED and spawned else 0
        if code == Verdict.ACCEPTED:
            at_millis, at_x = claim.catch_millis, claim.basket_x
            total += points
        verdicts.append(CatchVerdict(claim.object_id, code, points))
    return CatchScore(tuple(verdicts), 0 if findings else max(0, total), findings)


def award_after_caps(score: int, config: CatchConfig, earned_today: int) -> int:
    award = min(score, config.session_score_cap)
    if config.daily_points_cap:
        award = min(award, max(0, config.daily_points_cap - earned_today))
    return award


def daily_points_left(config: CatchConfig, earned_today: int, award: int) -> int:
    """What is left of the daily cap after `award` (0 when uncapped)."""
    if not config.daily_points_cap:
        return 0
    return max(0, config.daily_points_cap - earned_today - award)


def submission_fingerprint(
    claims: Sequence[CatchClaim], claimed_score: int, trace: Sequence[BasketSample] = ()
) -> str:
    """Identifies a submission so a replay is told apart from a second attempt."""
    document = {"claimed_score": claimed_score, "catches": [asdict(claim) for claim in claims]}
    if trace:
        document["trace"] = [[sample.millis, sample.x] for sample in trace]
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()
