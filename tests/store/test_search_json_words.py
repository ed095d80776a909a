"""JSON text is searched by its decoded words: tool-call arguments and span attributes are often
a JSON string holding JSON, where a newline is stored as `\\\\n` and `é` as `\\\\u00e9`. Checked on
the shipped samples against Python's own JSON decoding, on the index and on the scan alike, and
the migration that brings an older corpus' index up to date."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import SAMPLES
from tracefail.model import Outcome, Step, ToolCall, Trace
from tracefail.services import search as service
from tracefail.services.ingest import ingest
from tracefail.store import Database
from tracefail.store import search as store
from tracefail.store.db import latest_version
from tracefail.store.traces import add_traces


def _json(text: str) -> object | None:
    """The object or array a string holds as JSON text, else None."""
    if text.lstrip()[:1] not in ("{", "["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict | list) else None


def _strings(value: object) -> Iterator[str]:
    """Every key and string of decoded JSON; a string holding JSON is decoded in turn."""
    if isinstance(value, str):
        inner = _json(value)
        if inner is None:
            yield value
        else:
            yield from _strings(inner)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _char(hex_digits: str) -> str:
    point = int(hex_digits, 16)
    return " " if point < 32 or 0xD800 <= point <= 0xDFFF else chr(point)


def _words(text: str) -> set[str]:
    """The words of decoded text, where an escape left in it (code's `"\\n"`, a Python repr's
    `\\u2014`) is still an escape: what the index promises to find."""
    text = re.sub(r"\\+u([0-9a-fA-F]{4})", lambda m: _char(m.group(1)), text)
    return set(store.tokenize(re.sub(r"\\+[nrtbf]", " ", text)))


def _decoded_words(db: Database) -> dict[tuple[str, int], tuple[set[str], set[str]]]:
    """Per step: the words of its JSON columns decoded by Python's `json`, and the words of the
    same JSON texts split as they are stored (what no escape handling would find)."""
    rows = db.rows(
        "SELECT s.trace_id, s.step_idx, CAST(s.tool_calls AS VARCHAR), CAST(s.metadata AS VARCHAR), "
        "CASE WHEN s.step_idx = 0 THEN CAST(t.metadata AS VARCHAR) END "
        "FROM steps s JOIN traces t USING (trace_id)"
    )
    found = {}
    for trace_id, step_idx, *texts in rows:
        held = [t for t in texts if t]
        decoded = set().union(*(_words(s) for t in held for s in _strings(json.loads(t))))
        stored = set().union(*(store.tokenize(t) for t in held))
        found[(trace_id, step_idx)] = (decoded, stored)
    return found


def _indexed(db: Database) -> dict[tuple[str, int], list[str]]:
    """Each step's tokens in order, as the index holds them."""
    rows = db.rows(
        "SELECT d.trace_id, d.step_idx, t.term, unnest(p.positions) AS pos FROM search_postings p "
        "JOIN search_docs d USING (doc_id) JOIN search_terms t USING (term_id) ORDER BY 1, 2, 4"
    )
    held: dict[tuple[str, int], list[str]] = {}
    for trace_id, step_idx, term, _ in rows:
        held.setdefault((trace_id, step_idx), []).append(term)
    return held


def test_words_of_decoded_json_in_the_shipped_samples_are_indexed(samples_corpus: Path) -> None:
    """Every word of every decoded string in the samples' tool calls and metadata is in its
    step's index entry; the scan's text (`STEP_TEXT`, SQL) splits into the very same tokens."""
    with Database(samples_corpus, read_only=True) as db:
        decoded, indexed = _decoded_words(db), _indexed(db)
        sql = db.rows(f"SELECT trace_id, step_idx, content FROM ({store.STEP_TEXT}) ORDER BY 1, 2")
    missing = {key: sorted(words - set(indexed.get(key, []))) for key, (words, _) in decoded.items()}
    missing = {key: words for key, words in missing.items() if words}
    assert not missing, f"{len(missing)} steps miss words, e.g. {next(iter(missing.items()))}"
    texts = pl.Series([content for _, _, content in sql])
    scanned = {(t, s): list(tokens) for (t, s, _), tokens in zip(sql, store.token_lists(texts), strict=True)}
    assert {k: v for k, v in scanned.items() if v} == indexed
    only_decoded = {key for key, (words, stored) in decoded.items() if words - stored}
    sources = {trace_id.split(":")[0] for trace_id, _ in only_decoded}
    assert {
        "gemini-cli",
        "inspect",
        "langfuse",
        "openhands",
        "otel",
        "smolagents",
        "swe-agent",
        "tau2-bench",
    } <= sources


def test_the_scan_and_the_index_find_words_only_decoding_reveals(samples_corpus: Path) -> None:
    """Per trace, a word that only decoding reveals (no split of the stored JSON text holds it):
    the ranked search, the corpus filter and the scan each find its step."""
    with Database(samples_corpus, read_only=True) as db:
        decoded = _decoded_words(db)
        picked: dict[str, tuple[int, str]] = {}
        for (trace_id, step_idx), (words, stored) in sorted(decoded.items()):
            new = sorted(w for w in words - stored if len(w) > 2 or not w.isascii())
            if new and trace_id not in picked:
                picked[trace_id] = (step_idx, new[len(new) // 2])
        assert len(picked) >= 8
        for trace_id, (step_idx, word) in picked.items():
            query = f'"{word}"'
            hits, _, _ = store.search_steps(db, query, limit=1000, trace_id=trace_id)
            assert step_idx in hits["step_idx"].to_list(), (trace_id, word)
            assert step_idx in store.trace_matches(db, trace_id, query), (trace_id, word)
            assert trace_id in store.matching_traces(db, query).to_list()
            assert trace_id in store.matching_traces(db, query, indexed=False).to_list()


def _escaped_trace() -> Trace:
    """Arguments written by `json.dumps` with its defaults (non-ASCII as `\\uXXXX`), one more
    level of JSON in the metadata, a surrogate pair and a control character."""
    args = json.dumps({"code": 'print("a")\nnow\tthen "quoted"', "city": "café Zürich", "note": "中文 ok"})
    deeper = json.dumps({"attributes": json.dumps({"input": "deep\nlevel \u00e9t\u00e9 😀 \x1b[0m"})})
    return Trace(
        trace_id="demo:escaped",
        source="demo",
        outcome=Outcome.FAILURE,
        steps=[
            Step(
                step_idx=0,
                agent="a",
                content="",
                tool_calls=[ToolCall(name="write", arguments=args)],
                metadata={"span": deeper},
            )
        ],
    )


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("now", True),
        ("then", True),
        ("quoted", True),
        ("café", True),
        ("ZURICH", True),
        ("中文", True),
        ("level", True),
        ("ete", True),
        ('"deep level ete"', True),
        ("0m", True),
        ("nnow", False),
        ("u00e9", False),
        ("u4e2d", False),
    ],
)
def test_escapes_at_any_depth_are_decoded(db: Database, query: str, found: bool) -> None:
    add_traces(db, [_escaped_trace()], run_id=None)
    assert (service.search(db, query).n_steps == 1) is found
    assert (store.search_steps(db, query, indexed=False)[1] == 1) is found


def test_polars_and_sql_make_the_same_text_of_escapes(db: Database) -> None:
    """Control characters, surrogate pairs, upper-case hex and runs of 1-8 backslashes: the
    write's text (polars) is the scan's (SQL), character for character."""
    odd = json.dumps({"s": "\x00 \x1f é 😀 中", "deep": json.dumps({"x": json.dumps({"y": "a\tb ü"})})})
    trace = _escaped_trace().model_copy(update={"metadata": {"raw": odd, "upper": "\\u00C9T\\\\u00e9"}})
    add_traces(db, [trace], run_id=None)
    sql = db.rows(f"SELECT content FROM ({store.STEP_TEXT}) WHERE trace_id = 'demo:escaped'")
    held = store._step_texts(store._stored_steps(db, ["demo:escaped"], only_first=False))
    assert held.get_column("text").to_list() == [c for (c,) in sql]
    assert {"e", "中", "u", "ete", "tb"} - set(store.tokenize(sql[0][0])) == {"tb"} and "😀" not in sql[0][0]


def _escaped_steps(db: Database, query: str) -> int:
    return store.search_steps(db, query, trace_id="demo:escaped")[1]


def test_migration_009_reindexes_the_traces_whose_json_holds_escapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A corpus indexed as main did before 009 (one level of escapes, no `\\uXXXX`): on open,
    the traces whose JSON holds a run of backslashes or a `\\u` are indexed again, the others
    keep their documents, and the index is then what one built from scratch holds."""

    def main_step_texts(steps: pl.DataFrame) -> pl.DataFrame:  # tracefail/store/search.py at e87162b
        def words(column: str) -> pl.Expr:
            text = pl.col(column)
            return pl.when(text.str.len_chars() > 2).then(text.str.replace_all(r'\\[nrtbf"\\/]', " "))

        parts = [pl.col("content"), *(words(c) for c in ("tool_calls", "metadata", "trace_metadata"))]
        return steps.select(
            "trace_id", "step_idx", text=pl.concat_str(parts, separator="\n", ignore_nulls=True)
        )

    path = tmp_path / "old.duckdb"
    with monkeypatch.context() as patch, Database(path) as db:
        patch.setattr(store, "_step_texts", main_step_texts)
        ingest(db, [SAMPLES])
        add_traces(db, [_escaped_trace()], run_id=None)
        db.execute("DELETE FROM schema_version WHERE version = 9")
        assert _escaped_steps(db, "café") == 0 and _escaped_steps(db, "nnow") == 1
        docs = dict(db.rows("SELECT doc_id, trace_id FROM search_docs"))
    with Database(path) as db:
        assert db.schema_version() == latest_version()
        assert store.index_state(db).current
        assert _escaped_steps(db, "café") == 1 and _escaped_steps(db, "nnow") == 0
        kept = dict(db.rows("SELECT doc_id, trace_id FROM search_docs"))
        assert 0 < len(kept.keys() & docs.keys()) < len(docs)
        assert {docs[d] for d in docs.keys() - kept.keys()} >= {"demo:escaped"}
        migrated = _indexed(db)
        db.execute("DELETE FROM search_postings")
        db.execute("DELETE FROM search_docs")
        store.catch_up(db)
        assert _indexed(db) == migrated
