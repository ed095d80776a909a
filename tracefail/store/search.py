"""Full-text search over step text with DuckDB's `fts` extension (BM25).

A step's searchable text (`STEP_TEXT`) is its content, its tool calls, its metadata (where
adapters keep what no column takes: span attributes, tool definitions, system prompts) and, for
step 0, its trace's metadata: text kept anywhere in the corpus can be found.

The index lives in the corpus file: `search_docs` maps a document id to (trace, step), the
`fts_main_search_docs` schema holds the extension's dict/terms/docs/stats tables, and
`search_index` records what the index covers. The extension is loaded from its PyPI package
(`duckdb-extension-fts`), never from DuckDB's download server, and only to build the index:
queries read its tables with plain SQL, so a read-only connection can search.

Tokens: words of Unicode letters and digits, lower-cased and accent-stripped, no stemmer and no
stop words (so any language that separates words by spaces or punctuation works). Han, kana
characters are indexed one character per token; a word of several such characters is searched
as a phrase of its characters.

Query language (all parts must match in one step):
  word      a whole word (case- and accent-insensitive)
  pre*      any word starting with `pre`
  "a b c"   the words next to each other, in order (index candidates, then a regex check)
"""

from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass

import polars as pl

from tracefail.store.db import Database, StoreError, now
from tracefail.store.extensions import load_extension

FTS_SCHEMA = "fts_main_search_docs"
# letters and digits form words; everything else separates them (underscores too)
_IGNORE = r"[^\pL\pN]+"
_CJK_SQL = r"([\p{Han}\p{Hiragana}\p{Katakana}])"
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_QUERY_PART = re.compile(r'"([^"]*)"|(\S+)')
K1, B = 1.2, 0.75
# JSON text as words: its escapes (\n, \", ...) would glue the letter after them to a word
_JSON_WORDS = "regexp_replace(CAST({} AS VARCHAR), '\\\\[nrtbf\"\\\\/]', ' ', 'g')"
# Everything search reads of a step `s` (of trace `t`, joined only for step 0: `_TRACE_JOIN`)
_TEXT = f"""concat_ws(chr(10), s.content,
        CASE WHEN len(CAST(s.tool_calls AS VARCHAR)) > 2 THEN {_JSON_WORDS.format("s.tool_calls")} END,
        CASE WHEN len(CAST(s.metadata AS VARCHAR)) > 2 THEN {_JSON_WORDS.format("s.metadata")} END,
        CASE WHEN len(CAST(t.metadata AS VARCHAR)) > 2 THEN {_JSON_WORDS.format("t.metadata")} END)"""
_TRACE_JOIN = "LEFT JOIN traces t ON s.step_idx = 0 AND t.trace_id = s.trace_id"
# One row per step: (trace_id, step_idx, content), `content` being its searchable text
STEP_TEXT = f"SELECT s.trace_id, s.step_idx, {_TEXT} AS content FROM steps s {_TRACE_JOIN}"


class SearchQueryError(StoreError):
    """A query with nothing to search for (only punctuation, an empty phrase, a bare `*`)."""


@dataclass(frozen=True)
class QueryPart:
    """One required part of a query: a word, a prefix, or a phrase of several tokens."""

    tokens: tuple[str, ...]
    prefix: bool = False

    @property
    def phrase(self) -> bool:
        return len(self.tokens) > 1


@dataclass(frozen=True)
class IndexState:
    """What the index covers; it is stale when the corpus has changed since it was built."""

    exists: bool
    stale: bool
    indexed_steps: int
    corpus_steps: int
    built_at: object | None = None
    build_s: float | None = None


def _load_fts(db: Database) -> None:
    load_extension(db.connection, "fts")


def _corpus_stamp(db: Database) -> tuple[int, object]:
    n_steps, latest = db.rows("SELECT (SELECT count(*) FROM steps), (SELECT max(ingested_at) FROM traces)")[0]
    return int(n_steps), latest


def _has_table(db: Database, name: str) -> bool:
    return bool(
        db.rows(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?",
            [name],
        )[0][0]
    )


def index_state(db: Database) -> IndexState:
    n_steps, latest = _corpus_stamp(db)
    if not _has_table(db, "search_index"):
        return IndexState(False, True, 0, n_steps)
    row = db.rows("SELECT n_steps, latest_ingest, built_at, build_s FROM search_index")
    if not row:
        return IndexState(False, True, 0, n_steps)
    indexed, indexed_latest, built_at, build_s = row[0]
    stale = indexed != n_steps or indexed_latest != latest
    return IndexState(True, stale, int(indexed), n_steps, built_at, build_s)


def build_index(db: Database) -> IndexState:
    """(Re)build the index over every step. The fts extension has no incremental update, so a
    changed corpus gets a new index; the old one answers until the new one is committed."""
    if db.read_only:
        raise StoreError(f"{db.path}: opened read-only; the search index cannot be built")
    started = time.perf_counter()
    _load_fts(db)
    n_steps, latest = _corpus_stamp(db)
    with db.transaction():
        db.execute(
            f"""
            CREATE OR REPLACE TABLE search_docs AS
            SELECT row_number() OVER () AS doc_id, trace_id, step_idx,
                   regexp_replace(content, '{_CJK_SQL}', ' \\1 ', 'g') AS content
            FROM ({STEP_TEXT})
            """
        )
        db.execute(
            "PRAGMA create_fts_index('search_docs', 'doc_id', 'content', stemmer = 'none', "
            f"stopwords = 'none', ignore = '{_IGNORE}', strip_accents = 1, lower = 1, overwrite = 1)"
        )
        # the index has its own copy of the terms; the text is read from `steps` for snippets
        db.execute("ALTER TABLE search_docs DROP COLUMN content")
        # postings sorted by term: a query's term ids then touch a few row groups (DuckDB skips
        # the others by their min/max), instead of scanning every posting of the corpus
        db.execute(
            f"CREATE TABLE {FTS_SCHEMA}.terms_by_term AS "
            f"SELECT * FROM {FTS_SCHEMA}.terms ORDER BY termid, docid"
        )
        db.execute(f"DROP TABLE {FTS_SCHEMA}.terms")
        db.execute(f"ALTER TABLE {FTS_SCHEMA}.terms_by_term RENAME TO terms")
        db.execute(
            "CREATE OR REPLACE TABLE search_index (n_steps BIGINT, latest_ingest TIMESTAMP, "
            "built_at TIMESTAMP, build_s DOUBLE)"
        )
        build_s = time.perf_counter() - started
        db.execute("INSERT INTO search_index VALUES (?, ?, ?, ?)", [n_steps, latest, now(), build_s])
    return index_state(db)


def ensure_index(db: Database) -> IndexState:
    """Build the index on first use, rebuild it when traces were added since; a read-only
    connection keeps what there is (the caller falls back to a scan when it is missing or stale)."""
    state = index_state(db)
    if (not state.exists or state.stale) and not db.read_only:
        state = build_index(db)
    return state


# --- queries -------------------------------------------------------------------------------------
def tokenize(text: str) -> list[str]:
    """Split query text into tokens as the index splits documents: CJK characters apart, marks
    stripped (what DuckDB's strip_accents removes: Unicode categories Mn, Mc, Me), lower-cased,
    split on everything but letters and digits."""
    spaced = _CJK.sub(lambda m: f" {m.group(0)} ", text)
    stripped = "".join(c for c in unicodedata.normalize("NFD", spaced) if unicodedata.category(c)[0] != "M")
    return [t for t in re.split(r"[\W_]+", unicodedata.normalize("NFC", stripped).lower()) if t]


def parse_query(query: str) -> list[QueryPart]:
    parts: list[QueryPart] = []
    for match in _QUERY_PART.finditer(query):
        quoted, word = match.group(1), match.group(2)
        text = quoted if quoted is not None else word
        prefix = quoted is None and text.endswith("*")
        tokens = tuple(tokenize(text.rstrip("*") if prefix else text))
        if tokens:
            # `tool_na*` is two tokens: searched as the phrase "tool na", not as a prefix
            parts.append(QueryPart(tokens, prefix=prefix and len(tokens) == 1))
    if not parts:
        raise SearchQueryError(f"search query {query!r} has no words to search for")
    return parts


def _phrase_regex(tokens: tuple[str, ...]) -> str:
    """A RE2 pattern for the tokens next to each other in lower(strip_accents(content))."""
    pattern = ""
    for i, token in enumerate(tokens):
        if i:
            cjk_pair = bool(_CJK.match(tokens[i - 1])) or bool(_CJK.match(token))
            pattern += r"[^\pL\pN]*" if cjk_pair else r"[^\pL\pN]+"
        pattern += re.escape(token)
    first_cjk, last_cjk = _CJK.match(tokens[0]), _CJK.match(tokens[-1])
    return ("" if first_cjk else r"(^|[^\pL\pN])") + pattern + ("" if last_cjk else r"([^\pL\pN]|$)")


_NO_HITS = "SELECT NULL::VARCHAR AS trace_id, NULL::INTEGER AS step_idx, NULL::DOUBLE AS score WHERE false"


def _query_terms(db: Database, parts: list[QueryPart]) -> list[tuple[int, str, int, int]]:
    """(part, token, term id, document frequency) for every query token, prefixes expanded."""
    rows, params = [], []
    for group, part in enumerate(parts):
        for token in part.tokens:
            rows.append("(?, ?, ?)")
            params += [group, token, part.prefix]
    found = db.rows(
        f"""
        WITH q(grp, token, is_prefix) AS (VALUES {", ".join(rows)})
        SELECT DISTINCT q.grp, q.token, d.termid, d.df FROM {FTS_SCHEMA}.dict d JOIN q
        ON (q.is_prefix AND starts_with(d.term, q.token)) OR (NOT q.is_prefix AND d.term = q.token)
        """,
        params,
    )
    return [(int(g), str(t), int(i), int(df)) for g, t, i, df in found]


def _hits_sql(db: Database, parts: list[QueryPart]) -> tuple[str, list[object]]:
    """SQL for every matching step: (trace_id, step_idx, score), BM25 summed over query tokens.

    The term ids go into the SQL as literals so DuckDB filters the postings while scanning
    them (and skips row groups of other terms); a token absent from the index means no hit."""
    wanted = {(g, t) for g, part in enumerate(parts) for t in part.tokens}
    qterms = _query_terms(db, parts)
    if {(g, t) for g, t, _, _ in qterms} != wanted:
        return _NO_HITS, []
    ids = ", ".join(sorted({str(i) for _, _, i, _ in qterms}))
    params: list[object] = []
    phrases = [p for p in parts if p.phrase]
    verify = ""
    if phrases:
        checks = " AND ".join(f"regexp_matches(lower(strip_accents({_TEXT})), ?)" for _ in phrases)
        params += [_phrase_regex(p.tokens) for p in phrases]
        verify = f"""
            JOIN steps s ON s.trace_id = hits.trace_id AND s.step_idx = hits.step_idx {_TRACE_JOIN}
            WHERE {checks}"""
    # `token` numbers the (part, token) pairs so a prefix's expansions count as one
    pairs = {(g, t): n for n, (g, t) in enumerate(sorted(wanted))}
    values = ", ".join(f"({g}, {pairs[(g, t)]}, {i}, {df})" for g, t, i, df in qterms)
    sql = f"""
        WITH qterms(grp, token, termid, df) AS (VALUES {values}),
        tf AS (
            SELECT t.docid, qt.grp, qt.token, qt.df, count(*) AS tf
            FROM {FTS_SCHEMA}.terms t JOIN qterms qt ON t.termid = qt.termid
            WHERE t.termid IN ({ids})
            GROUP BY ALL
        ),
        matched AS (
            SELECT docid FROM tf GROUP BY docid HAVING count(DISTINCT token) = {len(wanted)}
        ),
        scored AS (
            SELECT tf.docid, sum(
                ln((st.num_docs - tf.df + 0.5) / (tf.df + 0.5) + 1)
                * tf.tf * {K1 + 1} / (tf.tf + {K1} * (1 - {B} + {B} * docs.len / st.avgdl))
            ) AS score
            FROM tf SEMI JOIN matched USING (docid)
            JOIN {FTS_SCHEMA}.docs docs ON docs.docid = tf.docid, {FTS_SCHEMA}.stats st
            GROUP BY tf.docid
        ),
        hits AS (
            SELECT sd.trace_id, sd.step_idx, scored.score
            FROM scored JOIN {FTS_SCHEMA}.docs docs ON docs.docid = scored.docid
            JOIN search_docs sd ON sd.doc_id = docs.name
        )
        SELECT hits.trace_id, hits.step_idx, hits.score FROM hits {verify}
    """
    return sql, params


def _scan_sql(parts: list[QueryPart]) -> tuple[str, list[object]]:
    """The same matches found by reading every step (no index): a regex per part. No BM25,
    so the score is the number of parts (all equal); used when no current index can be built."""
    checks: list[str] = []
    params: list[object] = []
    for part in parts:
        pattern = _phrase_regex(part.tokens)
        if part.prefix:
            pattern = pattern.removesuffix(r"([^\pL\pN]|$)")
        checks.append("regexp_matches(lower(strip_accents(content)), ?)")
        params.append(pattern)
    where = " AND ".join(checks)
    sql = f"SELECT trace_id, step_idx, {len(parts)}::DOUBLE AS score FROM ({STEP_TEXT}) WHERE {where}"
    return sql, params


def scan_clause(query: str) -> tuple[str, list[object]]:
    """`trace_id IN (...)` for the traces with a step matching `query`, by scanning the steps:
    for SQL that has no connection at hand (the corpus filter); same matches as the index."""
    sql, params = _scan_sql(parse_query(query))
    return f"trace_id IN (SELECT trace_id FROM ({sql}))", params


def _matches(db: Database, parts: list[QueryPart], indexed: bool) -> tuple[str, list[object]]:
    return _hits_sql(db, parts) if indexed else _scan_sql(parts)


def search_steps(
    db: Database, query: str, *, limit: int = 20, indexed: bool = True, trace_id: str | None = None
) -> tuple[pl.DataFrame, int, int]:
    """The best `limit` hits (trace_id, step_idx, agent, kind, score, content) by BM25, the
    number of matching steps and of matching traces. `content` is the searchable text (content,
    tool calls, metadata), so a hit in the metadata shows where it matched."""
    sql, params = _matches(db, parse_query(query), indexed)
    where = "WHERE trace_id = ?" if trace_id is not None else ""
    found = db.frame(
        f"""
        WITH m AS MATERIALIZED (SELECT * FROM ({sql}) {where}),
        counts AS (SELECT count(*) AS n_steps, count(DISTINCT trace_id) AS n_traces FROM m),
        top AS (SELECT * FROM m ORDER BY score DESC, trace_id, step_idx LIMIT ?)
        SELECT top.trace_id, top.step_idx, s.agent, s.kind, top.score, {_TEXT} AS content,
               counts.n_steps, counts.n_traces
        FROM top JOIN steps s ON s.trace_id = top.trace_id AND s.step_idx = top.step_idx {_TRACE_JOIN}, counts
        ORDER BY top.score DESC, top.trace_id, top.step_idx
        """,
        params + ([trace_id] if trace_id is not None else []) + [limit],
    )
    if found.height == 0:
        return found.drop("n_steps", "n_traces"), 0, 0
    return found.drop("n_steps", "n_traces"), int(found["n_steps"][0]), int(found["n_traces"][0])


def trace_matches(db: Database, trace_id: str, query: str) -> list[int]:
    """Steps of one trace matching `query`, in trace order (a scan of that trace's steps)."""
    sql, params = _scan_sql(parse_query(query))
    rows = db.rows(f"SELECT step_idx FROM ({sql}) WHERE trace_id = ? ORDER BY step_idx", [*params, trace_id])
    return [int(r[0]) for r in rows]


def matching_traces(db: Database, query: str, *, indexed: bool = True) -> pl.Series:
    """Ids of traces with a step matching `query` (for the corpus filter)."""
    sql, params = _matches(db, parse_query(query), indexed)
    return db.frame(f"SELECT DISTINCT trace_id FROM ({sql})", params).get_column("trace_id")
