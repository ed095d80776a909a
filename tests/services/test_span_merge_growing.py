"""A trace fed a few spans at a time, in any order, is stored exactly as one OTLP file with the
same spans stores it, while each write maps and writes only its new spans (and the steps they
change): real DuckDB files, the real file ingest, the writer's own merge."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from tracefail.ingest.otlp_growing import GrowingTrace
from tracefail.ingest.otlp_live import SpanGroup
from tracefail.services import span_merge
from tracefail.services.ingest import ingest
from tracefail.services.span_merge import IncomingSpans, merge_spans
from tracefail.store import Database

TRACE = "0af7651916cd43dd8448eb211c80319c"
SYSTEM = "You are a careful travel planner.\nAlways confirm the dates with the user before booking."
T0 = 1_700_000_000_000_000_000


def span(n: int, parent: int | None, name: str, attrs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    def value(v: Any) -> dict[str, Any]:
        return {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}

    return {
        "traceId": TRACE,
        "spanId": f"{n:016x}",
        **({"parentSpanId": f"{parent:016x}"} if parent else {}),
        "name": name,
        "startTimeUnixNano": str(T0 + n * 1_000_000),
        "endTimeUnixNano": str(T0 + n * 1_000_000 + 500),
        "attributes": [{"key": k, "value": value(v)} for k, v in attrs.items()],
        **extra,
    }


def trace_spans() -> list[tuple[str, dict[str, Any]]]:
    """(service, span) of a two-agent trace: a root with the task, chat spans that repeat a
    system prompt (kept once, at its first span) and carry notes no step reads (kept in
    metadata), tools, a sub-agent in another service whose chats name no agent, a grandchild,
    an error with an exception event, a span without a start time, an orphan, two spans that
    start at the same nanosecond, a span that starts before its parent (clock skew), a span
    that repeats a note an earlier step kept (so that step keeps it no more), and an early span,
    sent last, whose text holds a line of the system prompt (which it then keeps first)."""
    out = [
        (
            "planner-svc",
            span(
                1,
                None,
                "invoke_agent planner",
                {"gen_ai.agent.name": "planner", "input.value": '{"task": "Book a flight to Oslo"}'},
            ),
        )
    ]
    for n in range(2, 30):
        if n % 5 == 0:
            attrs: dict[str, Any] = {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "search",
                "gen_ai.tool.call.result": f"{n} flights found",
            }
            out.append(("planner-svc", span(n, 1, "execute_tool search", attrs)))
        else:
            attrs = {
                "gen_ai.operation.name": "chat",
                "gen_ai.completion": f"planner step {n}",
                "gen_ai.system_instructions": SYSTEM,
                "app.note": f"note {n}: the customer prefers a window seat on the morning flight",
                "gen_ai.usage.input_tokens": 10 + n,
                "gen_ai.response.model": "gpt-4o" if n > 3 else "",
            }
            out.append(("planner-svc", span(n, 1, "chat", attrs)))
    out.append(("coder-svc", span(40, 1, "invoke_agent coder", {"gen_ai.agent.name": "coder"})))
    for n in range(41, 52):
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.completion": f"coder writes {n}",
            "gen_ai.system_instructions": SYSTEM if n % 2 else "You write code.\nTest it first.",
        }
        out.append(("coder-svc", span(n, 40, "chat", attrs)))
    out.append(
        (
            "coder-svc",
            span(52, 45, "execute_tool run", {"gen_ai.tool.name": "run", "gen_ai.tool.call.result": "ok"}),
        )
    )
    out.append(
        (
            "coder-svc",
            span(
                53,
                40,
                "chat",
                {"gen_ai.completion": "failed"},
                status={"code": 2, "message": "rate limited"},
                events=[
                    {
                        "name": "exception",
                        "attributes": [
                            {"key": "exception.message", "value": {"stringValue": "429 Too Many"}}
                        ],
                    }
                ],
            ),
        )
    )
    no_start = span(54, 40, "chat", {"gen_ai.completion": "late and untimed"})
    del no_start["startTimeUnixNano"]
    out.append(("coder-svc", no_start))
    out.append(("coder-svc", span(55, 99, "chat", {"gen_ai.completion": "parent never sent"})))
    tie = span(56, 40, "chat", {"gen_ai.completion": "same start as span 41"})
    tie["startTimeUnixNano"] = str(T0 + 41 * 1_000_000)
    out.append(("planner-svc", tie))
    skewed = span(57, 40, "chat", {"gen_ai.completion": "the coder's clock is behind"})
    skewed["startTimeUnixNano"] = str(T0 + 39 * 1_000_000)  # starts before its parent
    out.append(("coder-svc", skewed))
    out.append(
        (
            "planner-svc",
            span(
                58,
                1,
                "chat",
                {
                    "gen_ai.completion": "as noted, note 7: the customer prefers a window seat on the morning flight"  # noqa: E501
                },
            ),
        )
    )
    rules = "Rule one. Always confirm the dates with the user before booking. Rule two: be brief."
    early = span(59, 1, "chat", {"gen_ai.completion": "reading the rules", "app.rules": rules})
    early["startTimeUnixNano"] = str(T0 + 1_500_000)  # sent last, starts second: keeps a system line first
    out.append(("planner-svc", early))
    return out


def crew_spans() -> list[tuple[str, dict[str, Any]]]:
    """CrewAI's telemetry (as OpenInference exports it): the crew span lists each task with
    its agent's role; a task span names only `task_id`; an LLM call runs under the task."""
    tasks = json.dumps([{"id": "task-7", "agent_role": "Fare checker", "description": "Check the fare"}])
    return [
        ("planner-svc", span(60, 1, "Crew Created", {"crew_key": "c1", "crew_tasks": tasks})),
        ("planner-svc", span(61, 1, "Task._execute_core", {"task_id": "task-7", "output.value": "120 EUR"})),
        ("planner-svc", span(62, 61, "chat", {"gen_ai.completion": "checking the fare"})),
    ]


def requests(spans: list[tuple[str, dict[str, Any]]], seed: int | None) -> list[list[SpanGroup]]:
    """The spans in a random order (seed None: as listed, about their start order), cut into
    requests of 1 to 6 spans, a few sent twice."""
    order = spans[:]
    rng = random.Random(seed or 0)
    if seed is not None:
        rng.shuffle(order)
    cut: list[list[SpanGroup]] = []
    while order:
        size = rng.randint(1, 6)
        chunk, order = order[:size], order[size:]
        groups: dict[str, list] = {}
        for service, one in chunk:
            groups.setdefault(service, []).append(one)
        cut.append(list(groups.items()))
        if rng.random() < 0.15:
            cut.append(cut[rng.randrange(len(cut))])  # a retry
    return cut


def as_file(path: Path, sent: list[list[SpanGroup]]) -> Path:
    """One OTLP/JSON export with every span once, per service, in the order they were sent."""
    by_service: dict[str | None, dict[str, Any]] = {}
    for request in sent:
        for service, spans in request:
            for one in spans:
                by_service.setdefault(service, {}).setdefault(one["spanId"], one)
    resource_spans = [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"spans": list(spans.values())}],
        }
        for service, spans in by_service.items()
    ]
    path.write_text(json.dumps({"resourceSpans": resource_spans}))
    return path


def stored(db: Database) -> tuple[list[tuple], list[tuple]]:
    """Every trace column (`raw` as readers get it: a live trace keeps it as span rows) and step."""
    traces = db.rows(
        "SELECT t.* EXCLUDE (ingest_run_id, ingested_at) REPLACE (r.raw AS raw) "
        "FROM traces t JOIN trace_raw r USING (trace_id)"
    )
    return traces, db.rows("SELECT * FROM steps ORDER BY trace_id, step_idx")


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times a whole trace was built (rather than grown in place)."""
    calls: list[int] = []
    build = GrowingTrace.build.__func__  # type: ignore[attr-defined]

    def counted(cls: type[GrowingTrace], *args: Any) -> Any:
        calls.append(1)
        return build(cls, *args)

    monkeypatch.setattr(GrowingTrace, "build", classmethod(counted))
    span_merge._GROWING.clear()
    return calls


@pytest.mark.parametrize("seed", [None, *range(6)])
def test_spans_fed_in_any_order_store_what_one_file_stores(
    tmp_path: Path, seed: int | None, builds: list[int]
) -> None:
    sent = requests(trace_spans(), seed)
    file = as_file(tmp_path / "trace.json", sent)
    with Database(tmp_path / "file.duckdb") as db:
        report = ingest(db, [file])
        assert report.quarantined == 0
        expected = stored(db)
    builds.clear()
    with Database(tmp_path / "fed.duckdb") as db:
        so_far: list[SpanGroup] = []
        for request in sent:
            result = merge_spans(db, [IncomingSpans(TRACE, request, str(file), "otlp")], None)
            assert not result.problems
            so_far.extend(request)
            with Database(":memory:") as whole:  # the spans so far, built at once
                merge_spans(whole, [IncomingSpans(TRACE, so_far, str(file), "otlp")], None)
                assert stored(db) == stored(whole)
        assert stored(db) == expected  # every column: raw, content hash, task, llm, every step's fields
    assert expected[0][0][9] == len(trace_spans())
    assert len(builds) - len(sent) < len(sent) / 2  # most writes grew the trace in place


def test_a_write_in_start_order_writes_only_its_new_steps(tmp_path: Path, builds: list[int]) -> None:
    spans = [
        ("svc", span(n, 1 if n > 1 else None, "chat", {"gen_ai.completion": f"reply {n}"}))
        for n in range(1, 101)
    ]
    with Database(tmp_path / "fed.duckdb") as db:
        written = [
            merge_spans(
                db,
                [IncomingSpans(TRACE, [("svc", [one for _, one in spans[i : i + 10]])], "live", "otlp-live")],
                None,
            ).written.steps
            for i in range(0, 100, 10)
        ]
    assert written == [10] * 10
    assert len(builds) == 1  # the first write


def test_a_late_parent_rewrites_only_the_steps_that_inherit_its_agent(
    tmp_path: Path, builds: list[int]
) -> None:
    """A sub-agent's children arrive first (exporters send a span when it ends); when the
    sub-agent's own span comes, its children take its agent and the steps after it move down."""
    first = [span(1, None, "invoke_agent planner", {"gen_ai.agent.name": "planner"})]
    first += [span(n, 1, "chat", {"gen_ai.completion": f"planner {n}"}) for n in range(2, 20)]
    children = [span(n, 20, "chat", {"gen_ai.completion": f"coder {n}"}) for n in range(21, 26)]
    parent = span(20, 1, "invoke_agent coder", {"gen_ai.agent.name": "coder"})
    with Database(tmp_path / "fed.duckdb") as db:
        for spans in (first, children):
            merge_spans(db, [IncomingSpans(TRACE, [("svc", spans)], "live", "otlp-live")], None)
        assert db.rows("SELECT DISTINCT agent FROM steps WHERE span_id > '0000000000000014'") == [(None,)]
        written = merge_spans(
            db, [IncomingSpans(TRACE, [("svc", [parent])], "live", "otlp-live")], None
        ).written
        agents = db.rows("SELECT step_idx, agent FROM steps WHERE step_idx >= 19 ORDER BY step_idx")
    assert written.steps == 6  # the coder span and its 5 children (moved one down): not the 19 before
    assert agents == [(19, "coder")] + [(i, "coder") for i in range(20, 25)]
    assert len(builds) == 1


@pytest.mark.parametrize("crew_first", [True, False])
def test_a_crewai_task_takes_its_agent_from_the_crew_span_whichever_arrives_first(
    tmp_path: Path, builds: list[int], crew_first: bool
) -> None:
    """The role is the task's own agent (its LLM call inherits it); a crew span that comes
    after its task renames stored steps, so that write builds the trace again."""
    root = [("svc", [span(1, None, "invoke_agent planner", {"gen_ai.agent.name": "planner"})])]
    crew, task, chat = ([("svc", [one])] for _, one in crew_spans())
    order = [root, crew, task, chat] if crew_first else [root, task, chat, crew]
    file = as_file(tmp_path / "crew.json", order)
    with Database(tmp_path / "file.duckdb") as db:
        ingest(db, [file])
        expected = stored(db)
    builds.clear()
    with Database(tmp_path / "fed.duckdb") as db:
        for request in order:
            merge_spans(db, [IncomingSpans(TRACE, request, str(file), "otlp")], None)
        assert stored(db) == expected
        agents = db.rows("SELECT name, agent FROM steps ORDER BY step_idx")
    assert agents == [
        ("invoke_agent planner", "planner"),
        ("Crew Created", "planner"),
        ("Task._execute_core", "Fare checker"),
        ("chat", "Fare checker"),
    ]
    assert len(builds) == (1 if crew_first else 2)
