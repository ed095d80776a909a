"""Shared fixtures: real DuckDB files in tmp dirs, the shipped samples, the shared data, and a
small labelled corpus on disk for the browser (closed before the app or service opens it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracefail.model import Label, Outcome, Step, StepKind, Trace
from tracefail.services.browse import BrowseService
from tracefail.services.ingest import ingest
from tracefail.store import Database
from tracefail.store.traces import add_traces, insert_labels

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def db(tmp_path: Path):
    """An empty corpus in a real DuckDB file."""
    database = Database(tmp_path / "corpus.duckdb")
    yield database
    database.close()


@pytest.fixture(scope="session")
def samples_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every shipped sample ingested into a closed DuckDB file, once: for tests that only read it."""
    path = tmp_path_factory.mktemp("samples") / "corpus.duckdb"
    with Database(path) as db:
        ingest(db, [SAMPLES])
    return path


@pytest.fixture
def whowhen_db(db: Database) -> Database:
    """The shipped Who&When sample (20 AG2 traces with dataset attributions), ingested."""
    report = ingest(db, [SAMPLES / "whowhen"])
    assert report.quarantined == 0, report.messages
    return db


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not beside the project")
    return SHARED_DATA


INJECTION = "[bold red]PWNED[/] [link=https://evil.example]click[/link] \x1b[31mred\x1b[0m \x07bell\r"
SPAN_TRACE = "demo:spans"
INJECT_TRACE = "demo:inject"


def _spans_trace() -> Trace:
    steps = [
        Step(
            step_idx=0,
            agent="planner",
            kind=StepKind.AGENT,
            name="plan",
            span_id="a",
            content="Plan: look up the flight, then book it.",
        ),
        Step(
            step_idx=1,
            agent="planner",
            kind=StepKind.LLM,
            name="llm",
            span_id="b",
            parent_span_id="a",
            content="Calling the search tool.",
            recipient="searcher",
        ),
        Step(
            step_idx=2,
            agent="searcher",
            kind=StepKind.TOOL,
            name="search",
            span_id="c",
            parent_span_id="a",
            content="Found 3 flights.",
            status="error",
        ),
        Step(
            step_idx=3,
            agent="booker",
            kind=StepKind.AGENT,
            name="book",
            span_id="d",
            parent_span_id="a",
            content="Booked the wrong flight without checking the date.",
        ),
    ]
    return Trace(
        trace_id=SPAN_TRACE,
        source="demo",
        framework="OpenAI Agents",
        llm="gpt-4o",
        benchmark="flights",
        outcome=Outcome.FAILURE,
        task="Book the 9am flight",
        steps=steps,
    )


def _inject_trace() -> Trace:
    steps = [
        Step(step_idx=0, agent="[b]agent[/b]", content=INJECTION),
        Step(step_idx=1, agent="user", content="ok"),
    ]
    return Trace(
        trace_id=INJECT_TRACE,
        source="demo",
        framework="MetaGPT",
        llm="[i]llm[/i]",
        outcome=Outcome.SUCCESS,
        steps=steps,
    )


def _label(trace_id: str, mode: str, present: bool, source: str, evidence: list[int], p: float) -> Label:
    return Label(
        trace_id=trace_id,
        taxonomy_id="mast",
        taxonomy_version="1.0",
        mode_id=mode,
        present=present,
        probability=p,
        evidence_steps=evidence,
        rationale=f"{mode} because of step {evidence}",
        source=source,
    )


@pytest.fixture
def corpus_path(whowhen_db: Database) -> Path:
    db = whowhen_db
    add_traces(db, [_spans_trace(), _inject_trace()], run_id=None)
    first = db.rows("SELECT trace_id FROM traces WHERE source = 'whowhen' ORDER BY trace_id LIMIT 2")
    one, two = first[0][0], first[1][0]
    with db.transaction():
        insert_labels(
            db,
            [
                _label(SPAN_TRACE, "3.2", True, "llm-judge:abc123", [3], 0.91),
                _label(SPAN_TRACE, "1.3", False, "llm-judge:abc123", [], 0.10),
                _label(SPAN_TRACE, "3.2", True, "dataset:demo", [3], 1.0),
                _label(one, "1.1", True, "llm-judge:abc123", [1], 0.8),
                _label(one, "1.1", False, "dataset:demo", [], 0.0),
                _label(two, "2.6", True, "llm-judge:abc123", [2], 0.7),
                _label(two, "1.1", True, "llm-judge:abc123", [0], 0.6),
            ],
        )
        db.execute(
            "INSERT INTO features (trace_id, step_idx, model, extractor_version, name, value) "
            "SELECT ?, i, 'tiny', '1', n, "
            "CASE WHEN n = 'tok.surprisal_mean' THEN 2 + (i = 3)::INT * 6 + sin(i) ELSE 1 + i / 10 END "
            "FROM range(4) r(i), (VALUES ('tok.surprisal_mean'), ('tok.entropy_mean')) v(n)",
            [SPAN_TRACE],
        )
    path = Path(db.path)
    db.close()
    return path


@pytest.fixture
def service(corpus_path: Path) -> BrowseService:
    return BrowseService(corpus_path, "tester")
