"""Full-text search on real samples: the index finds exactly what a scan of every step finds."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest

from tests.conftest import SAMPLES
from tracefail.services import search as service
from tracefail.services.ingest import ingest
from tracefail.store import Database
from tracefail.store import search as store


@pytest.fixture
def samples_db(db: Database) -> Database:
    ingest(db, [SAMPLES / "whowhen", SAMPLES / "mast", SAMPLES / "otel", SAMPLES / "openai-chat"])
    return db


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c)).lower()


def _scan(db: Database, words: list[str], prefix: bool = False) -> set[tuple[str, int]]:
    """Python's own word scan: steps whose searchable text (content, tool calls, metadata) holds
    every word as a whole word (or word prefix)."""
    found = set()
    for trace_id, step_idx, content in db.rows(
        f"SELECT trace_id, step_idx, content FROM ({store.STEP_TEXT})"
    ):
        tokens = re.findall(r"[^\W_]+", _fold(content))
        if all(any(t == w or (prefix and t.startswith(w)) for t in tokens) for w in words):
            found.add((trace_id, step_idx))
    return found


def _hits(db: Database, query: str) -> set[tuple[str, int]]:
    result = service.search(db, query, limit=100_000)
    assert result.indexed
    return {(h.trace_id, h.step_idx) for h in result.hits}


@pytest.mark.parametrize("query", ["error", "verification", "answer final", "agent", "python code"])
def test_word_hits_equal_a_scan(samples_db: Database, query: str) -> None:
    expected = _scan(samples_db, query.split())
    assert expected, "pick words that occur in the samples"
    assert _hits(samples_db, query) == expected


def test_prefix_hits_equal_a_scan(samples_db: Database) -> None:
    expected = _scan(samples_db, ["verif"], prefix=True)
    assert len(expected) > len(_scan(samples_db, ["verify"]))
    assert _hits(samples_db, "verif*") == expected


def test_phrase_needs_the_words_in_order(samples_db: Database) -> None:
    words = _hits(samples_db, "the answer")
    phrase = _hits(samples_db, '"the answer"')
    reversed_phrase = _hits(samples_db, '"answer the"')
    assert phrase and phrase < words
    assert reversed_phrase != phrase
    for trace_id, step_idx in phrase:
        (content,) = samples_db.rows(
            f"SELECT content FROM ({store.STEP_TEXT}) WHERE trace_id = ? AND step_idx = ?",
            [trace_id, step_idx],
        )[0]
        assert re.search(r"\bthe\W+answer\b", content, re.IGNORECASE)


def test_ranked_by_bm25_with_highlighted_snippets(samples_db: Database) -> None:
    result = service.search(samples_db, "verification", limit=5)
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True) and len(scores) == 5
    assert result.n_steps >= 5
    for hit in result.hits:
        assert hit.highlights
        for start, end in hit.highlights:
            assert hit.snippet[start:end].lower() == "verification"


@pytest.fixture
def multilingual_db(db: Database, tmp_path: Path) -> Database:
    texts = {
        "de": "Der Agent hat die Größenberechnung übersprungen und das Ergebnis nicht geprüft.",
        "ru": "Ошибка при вызове инструмента: агент не проверил результат.",
        "zh": "代理在调用工具时出错了，没有检查结果。",
        "fr": "L'agent a déjà vérifié le résumé.",
    }
    lines = [
        json.dumps(
            {
                "id": lang,
                "messages": [{"role": "user", "content": "Go."}, {"role": "assistant", "content": text}],
            },
            ensure_ascii=False,
        )
        for lang, text in texts.items()
    ]
    path = tmp_path / "multilingual.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ingest(db, [path], format_name="openai-chat")
    return db


@pytest.mark.parametrize(
    ("query", "lang"),
    [
        ("geprüft", "de"),
        ("gepruft", "de"),
        ("Größen*", "de"),
        ("ОШИБКА", "ru"),
        ("проверил", "ru"),
        ("出错", "zh"),
        ("检查结果", "zh"),
        ("verifie resume", "fr"),
        ("déjà", "fr"),
    ],
)
def test_non_english_words(multilingual_db: Database, query: str, lang: str) -> None:
    result = service.search(multilingual_db, query)
    assert {h.trace_id for h in result.hits} == {f"openai-chat:{lang}"}
    assert result.hits[0].highlights


def test_cjk_words_are_phrases_of_characters(multilingual_db: Database) -> None:
    assert service.search(multilingual_db, "出错").n_steps == 1
    assert service.search(multilingual_db, "错出").n_steps == 0  # both characters occur, not in this order


def test_index_follows_new_traces(samples_db: Database, tmp_path: Path) -> None:
    """The ingest that writes the steps indexes them: the next search needs no catching up."""
    first = service.search(samples_db, "umbrella")
    assert first.index_built_s is None and first.indexed
    path = tmp_path / "more.jsonl"
    path.write_text(
        json.dumps({"id": "new", "messages": [{"role": "user", "content": "An umbrella, please."}]}) + "\n"
    )
    ingest(samples_db, [path], format_name="openai-chat")
    assert store.index_state(samples_db).current
    after = service.search(samples_db, "umbrella")
    assert after.index_built_s is None and after.n_steps == first.n_steps + 1


def test_read_only_without_index_scans(samples_db: Database) -> None:
    expected = _hits(samples_db, "verif* error")
    samples_db.execute("DELETE FROM search_docs WHERE step_idx = 0")  # an index that is behind
    path = samples_db.path
    samples_db.close()
    with Database(path, read_only=True) as ro:
        result = service.search(ro, "verif* error", limit=100_000)
        assert not result.indexed
        assert {(h.trace_id, h.step_idx) for h in result.hits} == expected
        assert set(service.matching_traces(ro, "verif* error")) == {t for t, _ in expected}
    with Database(path) as rw:  # a writer catches the index up on its first search
        result = service.search(rw, "verif* error", limit=100_000)
        assert result.indexed and result.index_built_s is not None
        assert {(h.trace_id, h.step_idx) for h in result.hits} == expected


def test_a_query_without_words_is_an_error(samples_db: Database) -> None:
    with pytest.raises(service.SearchQueryError, match="no words"):
        service.search(samples_db, '"" * ,')


def test_text_kept_only_in_metadata_is_found(db: Database) -> None:
    """A kagent run's system prompt is a span attribute: no step's content holds it, its first
    LLM span's metadata does, and search finds it there; a trace's metadata is found on step 0."""
    ingest(db, [SAMPLES / "otel" / "agentevals" / "tempo_export_with_batches.json", SAMPLES / "mast"])
    in_content = db.rows("SELECT count(*) FROM steps WHERE content ILIKE '%Helm Expertise%'")[0][0]
    assert in_content == 0
    hits = _hits(db, '"helm expertise"')
    assert len(hits) == 1
    ((trace_id, step_idx),) = hits
    assert (
        "Helm Expertise"
        in db.rows(
            "SELECT CAST(metadata AS VARCHAR) FROM steps WHERE trace_id = ? AND step_idx = ?",
            [trace_id, step_idx],
        )[0][0]
    )
    mode_text = _hits(
        db, '"unnecessary reiteration of previously completed steps"'
    )  # a MAST mode's definition
    assert mode_text and {step for _, step in mode_text} == {0}


PHRASES = [
    '"of the"',
    '"the answer"',
    '"the final answer"',
    '"is the"',
    '"the the"',
    '"of the" task',
    '"to the" "of the"',
]


def _steps(db: Database, query: str, *, indexed: bool) -> set[tuple[str, int]]:
    found, _, _ = store.search_steps(db, query, limit=100_000, indexed=indexed)
    return set(zip(found["trace_id"], found["step_idx"], strict=True))


@pytest.mark.parametrize("query", PHRASES)
def test_phrase_hits_equal_the_regex_scan(samples_db: Database, query: str) -> None:
    """Phrases answered from positions (the rarest word's positions, the others' looked up)
    select exactly the steps the scan's phrase regex selects, repeated words included."""
    assert _steps(samples_db, query, indexed=True) == _steps(samples_db, query, indexed=False)


def test_phrases_of_the_samples_are_found(samples_db: Database) -> None:
    found = {query: len(_steps(samples_db, query, indexed=True)) for query in PHRASES}
    assert found['"of the"'] > found['"of the" task'] > 0
    assert found['"the answer"'] > 0 and found['"to the" "of the"'] > 0
