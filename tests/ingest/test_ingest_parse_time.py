"""parse_time: every timestamp form adapters meet becomes the same naive UTC datetime, and the
fast path for run-log text agrees with the general one."""

from __future__ import annotations

from datetime import datetime

import pytest

from tracefail.ingest.base import parse_time


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-03-27 01:21:11", datetime(2025, 3, 27, 1, 21, 11)),
        ("2025-01-17 11:40:27.872", datetime(2025, 1, 17, 11, 40, 27, 872000)),
        ("2024-11-05T10:00:00", datetime(2024, 11, 5, 10, 0, 0)),
        ("2024-11-05T10:00:00Z", datetime(2024, 11, 5, 10, 0, 0)),
        ("2025-03-27 01:21:11+02:00", datetime(2025, 3, 26, 23, 21, 11)),
        (" 2024-11-05T10:00:00 ", datetime(2024, 11, 5, 10, 0, 0)),
        ("1700000000", datetime(2023, 11, 14, 22, 13, 20)),
        (1700000000123, datetime(2023, 11, 14, 22, 13, 20, 123000)),
        ("2025-13-40 01:00:00", None),
        ("", None),
        ("   ", None),
        ("-", None),
        ("not a time", None),
        (None, None),
        (True, None),
    ],
)
def test_parse_time(value: object, expected: datetime | None) -> None:
    parsed = parse_time(value)
    assert parsed == expected
    assert parsed is None or parsed.tzinfo is None
