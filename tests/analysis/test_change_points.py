"""Change points of a per-step series (the trace screen's red marks)."""

from __future__ import annotations

from tracefail.analysis.change_points import change_points


def test_change_points_find_the_jump() -> None:
    assert change_points([1.0, 1.1, 1.0, 1.2, 9.0, 9.1, 9.0, 9.2, 9.1]) == [4]
    assert change_points([1.0, 1.0, 1.0, 1.0]) == []
    assert change_points([None, 2.0]) == []


def test_change_points_fire_on_short_traces() -> None:
    # 5 steps: the old z > 2 rule over 4 changes could never mark anything
    assert change_points([0.2, 0.25, 0.3, 2.5, 2.55]) == [3]
    assert change_points([1.0, 1.0, 1.0, 5.0, 5.0]) == [3]  # MAD 0: the clearly largest jump
    assert change_points([1.0, 2.0, 3.0, 4.0, 5.0]) == []  # a steady trend has no jump
    assert change_points([1.0, 3.0, 1.0]) == []  # two equal jumps: neither stands out
