"""Full-text search over step text, shared by `tracefail search` and the TUI's filter words:
one query language, one index, one ranking.

Every write of steps updates the index in its own transaction (see `tracefail.store.search`);
a corpus from before the index is caught up on first use. A connection that cannot write
(read-only, or another process holds the file) and finds the index behind scans every step
for the same matches.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

import polars as pl

from tracefail.store import Database
from tracefail.store import search as store
from tracefail.store.search import SearchQueryError

__all__ = ["SearchHit", "SearchQueryError", "SearchResult", "matching_traces", "search", "trace_matches"]

SNIPPET_CHARS = 160
# a "word" for highlighting: one CJK character, or a run of letters/digits
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(f"[{_CJK}]|[^\\W_{_CJK}]+")


@dataclass(frozen=True)
class SearchHit:
    trace_id: str
    step_idx: int
    agent: str | None
    kind: str
    score: float
    snippet: str
    highlights: tuple[tuple[int, int], ...]  # [start, end) of matched words in `snippet`


@dataclass(frozen=True)
class SearchResult:
    query: str
    hits: tuple[SearchHit, ...]
    n_steps: int  # matching steps in the corpus (hits holds the best `limit` of them)
    n_traces: int
    indexed: bool  # False: the index was behind and could not be caught up, every step was scanned
    index_built_s: float | None  # seconds this search spent catching the index up, if it did


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def snippet(
    content: str, words: set[str], prefixes: set[str], width: int = SNIPPET_CHARS
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """A window of `content` around the first matched word, on one line, with the spans of all
    matched words inside it."""
    found = [
        (m.start(), m.end(), folded)
        for m in _WORD.finditer(content)
        if (folded := _fold(m.group(0))) in words or any(folded.startswith(p) for p in prefixes)
    ]
    spans = [(a, b) for a, b, _ in found]
    # centre on the rarest matched word in this step ("the" is everywhere, "verify" is the point)
    counts = Counter(word for _, _, word in found)
    anchor = min(found, key=lambda f: (counts[f[2]], f[0]))[0] if found else 0
    start = max(0, anchor - width // 3)
    end = min(len(content), start + width)
    head, tail = ("…" if start else ""), ("…" if end < len(content) else "")
    window = content[start:end]
    # one line without control codes: each becomes a space, so offsets stay the same
    text = head + re.sub(r"[\s\x00-\x1f\x7f]", " ", window) + tail
    shift = len(head) - start
    marks = tuple((a + shift, b + shift) for a, b in spans if a >= start and b <= end)
    return text, marks


def _index(db: Database) -> tuple[bool, float | None]:
    state, caught_up_s = store.ensure_index(db)
    return state.current, caught_up_s


def search(db: Database, query: str, *, limit: int = 20, trace_id: str | None = None) -> SearchResult:
    """Steps matching every part of `query`, best BM25 score first (raises SearchQueryError)."""
    parts = store.parse_query(query)
    indexed, built_s = _index(db)
    top, n_steps, n_traces = store.search_steps(db, query, limit=limit, indexed=indexed, trace_id=trace_id)
    words = {t for p in parts if not p.prefix for t in p.tokens}
    prefixes = {p.tokens[0] for p in parts if p.prefix}
    hits = []
    for row in top.iter_rows(named=True):
        text, marks = snippet(row["content"], words, prefixes)
        hits.append(
            SearchHit(row["trace_id"], row["step_idx"], row["agent"], row["kind"], row["score"], text, marks)
        )
    return SearchResult(query, tuple(hits), n_steps, n_traces, indexed, built_s)


def trace_matches(db: Database, trace_id: str, query: str) -> list[int]:
    """Steps of one trace matching `query`, in trace order (the trace screen's `/`)."""
    return store.trace_matches(db, trace_id, query)


def matching_traces(db: Database, query: str) -> pl.Series:
    """Ids of traces with a step matching `query`: the corpus filter's free-text words."""
    indexed, _ = _index(db)
    return store.matching_traces(db, query, indexed=indexed)
