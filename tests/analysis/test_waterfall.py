"""Span waterfall on the shipped OTel and Langfuse traces."""

from __future__ import annotations

import pytest

from tests.conftest import SAMPLES
from tracefail.services.ingest import ingest
from tracefail.services.spans import span_waterfall
from tracefail.store import Database


@pytest.fixture
def spans_db(db: Database) -> Database:
    ingest(db, [SAMPLES / "otel", SAMPLES / "langfuse"])
    return db


def test_langfuse_timings_tokens_and_slowest(spans_db: Database) -> None:
    rows = span_waterfall(spans_db, "langfuse:lf-trace-3f2a")
    assert [r.depth for r in rows] == [0, 1, 1, 1]
    root, plan, lookup, answer = rows
    assert root.start_s == 0 and root.duration_s == pytest.approx(3.9)
    assert plan.start_s == pytest.approx(0.1) and plan.duration_s == pytest.approx(0.9)
    assert plan.tokens == 45 and answer.tokens == 69 and lookup.tokens is None
    # the root's own time is what its three children do not cover
    assert root.self_s == pytest.approx(3.9 - 0.9 - 0.3 - 2.3)
    assert [r.slowest for r in rows] == [False, False, False, True]  # 2.3 s self; next is 0.9 s
    assert not any(r.failing for r in rows)
    assert all(r.cost is None for r in rows)  # the sample has no cost


def test_otel_failing_spans_and_missing_end_times(spans_db: Database) -> None:
    rows = span_waterfall(spans_db, "otel:7d5b3c2a9e1f4d6b8a0c2e4f6a8b0c1d")
    assert [r.depth for r in rows] == [0, 1, 2, 2, 1]
    assert [r.step_idx for r in rows if r.failing] == [3]
    assert all(r.duration_s is None and not r.slowest for r in rows)
    assert rows[3].start_s == pytest.approx(3.0)
    timed = span_waterfall(spans_db, "otel:4bf92f3577b34da6a3ce929d0e0e4736")
    assert [r.failing for r in timed] == [False, True]
    assert timed[0].duration_s == pytest.approx(0.7) and timed[1].start_s == pytest.approx(0.8)
