"""A span waterfall: each span's place in time, duration, status, tokens and cost, with the spans
where the time went (largest self time) and the failing spans marked."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tracefail.model import Step

N_SLOWEST = 3
FAILING = ("error", "fail", "exception", "timeout")
COST_KEYS = ("cost", "cost_usd", "total_cost", "calculatedTotalCost", "gen_ai.usage.cost")


@dataclass(frozen=True)
class SpanTiming:
    step_idx: int
    depth: int  # 0 for a root span
    start_s: float | None  # seconds after the trace's first span started
    duration_s: float | None  # None when the span has no end time
    self_s: float | None  # duration minus the time covered by its children
    status: str | None
    tokens: int | None  # tokens in + out
    cost: float | None
    failing: bool
    slowest: bool  # the most self time, or at least half of the most (at most three spans)


def _cost(step: Step) -> float | None:
    for key in COST_KEYS:
        value = step.metadata.get(key)
        if isinstance(value, int | float):
            return float(value)
    return None


def _failing(step: Step) -> bool:
    status = (step.status or "").lower()
    return any(word in status for word in FAILING) or "error" in step.metadata


def _covered(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of intervals (children may overlap when they run in parallel)."""
    total, end = 0.0, float("-inf")
    for lo, hi in sorted(intervals):
        if hi > end:
            total += hi - max(lo, end)
            end = hi
    return total


def waterfall(steps: list[Step]) -> list[SpanTiming]:
    """One row per step in trace order; depth follows parent_span_id."""
    by_span = {s.span_id: s for s in steps if s.span_id}
    starts = [s.start_ts for s in steps if s.start_ts]
    origin = min(starts) if starts else None

    def depth(step: Step) -> int:
        seen, d, parent = set(), 0, step.parent_span_id
        while parent in by_span and parent not in seen:
            seen.add(parent)
            d += 1
            parent = by_span[parent].parent_span_id
        return d

    def interval(step: Step) -> tuple[float, float] | None:
        if origin is None or not step.start_ts or not step.end_ts:
            return None
        return (step.start_ts - origin).total_seconds(), (step.end_ts - origin).total_seconds()

    children: dict[str, list[tuple[float, float]]] = {}
    for step in steps:
        span = interval(step)
        if span and step.parent_span_id in by_span:
            children.setdefault(step.parent_span_id or "", []).append(span)
    rows = []
    for step in steps:
        span = interval(step)
        duration = span[1] - span[0] if span else None
        self_s = None
        if span and duration is not None:
            self_s = max(0.0, duration - _covered(children.get(step.span_id or "", [])))
        start = (step.start_ts - origin).total_seconds() if origin and step.start_ts else None
        tokens = None
        if step.tokens_in is not None or step.tokens_out is not None:
            tokens = (step.tokens_in or 0) + (step.tokens_out or 0)
        rows.append(
            SpanTiming(
                step.step_idx,
                depth(step),
                start,
                duration,
                self_s,
                step.status,
                tokens,
                _cost(step),
                _failing(step),
                False,
            )
        )
    # where the time went: the largest self time, and any other within half of it (at most 3)
    ranked = sorted((r for r in rows if r.self_s), key=lambda r: (-(r.self_s or 0.0), r.step_idx))
    top = ranked[0].self_s or 0.0 if ranked else 0.0
    slowest = {r.step_idx for r in ranked[:N_SLOWEST] if (r.self_s or 0.0) >= top / 2}
    return [replace(r, slowest=True) if r.step_idx in slowest else r for r in rows]
