"""A long trace fed one span per write keeps its spans append-only (`trace_spans`, one row
added per span, none rewritten) and is stored as one OTLP file with the same spans stores it:
every trace column with `raw` as readers get it, every step, the content hash; a restart of
the writer (its state lost) rebuilds from those rows; a partitioned export carries the text."""

from __future__ import annotations

from pathlib import Path

import duckdb

from tests.services.test_span_merge_growing import as_file, span, stored
from tracefail.ingest.otlp_growing import GrowingTrace
from tracefail.ingest.otlp_live import SpanGroup
from tracefail.services import span_merge
from tracefail.services.ingest import ingest
from tracefail.services.span_merge import IncomingSpans, merge_spans
from tracefail.store import Database
from tracefail.store.partitioned import export_partitioned

TRACE = "0af7651916cd43dd8448eb211c80319c"  # the one `span` writes
N = 240


def sent() -> list[SpanGroup]:
    """Three services' spans one a request, interleaved (a span of a service other than the
    last one goes inside the document), each agent's root span after its children."""
    out: list[SpanGroup] = []
    roots = {"planner": 1, "coder": 2, "tester": 3}
    for n in range(4, N + 1):
        agent = ("planner", "coder", "tester")[n % 3]
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.completion": f"{agent} says {n}"}
        out.append((f"{agent}-svc", [span(n, roots[agent], "chat", attrs)]))
        if n == N // 2:
            out += [
                (f"{agent}-svc", [span(root, None, f"invoke_agent {agent}", {"gen_ai.agent.name": agent})])
                for agent, root in roots.items()
            ]
    return out


def test_a_long_trace_fed_span_by_span_is_appended_and_stored_as_one_file(
    tmp_path: Path, monkeypatch
) -> None:
    spans = sent()
    file = as_file(tmp_path / "trace.json", [[one] for one in spans])
    with Database(tmp_path / "file.duckdb") as db:
        assert ingest(db, [file]).quarantined == 0
        expected = stored(db)
    builds: list[int] = []
    build = GrowingTrace.build.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        GrowingTrace, "build", classmethod(lambda cls, *a: builds.append(1) or build(cls, *a))
    )
    span_merge._GROWING.clear()
    with Database(tmp_path / "fed.duckdb") as db:
        before: list[tuple] = []
        for number, one in enumerate(spans):
            if number == 2 * len(spans) // 3:
                span_merge._GROWING.clear()  # a restarted writer: rebuilt from the stored span rows
            result = merge_spans(db, [IncomingSpans(TRACE, [one], str(file), "otlp")], None)
            assert not result.problems
            rows = db.rows("SELECT seq, resource, span FROM trace_spans ORDER BY seq")
            if number != 2 * len(spans) // 3:  # a rebuild rewrites them; a write appends one
                assert rows[:-1] == before and len(rows) == number + 1
            before = rows
        assert stored(db) == expected  # every column: raw, content hash, task, llm, every step's fields
        assert db.rows("SELECT count(*) FROM traces WHERE raw IS NULL") == [(1,)]
        assert len(builds) == 2  # the first write and the one after the restart

        out = tmp_path / "parts"
        export_partitioned(db, out, "framework")
    assert not (out / "trace_spans").exists()
    exported = duckdb.sql(f"SELECT raw FROM read_parquet('{out}/traces/**/*.parquet')").fetchall()
    assert exported == [(expected[0][0][12],)]  # the raw column, as the file ingest stored it
