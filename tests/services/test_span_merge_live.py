"""The live writer's merge, one write per request (as when requests come seconds apart), ends
in the very rows one request with all the spans gives, on real DuckDB files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracefail.ingest.otlp_live import SpanGroup
from tracefail.services.span_merge import IncomingSpans, merge_spans
from tracefail.store import Database

TRACE = "5b8efff798038103d269b633813fc60c"


def span(n: int, parent: int | None, name: str, attrs: dict[str, str]) -> dict[str, Any]:
    return {
        "traceId": TRACE,
        "spanId": f"{n:016x}",
        **({"parentSpanId": f"{parent:016x}"} if parent else {}),
        "name": name,
        "startTimeUnixNano": str(1_700_000_000_000_000_000 + n * 1_000_000),
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
            attrs = (
                {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "run",
                    "gen_ai.tool.call.result": f"{agent} result {n}",
                }
                if n % 3 == 0
                else {"gen_ai.operation.name": "chat", "gen_ai.completion": f"{agent} says {n}"}
            )
            sent.append((service, [span(n, root, "chat" if n % 3 else "execute_tool run", attrs)]))
        sent.append((service, [span(root, None, f"invoke_agent {agent}", {"gen_ai.agent.name": agent})]))
    sent.insert(20, sent[3])  # a retry: the same span again changes nothing
    return sent


def stored(db: Database) -> tuple[list[tuple], list[tuple]]:
    """Every trace column (`raw` as readers get it: a live trace keeps it as span rows) and step."""
    traces = db.rows(
        "SELECT t.* EXCLUDE (ingest_run_id, ingested_at) REPLACE (r.raw AS raw) "
        "FROM traces t JOIN trace_raw r USING (trace_id)"
    )
    return traces, db.rows("SELECT * FROM steps ORDER BY trace_id, step_idx")


def test_a_trace_sent_a_span_a_request_is_stored_as_one_request_stores_it(tmp_path: Path) -> None:
    with Database(tmp_path / "one.duckdb") as db:
        merge_spans(db, [IncomingSpans(TRACE, arrivals(), "live", "otlp-live")], None)
        expected = stored(db)
    with Database(tmp_path / "split.duckdb") as db:
        results = [
            merge_spans(db, [IncomingSpans(TRACE, [group], "live", "otlp-live")], None)
            for group in arrivals()
        ]
        assert stored(db) == expected  # byte for byte: raw, content hash, every step column
    assert expected[0][0][9] == 32  # n_steps: every span a step
    assert [r.unchanged for r in results].count([TRACE]) == 1  # the retry wrote nothing
    assert not any(r.problems for r in results)
