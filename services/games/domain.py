"""Rules of the games: wheel validation and odds, the provably fair draw
(hmac-sha256-v1), day and week boundaries, catch sessions and their scoring,
and the chi-square test of observed draws. No grpc, no sqlite."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.kit.clock import from_datetime, to_datetime
from services.kit.errors import Violations

ALGORITHM = "hmac-sha256-v1"
POINTS = "points"
SERVER_SEED_BYTES = 32
MAX_SEGMENTS = 64
MAX_TOTAL_WEIGHT = 1_000_000_000
BASIS_POINTS_TOTAL = 10_000
MAX_OBJECT_TYPES = 16
MAX_CATCHES = 2_000

ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Member ids become ledger account ids, so they exclude ":" and "/", which
# separate the parts of the suite's other account ids.
MEMBER_ID_PATTERN = re.compile(r"[A-Za-z0-9._@+-]{1,64}")
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
PRIZE_UNIT_PATTERN = re.compile(r"prize:[a-z0-9][a-z0-9-]{0,62}")
CLIENT_SEED_PATTERN = re.compile(r"[\x21-\x39\x3b-\x7e]{1,64}")  # printable ASCII without ":"


# ---------------------------------------------------------------- the draw


class DrawStream:
    """The hmac-sha256-v1 byte stream: HMAC-SHA256(key = server seed bytes,
    message = UTF-8 of "{client_seed}:{nonce}:{round}") for round = 0, 1, 2, ...
    concatenated, read four bytes at a time as big-endian unsigned integers."""

    def __init__(self, server_seed: bytes, client_seed: str, nonce: int) -> None:
        self._key = server_seed
        self._prefix = f"{client_seed}:{nonce}:"
        self._round = 0
        self._buffer = b""

    def next_u32(self) -> int:
        if len(self._buffer) < 4:
            message = f"{self._prefix}{self._round}".encode()
            self._buffer += hmac.new(self._key, message, hashlib.sha256).digest()
            self._round += 1
        word, self._buffer = self._buffer[:4], self._buffer[4:]
        return int.from_bytes(word, "big")

    def uniform_below(self, n: int) -> int:
        """Rejection sampling, so every value below n is exactly equally likely."""
        if not 0 < n <= 2**32:
            raise ValueError(f"n must be in 1..2^32, got {n}")
        limit = (2**32 // n) * n
        while True:
            x = self.next_u32()
            if x < limit:
                return x % n


def segment_for(weights: Sequence[int], r: int) -> int:
    """The first index whose cumulative weight exceeds r."""
    cumulative = 0
    for index, weight in enumerate(weights):
        cumulative += weight
        if cumulative > r:
            return index
    raise ValueError(f"r={r} is not below the total weight {cumulative}")


@dataclass(frozen=True, slots=True)
class Draw:
    value: int
    segment_index: int


def draw_segment(server_seed: bytes, client_seed: str, nonce: int, weights: Sequence[int]) -> Draw:
    r = DrawStream(server_seed, client_seed, nonce).uniform_below(sum(weights))
    return Draw(value=r, segment_index=segment_for(weights, r))


def seed_commitment(server_seed: bytes) -> str:
    return hashlib.sha256(server_seed).hexdigest()


# ---------------------------------------------------------------- wheels


@dataclass(frozen=True, slots=True)
class Prize:
    """Nothing, points, or a quantity of a prize unit."""

    points: int = 0
    unit: str = ""
    quantity: int = 0

    @property
    def is_nothing(self) -> bool:
        return self.points == 0 and not self.unit

    @property
    def pool_unit(self) -> str:
        return self.unit or POINTS

    @property
    def amount(self) -> int:
        return self.quantity if self.unit else self.points


NOTHING = Prize()


@dataclass(frozen=True, slots=True)
class Segment:
    label: str
    weight: int
    prize: Prize = NOTHING
    max_wins_per_member_per_day: int = 0


@dataclass(frozen=True, slots=True)
class WheelConfig:
    display_name: str
    segments: tuple[Segment, ...]
    fallback_segment_index: int
    cost_points: int
    spins_per_day: int
    time_zone: str
    start_us: int | None = None
    end_us: int | None = None

    @property
    def weights(self) -> list[int]:
        return [segment.weight for segment in self.segments]

    @property
    def prize_units(self) -> list[str]:
        """The pools this wheel pays from, in first-use order."""
        units: list[str] = []
        for segment in self.segments:
            if not segment.prize.is_nothing and segment.prize.pool_unit not in units:
                units.append(segment.prize.pool_unit)
        return units


def zone_of(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def validate_prize(prize: Prize, path: str, violations: Violations) -> None:
    if prize.unit:
        violations.check(
            PRIZE_UNIT_PATTERN.fullmatch(prize.unit) is not None,
            f"{path}.item.unit",
            'must look like "prize:<slug>" (lower-case letters, digits and -)',
        )
        violations.check(prize.quantity >= 1, f"{path}.item.quantity", "must be at least 1")
    elif prize.points < 0:
        violations.add(f"{path}.points", "must be at least 1")


def validate_wheel_config(config: WheelConfig, path: str = "config") -> None:
    """Raises InvalidArgument naming every bad field."""
    violations = Violations()
    segments = config.segments
    if violations.check(
        2 <= len(segments) <= MAX_SEGMENTS,
        f"{path}.segments",
        f"a wheel needs 2 to {MAX_SEGMENTS} segments",
    ):
        for index, segment in enumerate(segments):
            where = f"{path}.segments[{index}]"
            violations.check(1 <= len(segment.label) <= 64, f"{where}.label", "1 to 64 characters")
            violations.check(segment.weight >= 0, f"{where}.weight", "must not be negative")
            violations.check(
                segment.max_wins_per_member_per_day >= 0,
                f"{where}.max_wins_per_member_per_day",
                "must not be negative",
            )
            validate_prize(segment.prize, f"{where}.prize", violations)
        total = sum(segment.weight for segment in segments)
        violations.check(total > 0, f"{path}.segments", "the weights must add up to more than 0")
        violations.check(
            total <= MAX_TOTAL_WEIGHT,
            f"{path}.segments",
            f"the weights must add up to at most {MAX_TOTAL_WEIGHT}",
        )
        fallback = config.fallback_segment_index
        if violations.check(
            0 <= fallback < len(segments),
            f"{path}.fallback_segment_index",
            "must be the index of a segment",
        ):
            # The fallback is what a member gets when stock or caps refuse the
            # drawn prize, so it must itself never be refused.
            violations.check(
                segments[fallback].prize.is_nothing,
                f"{path}.fallback_segment_index",
                "the fallback segment must award nothing",
            )
    violations.check(config.cost_points >= 0, f"{path}.cost_points", "must not be negative")
    violations.check(config.spins_per_day >= 0, f"{path}.spins_per_day", "must not be negative")
    violations.check(
        zone_of(config.time_zone) is not None, f"{path}.time_zone", "must be an IANA time zone"
    )
    if config.start_us is not None and config.end_us is not None:
        violations.check(
            config.start_us < config.end_us, f"{path}.end_time", "must be after start_time"
        )
    violations.raise_if_any()


def canonical_json(document: object) -> str:
    """Sorted keys, no spaces, ASCII: the same bytes in any language."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def wheel_document(config: WheelConfig, sold_out: Sequence[int]) -> dict:
    """What an odds version publishes; its SHA-256 is the config hash."""
    return {
        "algorithm": ALGORITHM,
        "config": asdict(config),
        "sold_out": sorted(sold_out),
    }


def config_from_document(document: dict) -> WheelConfig:
    raw = dict(document["config"])
    raw["segments"] = tuple(
        Segment(**{**segment, "prize": Prize(**segment["prize"])}) for segment in raw["segments"]
    )
    return WheelConfig(**raw)


def config_hash(config: WheelConfig, sold_out: Sequence[int]) -> str:
    return hashlib.sha256(canonical_json(wheel_document(config, sold_out)).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Odds:
    index: int
    weight: int
    total_weight: int
    basis_points: int

    @property
    def percent(self) -> str:
        return f"{self.basis_points // 100}.{self.basis_points % 100:02d}"


def published_odds(weights: Sequence[int]) -> list[Odds]:
    """Exact fractions, and hundredths of a percent that add up to exactly
    10,000 by largest-remainder rounding (ties go to the lower index)."""
    total = sum(weights)
    floors = [weight * BASIS_POINTS_TOTAL // total for weight in weights]
    remainders = [weight * BASIS_POINTS_TOTAL % total for weight in weights]
    leftover = BASIS_POINTS_TOTAL - sum(floors)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for index in by_remainder[:leftover]:
        floors[index] += 1
    return [
        Odds(index=i, weight=weight, total_weight=total, basis_points=floors[i])
        for i, weight in enumerate(weights)
    ]


class FallbackReason:
    SOLD_OUT = "SOLD_OUT"
    CAP_REACHED = "CAP_REACHED"


@dataclass(frozen=True, slots=True)
class Landing:
    segment_index: int
    prize: Prize
    fallback_reason: str | None


def land(config: WheelConfig, drawn: int, sold_out: Sequence[int], wins_today: int) -> Landing:
    """Where the wheel stops: the drawn segment, or the fallback when its prize
    is known to be sold out or the member reached its daily win cap."""
    segment = config.segments[drawn]
    fallback = config.fallback_segment_index
    if drawn in sold_out and not segment.prize.is_nothing:
        return Landing(fallback, config.segments[fallback].prize, FallbackReason.SOLD_OUT)
    cap = segment.max_wins_per_member_per_day
    if cap and wins_today >= cap:
        return Landing(fallback, config.segments[fallback].prize, FallbackReason.CAP_REACHED)
    return Landing(drawn, segment.prize, None)


def segments_paid_from(config: WheelConfig, unit: str) -> list[int]:
    return [
        index
        for index, segment in enumerate(config.segments)
        if not segment.prize.is_nothing and segment.prize.pool_unit == unit
    ]


# ---------------------------------------------------------------- ids


def derived_id(prefix: str, *parts: str) -> str:
    """A stable id from business keys, so a retry finds the same play."""
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return f"{prefix}-{digest[:32]}"


def spin_id(member_id: str, request_id: str) -> str:
    return derived_id("s", member_id, request_id)


def catch_session_id(game_id: str, member_id: str, request_id: str) -> str:
    return derived_id("c", game_id, member_id, request_id)


def pool_account(wheel_id: str, unit: str) -> str:
    return f"wheel:{wheel_id}:pool:{unit}"


def member_account(member_id: str, unit: str) -> str:
    return member_id if unit == POINTS else f"{member_id}/{unit}"


def issuance_account(unit: str) -> str:
    return "program:issuance" if unit == POINTS else f"prize-issuance:{unit}"


REVENUE_ACCOUNT = "games:revenue"


# ---------------------------------------------------------------- days and weeks


def local_day(moment_us: int, zone: ZoneInfo) -> date:
    return to_datetime(moment_us).astimezone(zone).date()


def day_start_us(day: date, zone: ZoneInfo) -> int:
    """The first instant of a local day. When midnight falls in a DST gap,
    fold=0 maps it to the transition instant, which is that first instant."""
    return from_datetime(datetime.combine(day, time(0), tzinfo=zone))


def next_day_start_us(moment_us: int, zone: ZoneInfo) -> int:
    return day_start_us(local_day(moment_us, zone) + timedelta(days=1), zone)


def week_start(moment_us: int, zone: ZoneInfo) -> date:
    today = local_day(moment_us, zone)
    return today - timedelta(days=today.weekday())


def in_window(config: WheelConfig, now_us: int) -> bool:
    if config.start_us is not None and now_us < config.start_us:
        return False
    return config.end_us is None or now_us < config.end_us


# ---------------------------------------------------------------- catch-to-earn


@dataclass(frozen=True, slots=True)
class ObjectType:
    name: str
    points: int
    spawn_weight: int
    fall_millis: int


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
            0 < sum(kind.spawn_weight for kind in config.object_types) <= MAX_TOTAL_WEIGHT,
            f"{path}.object_types",
            f"the spawn weights must add up to 1 .. {MAX_TOTAL_WEIGHT}",
        )
    violations.check(config.session_score_cap >= 1, f"{path}.session_score_cap", "at least 1")
    violations.check(config.daily_points_cap >= 0, f"{path}.daily_points_cap", "not negative")
    violations.check(
        zone_of(config.time_zone) is not None, f"{path}.time_zone", "must be an IANA time zone"
    )
    violations.check(
        0 <= config.submit_grace_millis <= 600_000,
        f"{path}.submit_grace_millis",
        "0 to 600,000",
    )
    violations.raise_if_any()


@dataclass(frozen=True, slots=True)
class SpawnedObject:
    object_id: int
    type: str
    spawn_millis: int
    x: int
    fall_millis: int
    points: int

    @property
    def land_millis(self) -> int:
        return self.spawn_millis + self.fall_millis


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
                SpawnedObject(object_id, kind.name, spawn, x, kind.fall_millis, kind.points)
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


@dataclass(frozen=True, slots=True)
class CatchVerdict:
    object_id: int
    code: str
    points: int


@dataclass(frozen=True, slots=True)
class CatchScore:
    verdicts: tuple[CatchVerdict, ...]
    score: int


def validate_catch_claims(claims: Sequence[CatchClaim], config: CatchConfig) -> None:
    violations = Violations()
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


def score_catches(
    config: CatchConfig, spawns: Sequence[SpawnedObject], claims: Sequence[CatchClaim]
) -> CatchScore:
    """Server-authoritative scoring. The basket starts at the centre at time 0
    and only accepted catches move it; each catch must be reachable from the
    previous accepted one at the basket's top speed."""
    by_id = {spawned.object_id: spawned for spawned in spawns}
    seen: set[int] = set()
    at_millis, at_x = 0, config.field_width // 2
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
        elif abs(claim.basket_x - spawned.x) * 2 > config.basket_width:
            code = Verdict.OUTSIDE_BASKET
        elif abs(claim.basket_x - at_x) * 1_000 > config.basket_top_speed * (
            claim.catch_millis - at_millis
        ):
            code = Verdict.BASKET_TOO_FAST
        else:
            code = Verdict.ACCEPTED
        seen.add(claim.object_id)
        points = spawned.points if code == Verdict.ACCEPTED and spawned else 0
        if code == Verdict.ACCEPTED:
            at_millis, at_x = claim.catch_millis, claim.basket_x
            total += points
        verdicts.append(CatchVerdict(claim.object_id, code, points))
    return CatchScore(tuple(verdicts), max(0, total))


def award_after_caps(score: int, config: CatchConfig, earned_today: int) -> int:
    award = min(score, config.session_score_cap)
    if config.daily_points_cap:
        award = min(award, max(0, config.daily_points_cap - earned_today))
    return award


def submission_fingerprint(claims: Sequence[CatchClaim], claimed_score: int) -> str:
    """Identifies a submission so a replay is told apart from a second attempt."""
    document = {"claimed_score": claimed_score, "catches": [asdict(claim) for claim in claims]}
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


# ---------------------------------------------------------------- statistics


@dataclass(frozen=True, slots=True)
class GoodnessOfFit:
    expected: tuple[float, ...]
    chi_square: float
    degrees_of_freedom: int
    p_value: float
    positive_indexes: tuple[int, ...] = field(default=())


def chi_square_test(observed: Sequence[int], weights: Sequence[int]) -> GoodnessOfFit:
    """Pearson's test over the segments with a positive weight (a zero-weight
    segment can never be drawn, so it has no expected count to compare)."""
    total_weight = sum(weights)
    n = sum(observed)
    positive = tuple(i for i, weight in enumerate(weights) if weight > 0)
    expected = tuple(n * weights[i] / total_weight for i in positive)
    statistic = sum(
        (observed[i] - e) ** 2 / e for i, e in zip(positive, expected, strict=True) if e > 0
    )
    dof = len(positive) - 1
    p_value = 1.0 if n == 0 or dof == 0 else upper_regularized_gamma(dof / 2, statistic / 2)
    return GoodnessOfFit(expected, statistic, dof, p_value, positive)


def upper_regularized_gamma(a: float, x: float) -> float:
    """Q(a, x) = Gamma(a, x) / Gamma(a): the chi-square survival function is
    Q(dof / 2, statistic / 2). A series below a + 1, Lentz's continued fraction above."""
    if x <= 0:
        return 1.0
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        denominator = a
        for _ in range(10_000):
            denominator += 1
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)
