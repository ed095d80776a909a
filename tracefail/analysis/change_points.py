"""Change points of a per-step series: where a feature jumps, for the trace screen's chart."""

from __future__ import annotations

import math
from itertools import pairwise


def change_points(values: list[float | None], z: float = 2.0) -> list[int]:
    """Steps where a feature jumps: the step-to-step change is over `z` deviations of all changes."""
    deltas = [
        (i, b - a) for i, (a, b) in enumerate(pairwise(values), start=1) if a is not None and b is not None
    ]
    if len(deltas) < 3:
        return []
    mean = sum(d for _, d in deltas) / len(deltas)
    sd = math.sqrt(sum((d - mean) ** 2 for _, d in deltas) / len(deltas))
    if sd == 0:
        return []
    return [i for i, d in deltas if abs(d - mean) > z * sd]
