"""Full-text search over step text: tracefail's own inverted index, kept current by every write.

A step's searchable text (`STEP_TEXT`) is its content, its tool calls, its metadata (where
adapters keep what no column takes: span attributes, tool definitions, system prompts) and, for
step 0, its trace's metadata: text kept anywhere in the corpus can be found.

The index is two tables in the corpus file (migration 006): `search_docs` (one row per step: a
document id and its length in tokens) and `search_postings` (one row per term and step: the term
frequency and the token positions). `index_traces` rewrites the rows of the traces it is given;
every store function that writes steps calls it in the same transaction, so the index never lags
the steps and is never rebuilt from scratch (DuckDB's fts extension could only rebuild). BM25's
statistics (document frequency, number of documents, average length) are read from these
tables at query time, so an incremental index ranks exactly as one built in one go.

Tokens: words of Unicode letters and digits, lower-cased and accent-stripped, no stemmer and no
stop words (so any language that separates words by spaces or punctuation works). Han and kana
characters are indexed one character per token; a word of several such characters is searched
as a phrase of its characters. Tokenising is DuckDB SQL (`_TOKENS`), run on a batch's steps.

Query language (all parts must match in one step):
  word      a whole word (case- and accent-insensitive)
  pre*      any word starting with `pre`
  "a b c"   the words next to each other, in order (postings intersected, then positions)
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from tracefail.store.db import Database, StoreError

_CJK_SQL = r"([\p{Han}\p{Hiragana}\p{Katakana}])"
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_QUERY_PART = re.compile(r'"([^"]*)"?|(\S+)')
K1, B = 1.2, 0.75
MAX_QUERY_CHARS = 1_000
MAX_QUERY_TOKENS = 32
CATCH_UP_BATCH = 10_000  # traces per transaction when a whole corpus is indexed
# traces tokenised per statement: an ingest runs DuckDB in 128 MB on one thread, and the
# postings of 1,000 traces of the benchmark corpus (~1M tokens) fit in that
INDEX_CHUNK = 1_000
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
# A step's tokens in order (empty strings only at the ends, where the text starts or ends with
# a separator; they are skipped but keep their position, so adjacent words stay adjacent)
_SPACED = f"regexp_replace({_TEXT}, '{_CJK_SQL}', ' \\1 ', 'g')"
_TOKENS = f"regexp_split_to_array(lower(strip_accents({_SPACED})), '[^\\pL\\pN]+')"


class SearchQueryError(StoreError):
    """A query with nothing to search for (only punctuation, an empty phrase, a bare `*`), or
    one too long to be a search."""


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
    """How many steps the index covers; it is current when it covers every step (every writer
    keeps it so; a corpus written by an older tracefail, or exported without the index, is not)."""

    indexed_steps: int
    corpus_steps: int

    @property
    def current(self) -> bool:
        return self.indexed_steps == self.corpus_steps


def index_state(db: Database) -> IndexState:
    n_docs, n_steps = db.rows("SELECT (SELECT count(*) FROM search_docs), (SELECT count(*) FROM steps)")[0]
    return IndexState(int(n_docs), int(n_steps))


# --- writing ---------------------------------------------------------------------------------------
def index_traces(db: Database, traces: Iterable[str] | Mapping[str, int]) -> None:
    """Make the index hold exactly the current steps of these traces: their old documents and
    postings go, their steps (if any are left) are tokenised and added. Given a mapping of trace
    id -> first changed step, only that step on (and step 0, which carries the trace's metadata)
    is re-indexed: a live trace growing span by span costs its new steps, not all of them. The
    caller owns the transaction: call it in the one that wrote the steps, after writing them,
    so the index commits (or rolls back) with them."""
    first = dict(traces) if isinstance(traces, Mapping) else dict.fromkeys(traces, 0)
    ids = sorted(first)
    for start in range(0, len(ids), INDEX_CHUNK):
        chunk = ids[start : start + INDEX_CHUNK]
        _index_chunk(db, chunk, [first[trace_id] for trace_id in chunk])


def _index_chunk(db: Database, ids: list[str], first_steps: list[int]) -> None:
    wanted_ids = pa.table(  # noqa: F841 - scanned by name
        {"trace_id": pa.array(ids, pa.string()), "first_idx": pa.array(first_steps, pa.int64())}
    )
    con = db.connection
    # the documents of the steps to (re)index: every step from a trace's first changed one, and step 0
    wanted_docs = (
        "SELECT d.doc_id FROM search_docs d JOIN wanted_ids w USING (trace_id) "
        "WHERE d.step_idx >= w.first_idx OR d.step_idx = 0"
    )
    doc_ids = sorted(r[0] for r in con.execute(wanted_docs).fetchall())
    if doc_ids:  # re-ingested or grown traces: drop what the index held for those steps
        old_docs = pa.table({"doc_id": pa.array(doc_ids, pa.int64())})  # noqa: F841 - scanned by name
        for low, high in _doc_ranges(doc_ids):  # by range, so DuckDB skips other row groups
            con.execute(
                "DELETE FROM search_postings WHERE doc_id BETWEEN ? AND ? "
                "AND doc_id IN (SELECT doc_id FROM old_docs)",
                [low, high],
            )
        con.execute("DELETE FROM search_docs WHERE doc_id IN (SELECT doc_id FROM old_docs)")
    # the steps and trace rows of these traces first: joined before filtering, DuckDB would
    # build the searchable text of every step of the corpus (10 s per 1,000 traces on 51k steps)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE search_batch AS
        SELECT (SELECT coalesce(max(doc_id), 0) FROM search_docs)
                   + row_number() OVER (ORDER BY s.trace_id, s.step_idx) AS doc_id,
               s.trace_id, s.step_idx, {_TOKENS} AS tokens
        FROM (SELECT st.* FROM steps st JOIN wanted_ids w USING (trace_id)
              WHERE st.step_idx >= w.first_idx OR st.step_idx = 0) s
        LEFT JOIN (SELECT trace_id, metadata FROM traces
                   WHERE trace_id IN (SELECT trace_id FROM wanted_ids)) t
            ON s.step_idx = 0 AND t.trace_id = s.trace_id
        """
    )
    con.execute(
        "INSERT INTO search_docs SELECT doc_id, trace_id, step_idx, "
        "len(list_filter(tokens, x -> x <> '')) FROM search_batch"
    )
    # sorted by term: a query's terms then touch few row groups (DuckDB skips the others
    # by their min/max); a batch adds its own sorted row groups
    con.execute(
        """
        INSERT INTO search_postings
        SELECT term, doc_id, count(*), list_sort(list(pos)) FROM (
            SELECT doc_id, unnest(tokens) AS term, generate_subscripts(tokens, 1) AS pos
            FROM search_batch
        ) WHERE term <> '' GROUP BY term, doc_id ORDER BY term, doc_id
        """
    )
    con.execute("DROP TABLE search_batch")


def _doc_ranges(doc_ids: list[int], most: int = 16) -> list[tuple[int, int]]:
    """Sorted document ids as at most `most` ranges: the runs of consecutive ids (a live trace's
    step 0 was indexed long before its newest steps; one min..max range would span every
    posting written in between), merged across the smallest gaps when there are more runs."""
    runs = [[doc_ids[0], doc_ids[0]]]
    for doc_id in doc_ids[1:]:
        if doc_id == runs[-1][1] + 1:
            runs[-1][1] = doc_id
        else:
            runs.append([doc_id, doc_id])
    if len(runs) > most:  # keep the widest gaps as splits
        gaps = sorted(range(len(runs) - 1), key=lambda i: (runs[i][1] - runs[i + 1][0], i))[: most - 1]
        starts = [0, *sorted(i + 1 for i in gaps)]
        ends = [*(i - 1 for i in starts[1:]), len(runs) - 1]
        runs = [[runs[a][0], runs[b][1]] for a, b in zip(starts, ends, strict=True)]
    return [(low, high) for low, high in runs]


def catch_up(db: Database) -> float:
    """Index every trace whose steps the index does not match (a corpus from before the index,
    or written by a tool that bypassed the store); seconds taken. Traces are indexed in batches
    so memory stays bounded."""
    if db.read_only:
        raise StoreError(f"{db.path}: opened read-only; the search index cannot be written")
    started = time.perf_counter()
    ids = [
        r[0]
        for r in db.rows(
            """
            SELECT DISTINCT trace_id FROM (
                (SELECT trace_id, step_idx FROM steps EXCEPT SELECT trace_id, step_idx FROM search_docs)
                UNION ALL
                (SELECT trace_id, step_idx FROM search_docs EXCEPT SELECT trace_id, step_idx FROM steps)
            ) ORDER BY trace_id
            """
        )
    ]
    for start in range(0, len(ids), CATCH_UP_BATCH):
        with db.transaction():  # one commit per batch: a killed catch-up keeps what it did
            index_traces(db, ids[start : start + CATCH_UP_BATCH])
    return time.perf_counter() - started


def ensure_index(db: Database) -> tuple[IndexState, float | None]:
    """The index state, after catching up when it is not current and the connection can write
    (with the seconds that took); a read-only connection keeps what there is."""
    state = index_state(db)
    if state.current or db.read_only:
        return state, None
    took = catch_up(db)
    return index_state(db), took


# --- queries -------------------------------------------------------------------------------------
def tokenize(text: str) -> list[str]:
    """Split query text into tokens as the index splits documents: CJK characters apart, marks
    stripped (what DuckDB's strip_accents removes: Unicode categories Mn, Mc, Me), lower-cased,
    split on everything but letters and digits."""
    spaced = _CJK.sub(lambda m: f" {m.group(0)} ", text)
    stripped = "".join(c for c in unicodedata.normalize("NFD", spaced) if unicodedata.category(c)[0] != "M")
    return [t for t in re.split(r"[\W_]+", unicodedata.normalize("NFC", stripped).lower()) if t]


def parse_query(query: str) -> list[QueryPart]:
    """The query's parts; an unbalanced quote runs to the end of the query."""
    if len(query) > MAX_QUERY_CHARS:
        raise SearchQueryError(f"search query of {len(query)} characters: at most {MAX_QUERY_CHARS}")
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
    n_tokens = sum(len(p.tokens) for p in parts)
    if n_tokens > MAX_QUERY_TOKENS:
        raise SearchQueryError(f"search query of {n_tokens} words: at most {MAX_QUERY_TOKENS}")
    return parts


def _literal(token: str) -> str:
    return "'" + token.replace("'", "''") + "'"


def _term_filter(token: str, prefix: bool) -> str:
    """A filter on `term` that DuckDB pushes into the scan (row groups skipped by min/max)."""
    if not prefix:
        return f"term = {_literal(token)}"
    low, high = _literal(token), _literal(token + chr(0x10FFFF))  # no letter sorts after U+10FFFF
    return f"term >= {low} AND term <= {high} AND starts_with(term, {low})"


def _postings(parts: list[QueryPart]) -> tuple[str, int]:
    """SQL for the postings of every query token (`token` numbers them, so a prefix's
    expansions count as one), and the number of tokens a document must hold."""
    pairs = sorted({(t, p.prefix) for p in parts for t in p.tokens})
    selects = [
        f"SELECT {n} AS token, term, doc_id, tf FROM search_postings WHERE {_term_filter(t, prefix)}"
        for n, (t, prefix) in enumerate(pairs)
    ]
    return " UNION ALL ".join(selects), len(pairs)


def _match_ctes(parts: list[QueryPart]) -> tuple[list[str], str]:
    """CTEs (`qp`: the query's postings, without positions) and a SELECT of `doc_id` for every
    step holding every part, phrases checked by position: intersect the postings, then read the
    positions of the candidate steps only."""
    postings, n_tokens = _postings(parts)
    ctes = [
        f"qp AS MATERIALIZED ({postings})",
        f"cand AS (SELECT doc_id FROM qp GROUP BY doc_id HAVING count(DISTINCT token) = {n_tokens})",
    ]
    final = "SELECT doc_id FROM cand"
    for j, part in enumerate(p for p in parts if p.phrase):
        starts = " INTERSECT ".join(
            f"SELECT doc_id, unnest(positions) - {i} AS start FROM search_postings "
            f"WHERE term = {_literal(t)} AND doc_id IN (SELECT doc_id FROM cand)"
            for i, t in enumerate(part.tokens)
        )
        ctes.append(f"phrase{j} AS (SELECT DISTINCT doc_id FROM ({starts}))")
        final += f" SEMI JOIN phrase{j} USING (doc_id)"
    return ctes, final


def _matched_traces_sql(parts: list[QueryPart]) -> str:
    ctes, final = _match_ctes(parts)
    return (
        f"WITH {', '.join(ctes)}, matched AS ({final}) "
        "SELECT DISTINCT d.trace_id FROM search_docs d SEMI JOIN matched USING (doc_id)"
    )


def _hits_sql(parts: list[QueryPart]) -> str:
    """SQL for every matching step: (trace_id, step_idx, score), BM25 summed over the query's
    terms (a prefix's expansions each count), rounded so float summation order cannot reorder."""
    ctes, final = _match_ctes(parts)
    return f"""
        WITH {", ".join(ctes)}, matched AS ({final}),
        df AS (SELECT token, term, count(*) AS df FROM qp GROUP BY ALL),
        st AS (SELECT count(*) AS n, avg(len) AS avgdl FROM search_docs),
        scored AS (
            SELECT qp.doc_id, round(sum(
                ln((st.n - df.df + 0.5) / (df.df + 0.5) + 1)
                * qp.tf * {K1 + 1} / (qp.tf + {K1} * (1 - {B} + {B} * d.len / st.avgdl))
            ), 9) AS score
            FROM qp SEMI JOIN matched USING (doc_id)
            JOIN df USING (token, term) JOIN search_docs d ON d.doc_id = qp.doc_id, st
            GROUP BY qp.doc_id
        )
        SELECT d.trace_id, d.step_idx, scored.score FROM scored JOIN search_docs d USING (doc_id)
    """


def _scan_sql(parts: list[QueryPart]) -> tuple[str, list[object]]:
    """The same matches found by reading every step (no index): a regex per part. No BM25,
    so the score is the number of parts (all equal); used when the index is not current and
    cannot be brought up to date (a read-only connection to an older corpus)."""
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


def text_clause(query: str) -> str:
    """`trace_id IN (...)` for the traces with a step matching `query`, from the index: for SQL
    that has no connection at hand (the corpus filter). The index is current for every corpus
    this tracefail wrote or migrated."""
    return f"trace_id IN ({_matched_traces_sql(parse_query(query))})"


def search_steps(
    db: Database, query: str, *, limit: int = 20, indexed: bool = True, trace_id: str | None = None
) -> tuple[pl.DataFrame, int, int]:
    """The best `limit` hits (trace_id, step_idx, agent, kind, score, content) by BM25, the
    number of matching steps and of matching traces. `content` is the searchable text (content,
    tool calls, metadata), so a hit in the metadata shows where it matched."""
    parts = parse_query(query)
    sql, params = (_hits_sql(parts), []) if indexed else _scan_sql(parts)
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
    """Ids of traces with a step matching `query` (for the corpus filter), sorted."""
    parts = parse_query(query)
    if indexed:
        return db.frame(f"{_matched_traces_sql(parts)} ORDER BY 1").get_column("trace_id")
    scan, params = _scan_sql(parts)
    return db.frame(f"SELECT DISTINCT trace_id FROM ({scan}) ORDER BY 1", params).get_column("trace_id")
