"""Change points of a per-step series: where a feature jumps, for the trace screen's chart."""

from __future__ import annotations

from itertools import pairwise
from statistics import median


def change_points(values: list[float | None], k: float = 3.0) -> list[int]:
    """Steps where a feature jumps, by a robust rule that works on short traces: a step-to-step
    change further than `k` scaled median absolute deviations (1.4826 MAD, the normal-consistent
    scale) from the median change. When the MAD is 0 (most changes equal), the largest jump is
    marked if it is more than twice the next largest. A z > 2 rule over n changes can never fire
    when n <= 5 (no point can be more than sqrt(n - 1) deviations from the mean)."""
    deltas = [
        (i, b - a) for i, (a, b) in enumerate(pairwise(values), start=1) if a is not None and b is not None
    ]
    if len(deltas) < 2:
        return []
    centre = median(d for _, d in deltas)
    spread = [(i, abs(d - centre)) for i, d in deltas]
    mad = 1.4826 * median(s for _, s in spread)
    if mad > 0:
        return [i for i, s in spread if s > k * mad]
    ranked = sorted(spread, key=lambda x: x[1], reverse=True)
    if ranked[0][1] > 0 and ranked[0][1] > 2 * ranked[1][1]:
        return [ranked[0][0]]
    return []
