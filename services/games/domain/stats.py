"""The chi-square goodness-of-fit test of observed draws against the weights."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


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
