"""Change points of a per-step series (the trace screen's red marks)."""

from __future__ import annotations

from tracefail.analysis.change_points import change_points


def test_change_points_find_the_jump() -> None:
    assert change_points([1.0, 1.1, 1.0, 1.2, 9.0, 9.1, 9.0, 9.2, 9.1]) == [4]
    assert change_points([1.0, 1.0, 1.0, 1.0]) == []
    assert change_points([None, 2.0]) == []
