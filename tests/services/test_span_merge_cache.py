"""The live writer's merge, one write per request (as when requests come seconds apart), ends
in the very rows one request with all the spans gives: with its span cache, with a cache too
small to hold the trace (so stored spans are read back), and without one; on real DuckDB files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tracefail.ingest.otlp_live import SpanGroup
from tracefail.services.span_merge import IncomingSpans, SpanCache, merge_spans
from tracefail.store import Database

TRACE = "5b8efff798038103d269b633813fc60c"


def span(n: int, parent: int | None, name: str, attrs: dict[str, str]) -> dict[str, Any]:
    return {
        "traceId": TRACE, "spanId": f"{n:016x}", **({"parentSpanId": f"{parent:016x}"} if parent else {}),
        "name": name, "startTimeUnixNano": str(1_700_000_000_000_000_000 + n * 1_000_000),
        "endTimeUnixNano": str(1_700_000_000_000_000_000 + n * 1_000_000 + 500),
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()],
    }


def arrivals() -> list[SpanGroup]:
    """Two services' spans, one a request, in the order exporters send them: a span when it
    ends, so each agent's root span comes after its children (and a retry of one request)."""
    sent: list[SpanGroup] = []
    for agent, root in (("planner", 1), ("coder", 40)):
        service = f"{agent}-svc"
        for n in range(root + 1, root + 16):
            attrs = ({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "run",
                      "gen_ai.tool.call.result": f"{agent} result {n}"} if n % 3 == 0 else
                     {"gen_ai.operation.name": "chat", "gen_ai.completion": f"{agent} says {n}"})
            sent.append((service, [span(n, root, "chat" if n % 3 else "execute_tool run", attrs)]))
        sent.append((service, [span(root, None, f"invoke_agent {agent}", {"gen_ai.agent.name": agent})]))
    sent.insert(20, sent[3])  # a retry: the same span again changes nothing
    return sent


def stored(db: Database) -> tuple[list[tuple], list[tuple]]:
    traces = db.rows("SELECT * EXCLUDE (ingest_run_id, ingested_at) FROM traces")
    return traces, db.rows("SELECT * FROM steps ORDER BY trace_id, step_idx")


@pytest.mark.parametrize("max_spans", [10_000, 8, None], ids=["cache", "too-small-cache", "no-cache"])
def test_a_trace_sent_a_span_a_request_is_stored_as_one_request_stores_it(
    tmp_path: Path, max_spans: int | None
) -> None:
    cache = SpanCache(max_spans) if max_spans else None
    with Database(tmp_path / "one.duckdb") as db:
        merge_spans(db, [IncomingSpans(TRACE, arrivals(), "live", "otlp-live")], None)
        expected = stored(db)
    with Database(tmp_path / "split.duckdb") as db:
        results = [merge_spans(db, [IncomingSpans(TRACE, [group], "live", "otlp-live")], None, cache)
                   for group in arrivals()]
        assert stored(db) == expected  # byte for byte: raw, content hash, every step column
    assert expected[0][0][9] == 32  # n_steps: every span a step
    assert [r.unchanged for r in results].count([TRACE]) == 1  # the retry wrote nothing
    assert not any(r.problems for r in results)


def test_the_cache_holds_at_most_its_spans_dropping_the_least_recently_written(tmp_path: Path) -> None:
    cache = SpanCache(max_spans=5)

    def write(trace: str, numbers: range) -> None:
        spans = [{**span(n, None, "chat", {"gen_ai.completion": f"{n}"}), "traceId": trace} for n in numbers]
        merge_spans(db, [IncomingSpans(trace, [("svc", spans)], "live", "otlp-live")], None, cache)

    a, b, c = "a" * 32, "b" * 32, "c" * 32
    with Database(tmp_path / "corpus.duckdb") as db:
        write(a, range(1, 3))
        write(b, range(1, 3))
        write(a, range(3, 4))  # a is now the most recent, 3 spans: 5 in all
        assert [cache.get(f"otel:{t}") is not None for t in (a, b, c)] == [True, True, False]
        write(c, range(1, 3))  # 7 spans: b, written least recently, goes
        assert [cache.get(f"otel:{t}") is not None for t in (a, b, c)] == [True, False, True]
        write(b, range(3, 4))  # b is read back from the store and merges as before
        assert db.rows("SELECT native_id, n_steps FROM traces ORDER BY native_id") == [(a, 3), (b, 3), (c, 2)]
