"""Span-tree building: an OTLP trace whose spans form one parent chain vs the same number of
sibling spans (flat). Both should take about the same time (linear); the ratio is printed.

    .venv/bin/python benchmarks/span_tree.py [--spans 20000]
"""

from __future__ import annotations

import argparse
import time

from tracefail.ingest.otel import spans_to_trace


def spans(n: int, chained: bool) -> list[dict]:
    """`n` agent-less spans (the worst case: every walk up finds no agent): each the child of
    the previous one, or all children of the first."""
    out = []
    for i in range(n):
        parent = None if i == 0 else (f"s{i - 1}" if chained else "s0")
        out.append(
            {
                "span_id": f"s{i}",
                "parent_span_id": parent,
                "name": f"step {i}",
                "attributes": {"output.value": f"out {i}"},
                "events": [],
                "start": i,
                "end": i + 1,
                "status": None,
                "status_message": None,
                "service": None,
            }
        )
    return out


def timed(n: int, chained: bool) -> float:
    data = spans(n, chained)
    started = time.perf_counter()
    trace = spans_to_trace("t", data, "bench.json", {})
    elapsed = time.perf_counter() - started
    assert trace.steps[-1].agent is None
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=20_000)
    n = parser.parse_args().spans
    flat, chain = timed(n, chained=False), timed(n, chained=True)
    print(f"{n:,} spans: flat {flat:.2f} s, chained {chain:.2f} s, chained/flat {chain / flat:.2f}x")


if __name__ == "__main__":
    main()
