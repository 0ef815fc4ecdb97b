"""Wheels: their configuration and its validation, the canonical form whose
SHA-256 is published as `config_sha256`, the effective odds of an odds version,
and where the wheel stops for a draw."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, replace

from services.games.domain.calendar import check_zone
from services.games.domain.canonical import canonical_json
from services.games.domain.draw import ALGORITHM
from services.kit.errors import Violations
from services.kit.ids import POINTS, PRIZE_UNIT, check_id
from services.kit.text import shown

MAX_SEGMENTS = 64
COLOR = re.compile(r"#[0-9A-Fa-f]{6}")
ICON = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
MAX_SHORT_LABEL = 16
MAX_TOTAL_WEIGHT = 1_000_000_000
BASIS_POINTS_TOTAL = 10_000
# The canonical form `config_sha256` hashes (docs/games.md, "The configuration hash").
CANONICAL_FORM = 2


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
    # How a frontend draws the slice; no rule reads them.
    color: str = ""
    icon: str = ""
    short_label: str = ""


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
        """The configured weights: what the draw is taken over."""
        return [segment.weight for segment in self.segments]

    @property
    def prize_units(self) -> list[str]:
        """The pools this wheel pays from, in first-use order."""
        units: list[str] = []
        for segment in self.segments:
            if not segment.prize.is_nothing and segment.prize.pool_unit not in units:
                units.append(segment.prize.pool_unit)
        return units


def validate_prize(prize: Prize, path: str, violations: Violations) -> None:
    if prize.unit:
        check_id(violations, f"{path}.item.unit", prize.unit, PRIZE_UNIT)
        violations.check(prize.quantity >= 1, f"{path}.item.quantity", "must be at least 1")
    elif prize.points < 0:
        violations.add(f"{path}.points", "must be at least 1")


def validate_display(segment: Segment, where: str, violations: Violations) -> None:
    if segment.color:
        violations.check(
            COLOR.fullmatch(segment.color) is not None,
            f"{where}.color",
            f'must be a CSS hex colour like "#FFB400", got {shown(segment.color)}',
        )
    if segment.icon:
        violations.check(
            ICON.fullmatch(segment.icon) is not None,
            f"{where}.icon",
            f"must be 1 to 40 lower-case letters, digits or -, got {shown(segment.icon)}",
        )
    violations.check(
        len(segment.short_label) <= MAX_SHORT_LABEL and segment.short_label.isprintable(),
        f"{where}.short_label",
        f"must be at most {MAX_SHORT_LABEL} printable characters",
    )


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
            validate_display(segment, where, violations)
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
    check_zone(violations, f"{path}.time_zone", config.time_zone)
    if config.start_us is not None and config.end_us is not None:
        violations.check(
            config.start_us < config.end_us, f"{path}.end_time", "must be after start_time"
        )
    violations.raise_if_any()


# ---------------------------------------------------------------- partial updates

# The API's names of the fields an update may change (AIP-134), and ours.
UPDATABLE = {
    "display_name": "display_name",
    "segments": "segments",
    "fallback_segment_index": "fallback_segment_index",
    "cost_points": "cost_points",
    "spins_per_day": "spins_per_day",
    "time_zone": "time_zone",
    "start_time": "start_us",
    "end_time": "end_us",
}
EVERYTHING = "*"


def check_update_paths(paths: Sequence[str]) -> None:
    """INVALID_ARGUMENT naming each path an update cannot change, or none at all."""
    violations = Violations()
    violations.check(bool(paths), "update_mask", "nothing to change: set a field or name it")
    if not violations.check(
        len(paths) <= len(UPDATABLE),
        "update_mask.paths",
        f"at most {len(UPDATABLE)} paths: {', '.join(UPDATABLE)}, or {EVERYTHING!r} alone",
    ):
        violations.raise_if_any()
    for index, path in enumerate(paths):
        violations.check(
            path in UPDATABLE or (path == EVERYTHING and len(paths) == 1),
            f"update_mask.paths[{index}]",
            f"is not a field an update changes (nor {EVERYTHING!r} alone): {shown(path)}",
        )
    violations.raise_if_any()


def updated_config(current: WheelConfig, patch: WheelConfig, paths: Sequence[str]) -> WheelConfig:
    """`current` with the fields `paths` names taken from `patch` ("*": all of them)."""
    if EVERYTHING in paths:
        return patch
    return replace(current, **{UPDATABLE[path]: getattr(patch, UPDATABLE[path]) for path in paths})


# ---------------------------------------------------------------- canonical form


def _prize_form(prize: Prize) -> dict:
    if prize.unit:
        return {"item": {"quantity": prize.quantity, "unit": prize.unit}}
    if prize.points:
        return {"points": prize.points}
    return {}


def canonical_document(config: WheelConfig, sold_out: Collection[int]) -> dict:
    """What `config_sha256` hashes, in the API's own field names (docs/games.md)."""
    return {
        "algorithm": ALGORITHM,
        "form": CANONICAL_FORM,
        "config": {
            "display_name": config.display_name,
            "segments": [
                {
                    "label": segment.label,
                    "weight": segment.weight,
                    "prize": _prize_form(segment.prize),
                    "max_wins_per_member_per_day": segment.max_wins_per_member_per_day,
                    "color": segment.color,
                    "icon": segment.icon,
                    "short_label": segment.short_label,
                }
                for segment in config.segments
            ],
            "fallback_segment_index": config.fallback_segment_index,
            "cost_points": config.cost_points,
            "spins_per_day": config.spins_per_day,
            "time_zone": config.time_zone,
            "start_time_us": config.start_us,
            "end_time_us": config.end_us,
        },
        "sold_out": sorted(sold_out),
    }


def config_hash(config: WheelConfig, sold_out: Collection[int]) -> str:
    document = canonical_json(canonical_document(config, sold_out))
    return hashlib.sha256(document.encode()).hexdigest()


def stored_document(config: WheelConfig, sold_out: Collection[int]) -> dict:
    """How an odds version is stored (the dataclasses' own names; not published)."""
    return {"algorithm": ALGORITHM, "config": asdict(config), "sold_out": sorted(sold_out)}


def config_from_stored(document: dict) -> WheelConfig:
    raw = dict(document["config"])
    raw["segments"] = tuple(
        Segment(**{**segment, "prize": Prize(**segment["prize"])}) for segment in raw["segments"]
    )
    return WheelConfig(**raw)


# ---------------------------------------------------------------- odds


@dataclass(frozen=True, slots=True)
class Odds:
    """A segment's chance of being where the wheel stops, as an exact fraction
    and in hundredths of a percent."""

    index: int
    weight: int
    total_weight: int
    basis_points: int

    @property
    def percent(self) -> str:
        return f"{self.basis_points // 100}.{self.basis_points % 100:02d}"


def exact_odds(weights: Sequence[int]) -> list[Odds]:
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


def effective_weights(config: WheelConfig, sold_out: Collection[int]) -> list[int]:
    """Where the wheel stops, by weight: a sold-out segment is drawn as often as
    configured but lands on the fallback, so its weight moves there."""
    weights = config.weights
    fallback = config.fallback_segment_index
    for index in sorted(sold_out):
        if index != fallback and not config.segments[index].prize.is_nothing:
            weights[fallback] += weights[index]
            weights[index] = 0
    return weights


def published_odds(config: WheelConfig, sold_out: Collection[int]) -> list[Odds]:
    """The odds a member really has on this odds version (before any daily win cap
    of their own): exact fractions of the total weight, percentages adding up to 100."""
    return exact_odds(effective_weights(config, sold_out))


# ---------------------------------------------------------------- landing


class FallbackReason:
    SOLD_OUT = "SOLD_OUT"
    CAP_REACHED = "CAP_REACHED"


@dataclass(frozen=True, slots=True)
class Landing:
    segment_index: int
    prize: Prize
    fallback_reason: str | None


def land(config: WheelConfig, drawn: int, sold_out: Collection[int], wins_today: int) -> Landing:
    """Where the wheel stops: the drawn segment, or the fallback when its prize
    is known to be sold out or the member reached its daily win cap."""
    segment = config.segments[drawn]
    if drawn in sold_out and not segment.prize.is_nothing:
        return fall_back(config, FallbackReason.SOLD_OUT)
    cap = segment.max_wins_per_member_per_day
    if cap and wins_today >= cap:
        return fall_back(config, FallbackReason.CAP_REACHED)
    return Landing(drawn, segment.prize, None)


def fall_back(config: WheelConfig, reason: str) -> Landing:
    fallback = config.fallback_segment_index
    return Landing(fallback, config.segments[fallback].prize, reason)


def segments_paid_from(config: WheelConfig, unit: str) -> list[int]:
    return [
        index
        for index, segment in enumerate(config.segments)
        if not segment.prize.is_nothing and segment.prize.pool_unit == unit
    ]


def sold_out_after_refusal(
    config: WheelConfig, sold_out: Collection[int], refused: Prize
) -> list[int]:
    """The pool could not pay `refused`: every segment of that pool paying as much
    or more is sold out too."""
    return sorted(
        set(sold_out)
        | {
            index
            for index in segments_paid_from(config, refused.pool_unit)
            if config.segments[index].prize.amount >= refused.amount
        }
    )
