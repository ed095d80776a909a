"""Span-tree building is linear: a deep parent chain costs about what as many siblings cost."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from tracefail.ingest.otel import spans_to_trace

# the benchmark's span generator, loaded by path so benchmarks/ never shadows test packages
_spec = importlib.util.spec_from_file_location(
    "span_tree_bench", Path(__file__).resolve().parents[2] / "benchmarks" / "span_tree.py"
)
assert _spec is not None and _spec.loader is not None
_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench)
spans = _bench.spans


def _seconds(data: list[dict]) -> float:
    started = time.perf_counter()
    trace = spans_to_trace("t", data, "x.json", {})
    assert len(trace.steps) == len(data) and trace.steps[-1].agent is None
    return time.perf_counter() - started


def test_a_long_agentless_parent_chain_is_not_quadratic() -> None:
    n = 3000  # quadratic: ~4.5M parent hops, tens of times the flat case; linear: about equal
    flat, chained = _seconds(spans(n, chained=False)), _seconds(spans(n, chained=True))
    assert chained < 5 * flat + 0.5, (flat, chained)


def test_the_nearest_agent_above_is_inherited_and_a_cycle_ends() -> None:
    data = spans(4, chained=True)
    data[1]["attributes"] = {"agent.name": "planner"}
    data[0]["parent_span_id"] = "s3"  # a cycle s0 -> s3 -> s2 -> s1 -> s0
    steps = {s.span_id: s.agent for s in spans_to_trace("t", data, "x.json", {}).steps}
    assert steps == {"s0": "planner", "s1": "planner", "s2": "planner", "s3": "planner"}
