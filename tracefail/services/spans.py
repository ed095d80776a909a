"""The span waterfall of one trace, for the trace screen's span tree."""

from __future__ import annotations

from tracefail.analysis.waterfall import SpanTiming, waterfall
from tracefail.store import Database
from tracefail.store.traces import get_steps

__all__ = ["SpanTiming", "span_waterfall"]


def span_waterfall(db: Database, trace_id: str) -> tuple[SpanTiming, ...]:
    """Timing, status, tokens and cost of every span (step) of a trace, in trace order."""
    return tuple(waterfall(get_steps(db, trace_id)))
