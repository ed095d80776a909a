"""One filter language: the TUI's filter bar, every --filter and the CLI flags take the same keys
and values (case-insensitive text, model names without provider prefix or date), agree on what
they select (SQL and in-memory index), and name the valid values when given an unknown one."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tests.conftest import SAMPLES
from tracefail.cli import app
from tracefail.model import Outcome, Step, StepKind, Trace
from tracefail.services.filter_language import FILTER_KEYS, CorpusFilter, FilterError, corpus_filter
from tracefail.services.ingest import ingest
from tracefail.store import Database
from tracefail.store.corpus_index import corpus_index, select_indexed
from tracefail.store.selection import VALUE_COLUMNS, count_traces, selection_sql, value_key
from tracefail.store.traces import add_traces

runner = CliRunner()


def _trace(trace_id: str, llm: str) -> Trace:
    step = Step(step_idx=0, agent="a", role="assistant", kind=StepKind.MESSAGE, content="hello there")
    return Trace(trace_id=trace_id, source="demo", framework="OpenAI Agents", llm=llm,
                 outcome=Outcome.FAILURE, steps=[step])  # fmt: skip


@pytest.fixture
def corpus(db: Database) -> Database:
    ingest(db, [SAMPLES])
    add_traces(db, [_trace("demo:a", "openai/gpt-4o-2024-08-06"), _trace("demo:b", "GPT-4o")], run_id=None)
    return db


def _ids(db: Database, text: str) -> set[str]:
    sql, params = selection_sql(corpus_filter(db, text))
    by_sql = {r[0] for r in db.rows(sql, params)}
    index = corpus_index(db)
    f = corpus_filter(db, text)
    by_index = set(index.traces["trace_id"].gather(select_indexed(index, f)).to_list())
    assert by_sql == by_index, text  # the TUI's index and the commands' SQL select the same
    assert count_traces(db, f) == len(by_sql)
    return by_sql


# every key of the language: a value that selects, the same value spelled otherwise, one that is unknown
CASES = {
    "framework": ("AG2", "ag2", "autogen-nope"),
    "llm": ("gpt-4o", "OpenAI/GPT-4o-2024-08-06", "gpt-9"),
    "benchmark": None,  # filled from the corpus below
    "outcome": ("failure", "FAILURE", "failed"),
    "mode": ("1.3", "1.3", "9.9"),
    "category": None,
    "source": ("dataset", "DATASET", "bogus"),
    "agree": ("no", "NO", "maybe"),
    "trace": None,
    "sort": ("-steps", "-steps", "nope"),
}


def test_every_key_is_covered() -> None:
    assert set(CASES) == set(FILTER_KEYS)


@pytest.mark.parametrize("key", [k for k, v in CASES.items() if v is not None])
def test_values_are_case_insensitive_and_unknown_ones_name_the_valid(corpus: Database, key: str) -> None:
    value, spelled, unknown = CASES[key]  # type: ignore[misc]
    assert _ids(corpus, f"{key}:{value}") == _ids(corpus, f"{key.upper()}:{spelled}")
    if key != "sort":
        assert _ids(corpus, f"{key}:{value}"), f"{key}:{value} selects nothing"
    with pytest.raises(FilterError, match=r"known|kinds|use one of|takes yes"):
        corpus_filter(corpus, f"{key}:{unknown}")


def test_benchmark_category_and_trace(corpus: Database) -> None:
    benchmark = corpus.rows("SELECT benchmark FROM traces WHERE benchmark IS NOT NULL LIMIT 1")[0][0]
    assert _ids(corpus, f"benchmark:{benchmark.upper()}") == _ids(corpus, f"benchmark:{benchmark.lower()}")
    assert _ids(corpus, "category:FC1") and _ids(corpus, "trace:demo:a,demo:b") == {"demo:a", "demo:b"}
    for bad in ("benchmark:nope", "category:nope"):
        with pytest.raises(FilterError, match="known"):
            corpus_filter(corpus, bad)


def test_model_names_are_one_model(corpus: Database) -> None:
    assert {"demo:a", "demo:b"} <= _ids(corpus, "llm:gpt-4o")
    names = [
        "openai/gpt-4o-2024-08-06",
        "GPT-4o",
        "gpt-4-0613",
        "claude-3-5-sonnet-20241022",
        "Qwen/Qwen2.5-7B",
    ]
    for name in names:  # the Python twin agrees with the SQL
        assert corpus.rows(f"SELECT {VALUE_COLUMNS['llm'].replace('t.llm', '?')}", [name])[0][0] == value_key(
            "llm", name
        )
    assert value_key("llm", names[0]) == value_key("llm", names[1]) == "gpt-4o"


def test_cli_flags_take_the_filter_languages_names_and_values(corpus: Database) -> None:
    """--source (stats, clusters), --framework (graph) and --mode (slices) accept what the
    filter language accepts and refuse what it refuses, with the valid values named."""
    path = str(corpus.path)
    dataset = _ids(corpus, "source:dataset")
    judge_like = corpus.rows("SELECT count(DISTINCT trace_id) FROM labels WHERE source LIKE 'dataset:%'")[0][
        0
    ]
    assert judge_like <= len(dataset)
    corpus.close()
    for source in ("dataset", "DATASET", "judge", "human"):
        ok = runner.invoke(app, ["stats", "--db", path, "--section", "sources", "--source", source])
        assert ok.exit_code == 0, ok.output
    for args in (
        ["stats", "--db", path, "--source", "bogus"],
        ["clusters", "--db", path, "--source", "bogus"],
        ["graph", "--db", path, "--framework", "autogen-nope"],
        ["export", "--db", path, "-o", "/dev/null", "--filter", "framework:autogen-nope"],
    ):
        bad = runner.invoke(app, args)
        assert bad.exit_code == 2 and ("known" in bad.stderr or "kind" in bad.stderr), (args, bad.output)
    assert runner.invoke(app, ["graph", "--db", path, "--framework", "ag2"]).exit_code == 0


def test_trace_id_lists_select_exactly_those_traces_whatever_their_characters(db: Database) -> None:
    """The ids are bound as one JSON text (a list parameter binds element by element, seconds for
    the thousands of ids a common phrase matches): quotes, backslashes, control characters and
    non-ASCII ids must come through exactly, and an id's prefix must not match."""
    odd = ['q"uote', "back\\slash", "unit\x1fsep", "zeile\numbruch", "ümlaut", "demo:a"]
    add_traces(db, [_trace(i, "gpt-4o") for i in [*odd, "demo:ab"]], run_id=None)
    f = CorpusFilter(trace_ids=tuple(odd))
    assert count_traces(db, f) == len(odd)
    sql, params = selection_sql(f)
    assert {r[0] for r in db.rows(sql, params)} == set(odd)
