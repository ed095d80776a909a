"""Full-text search over step text: tracefail's own inverted index, kept current by every write.

A step's searchable text (`STEP_TEXT`) is its content, its tool calls, its metadata (where
adapters keep what no column takes: span attributes, tool definitions, system prompts) and, for
step 0, its trace's metadata: text kept anywhere in the corpus can be found.

The index is four tables in the corpus file (migrations 007, 008): `search_terms` (one row per
distinct token: an integer id), `search_docs` (one row per step: a document id and its length in
tokens), `search_postings` (one row per term id and step: the term frequency and the token
positions) and `search_segments` (the runs of postings, each sorted by term id). Every store
function that writes steps calls `index_written` in the same transaction with the rows it has
just written (the text is tokenised from them, not read back), so the index never lags the
steps and is never rebuilt from scratch (DuckDB's fts extension could only rebuild);
`index_traces` indexes what the steps table holds (a corpus the index does not cover). Each
write appends one run; runs of one size tier are merged (LSM-style, `_merge_segments`), so a
common word's rows stay in few row groups. BM25's statistics (document frequency, number of
documents, average length) are read from these tables at query time, so an incremental index
ranks exactly as one built in one go.

Tokens: words of Unicode letters and digits, lower-cased and accent-stripped, no stemmer and no
stop words (so any language that separates words by spaces or punctuation works). Han and kana
characters are indexed one character per token; a word of several such characters is searched
as a phrase of its characters. JSON text (tool calls, metadata) is split with its escapes
decoded at any depth of JSON-in-JSON (`_json_words`, `_json_words_sql`; migration 009 re-indexed
older corpora). Tokenising is polars (`token_lists`, Rust regex on every core),
and the query's words go through the same function, so both sides split text alike. The
postings are grouped with a stable sort of integer codes, not a GROUP BY on strings: a term's
rows come out sorted by document, and their positions are already in order (docs/search.md has
the measurements behind this layout).

Query language (all parts must match in one step):
  word      a whole word (case- and accent-insensitive)
  pre*      any word starting with `pre`
  "a b c"   the words next to each other, in order (postings intersected, then positions)

The intersection starts from the query's rarest token and keeps, token by token, only the
documents still in (DuckDB probes each larger posting list with the small candidate set).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from tracefail.store.db import Database, StoreError

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_QUERY_PART = re.compile(r'"([^"]*)"?|(\S+)')
K1, B = 1.2, 0.75
MAX_QUERY_CHARS = 1_000
MAX_QUERY_TOKENS = 32
CATCH_UP_BATCH = 10_000  # traces per transaction when a whole corpus is indexed
# traces tokenised per statement: an ingest runs DuckDB in 128 MB on one thread, and the
# postings of 1,000 traces of the benchmark corpus (~1M tokens) fit in that
INDEX_CHUNK = 1_000
# runs of postings merged at a time, and the most rows one merge may write (see `_merge_segments`)
MERGE_FANOUT = 16
MERGE_MAX_ROWS = 8_000_000
_ASCII_WORD = r"[a-z0-9]+"  # a lower-cased ASCII text's letters and digits
# a Han or kana character alone, or a run of other letters and digits
_CJK_CLASS = r"\p{Han}\p{Hiragana}\p{Katakana}"
_WORD = rf"[{_CJK_CLASS}]|[[\p{{L}}\p{{N}}]--[{_CJK_CLASS}]]+"
# JSON text as words, alike in SQL (`_json_words_sql`) and polars (`_json_words`): a JSON
# string often holds JSON (tool-call arguments, span attributes), so an escape can stand behind
# any run of backslashes (`\\n` is a newline two levels down). A run before `uXXXX` is that
# character (a space for a control character or half a surrogate pair), collapsed to one
# backslash first; a run before n, r, t, b, f, a quote or a slash, or alone, is a space: the
# letter after an escape must not be glued to the next word.
_UNICODE_RUN = r"\\+u([0-9a-fA-F]{4})"  # the code point's hex digits captured
_UNICODE_SPLIT = r"\\+u[0-9a-fA-F]{4}"
_JSON_ESCAPE = r'\\+[nrtbf"/]?'


def _json_words_sql(column: str) -> str:
    """`_json_words` in DuckDB SQL: the text split around its `\\uXXXX` runs, each piece
    followed by the character of the escape after it; then the other escapes made spaces."""
    text = f"CAST({column} AS VARCHAR)"
    point = "('0x' || p[2])::INTEGER"
    char = f"CASE WHEN {point} < 32 OR {point} BETWEEN 55296 AND 57343 THEN ' ' ELSE chr({point}) END"
    pieces = f"regexp_split_to_array({text}, '{_UNICODE_SPLIT}')"
    points = f"regexp_extract_all({text}, '{_UNICODE_RUN}', 1)"
    decoded = (
        f"CASE WHEN contains({text}, '\\u') THEN array_to_string(list_transform(list_zip({pieces}, "
        f"{points}), p -> p[1] || coalesce({char}, '')), '') ELSE {text} END"
    )
    return f"regexp_replace({decoded}, '{_JSON_ESCAPE}', ' ', 'g')"


# Everything search reads of a step `s` (of trace `t`, joined only for step 0: `_TRACE_JOIN`)
_TEXT = f"""concat_ws(chr(10), s.content,
        CASE WHEN len(CAST(s.tool_calls AS VARCHAR)) > 2 THEN {_json_words_sql("s.tool_calls")} END,
        CASE WHEN len(CAST(s.metadata AS VARCHAR)) > 2 THEN {_json_words_sql("s.metadata")} END,
        CASE WHEN len(CAST(t.metadata AS VARCHAR)) > 2 THEN {_json_words_sql("t.metadata")} END)"""
_TRACE_JOIN = "LEFT JOIN traces t ON s.step_idx = 0 AND t.trace_id = s.trace_id"
# One row per step: (trace_id, step_idx, content), `content` being its searchable text
STEP_TEXT = f"SELECT s.trace_id, s.step_idx, {_TEXT} AS content FROM steps s {_TRACE_JOIN}"


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


# --- tokens ----------------------------------------------------------------------------------------
def token_lists(texts: pl.Series) -> pl.Series:
    """Each text's tokens in order (polars: Rust regex on every core). ASCII texts (most of a
    trace's text) are lower-cased and split; the others are also accent-stripped (NFD, marks
    dropped, NFC) and split with each Han or kana character a token of its own."""
    frame = pl.DataFrame({"text": texts.fill_null("")}).with_row_index("row")
    text = frame.get_column("text")
    wide = text.str.len_bytes() != text.str.len_chars()  # no regex: compiling one costs ms per call
    plain = frame.filter(~wide).select(
        "row", tokens=pl.col("text").str.to_lowercase().str.extract_all(_ASCII_WORD)
    )
    if not wide.any():  # a live write's few steps, usually: skip compiling the Unicode patterns
        return plain.get_column("tokens")
    folded = frame.filter(wide).select(
        "row",
        tokens=pl.col("text")
        .str.to_lowercase()  # first: İ lower-cases to i and a combining dot, stripped next
        .str.normalize("NFD")
        .str.replace_all(r"\p{M}+", "")
        .str.normalize("NFC")
        .str.extract_all(_WORD),
    )
    return pl.concat([plain, folded]).sort("row").get_column("tokens")


def tokenize(text: str) -> list[str]:
    """Query text as tokens, by the very function that tokenises the index's documents."""
    return list(token_lists(pl.Series([text]))[0])


# --- writing ---------------------------------------------------------------------------------------
_TEXT_COLUMNS = ("content", "tool_calls", "metadata", "trace_metadata")


def _unicode_chars(steps: pl.DataFrame) -> dict[str, str]:
    """Each `\\uXXXX` escape in these JSON columns (runs of backslashes collapsed) and the
    character `_json_words_sql` makes of it."""
    found: set[str] = set()
    for column in _TEXT_COLUMNS[1:]:
        text = steps.get_column(column)
        held = text.filter(text.str.contains("\\u", literal=True))  # most texts have none
        if held.len():
            runs = held.str.extract_all(_UNICODE_RUN).explode().drop_nulls().unique()
            found.update(runs.str.replace(_UNICODE_RUN, r"\u$1").to_list())
    points = {escape: int(escape[2:], 16) for escape in sorted(found)}
    return {e: " " if p < 32 or 0xD800 <= p <= 0xDFFF else chr(p) for e, p in points.items()}


def _json_words(column: str, chars: dict[str, str]) -> pl.Expr:
    """A JSON text column as words (`_json_words_sql`), kept only where it holds more than `{}`
    / `[]`; `chars` holds this batch's `\\uXXXX` escapes (`_unicode_chars`)."""
    text = pl.col(column)
    words = text
    if chars:  # one pass for all escapes (Aho-Corasick), only in batches that hold some
        words = words.str.replace_all(_UNICODE_RUN, r"\u$1").str.replace_many(chars)
    return pl.when(text.str.len_chars() > 2).then(words.str.replace_all(_JSON_ESCAPE, " "))


def _step_texts(steps: pl.DataFrame) -> pl.DataFrame:
    """(trace_id, step_idx, text): each step's searchable text, `_TEXT` computed by polars on
    every core from the columns a write holds (or catch-up reads), one string per step."""
    chars = _unicode_chars(steps)
    return steps.select(
        "trace_id",
        "step_idx",
        text=pl.concat_str(
            [pl.col("content"), *(_json_words(c, chars) for c in _TEXT_COLUMNS[1:])],
            separator="\n",
            ignore_nulls=True,
        ),
    )


def index_written(
    db: Database, steps: pa.Table, trace_rows: Sequence[Mapping[str, object]], *, grown: bool = False
) -> None:
    """Make the index hold the steps a write has just stored, from the Arrow rows it holds
    (`STEP_SCHEMA`) and the rows of its traces (their `trace_id` and `metadata` as stored, JSON
    text), so nothing is read back. By default the write replaced whole traces (every trace in
    `trace_rows`):
    their old documents go. With `grown`, only the documents of the written steps and of step 0
    (which carries the trace's metadata) go: a live trace growing span by span costs its new
    steps, not all of them; a step 0 the write did not hold is read from the steps table. The
    caller owns the transaction: call it in the one that wrote the steps, after writing them,
    so the index commits (or rolls back) with them."""
    frame = pl.from_arrow(steps.select(["trace_id", "step_idx", *_TEXT_COLUMNS[:3]]))
    meta = pl.DataFrame(
        {
            "trace_id": [r["trace_id"] for r in trace_rows],
            "trace_metadata": [r["metadata"] for r in trace_rows],
        },
        schema={"trace_id": pl.String, "trace_metadata": pl.String},
    )
    assert isinstance(frame, pl.DataFrame)
    frame = frame.join(meta, on="trace_id", how="left").with_columns(
        trace_metadata=pl.when(pl.col("step_idx") == 0).then(pl.col("trace_metadata"))
    )
    ids = sorted(meta.get_column("trace_id").unique())
    for start in range(0, len(ids), INDEX_CHUNK):
        chunk = ids[start : start + INDEX_CHUNK]
        written = frame.filter(pl.col("trace_id").is_in(chunk))
        if grown:
            gone = pl.concat(
                [written.select("trace_id", "step_idx"), pl.DataFrame({"trace_id": chunk, "step_idx": 0})],
                how="vertical_relaxed",
            ).unique()
            _drop_docs(db, gone.to_arrow(), whole=False)
            held = set(written.filter(pl.col("step_idx") == 0).get_column("trace_id"))
            missing = [trace_id for trace_id in chunk if trace_id not in held]
            if missing:  # step 0 holds the trace's metadata, which a grown write may change
                written = pl.concat(
                    [written, _stored_steps(db, missing, only_first=True)], how="vertical_relaxed"
                )
        else:
            _drop_docs(db, pa.table({"trace_id": pa.array(chunk, pa.string())}), whole=True)
        _add_docs(db, _step_texts(written))


def index_traces(db: Database, traces: Iterable[str]) -> None:
    """Make the index hold exactly the current steps of these traces, read from the steps table
    (a corpus that the index does not cover: `catch_up`); writers use `index_written`."""
    ids = sorted(set(traces))
    for start in range(0, len(ids), INDEX_CHUNK):
        chunk = ids[start : start + INDEX_CHUNK]
        _drop_docs(db, pa.table({"trace_id": pa.array(chunk, pa.string())}), whole=True)
        _add_docs(db, _step_texts(_stored_steps(db, chunk, only_first=False)))


def _stored_steps(db: Database, ids: list[str], *, only_first: bool) -> pl.DataFrame:
    """The text columns of these traces' stored steps (only step 0 with `only_first`), as
    `index_written` holds them: JSON as its stored text, step 0 with its trace's metadata."""
    wanted_ids = pa.table({"trace_id": pa.array(ids, pa.string())})  # noqa: F841 - scanned by name
    first = "AND st.step_idx = 0" if only_first else ""
    # the steps and trace rows of these traces first: joined before filtering, DuckDB would
    # read every step of the corpus
    frame = pl.from_arrow(
        db.connection.execute(
            f"""
            SELECT s.trace_id, s.step_idx, s.content, CAST(s.tool_calls AS VARCHAR) AS tool_calls,
                CAST(s.metadata AS VARCHAR) AS metadata, CAST(t.metadata AS VARCHAR) AS trace_metadata
            FROM (SELECT st.* FROM steps st SEMI JOIN wanted_ids w USING (trace_id) WHERE TRUE {first}) s
            LEFT JOIN (SELECT trace_id, metadata FROM traces
                       WHERE trace_id IN (SELECT trace_id FROM wanted_ids)) t
                ON s.step_idx = 0 AND t.trace_id = s.trace_id
            """
        ).to_arrow_table()
    )
    assert isinstance(frame, pl.DataFrame)
    return frame


def _drop_docs(db: Database, gone: pa.Table, *, whole: bool) -> None:
    """Remove the documents and postings of `gone`'s traces (`whole`) or of its (trace_id,
    step_idx) pairs."""
    con = db.connection
    match = "" if whole else " AND d.step_idx = g.step_idx"
    doc_ids = sorted(
        r[0]
        for r in con.execute(
            f"SELECT d.doc_id FROM search_docs d JOIN gone g ON d.trace_id = g.trace_id{match}"
        ).fetchall()
    )
    if not doc_ids:
        return
    old_docs = pa.table({"doc_id": pa.array(doc_ids, pa.int64())})  # noqa: F841 - scanned by name
    for low, high in _doc_ranges(doc_ids):  # by range, so DuckDB skips other row groups
        con.execute(
            "DELETE FROM search_postings WHERE doc_id BETWEEN ? AND ? "
            "AND doc_id IN (SELECT doc_id FROM old_docs)",
            [low, high],
        )
    con.execute("DELETE FROM search_docs WHERE doc_id IN (SELECT doc_id FROM old_docs)")


def _add_docs(db: Database, steps: pl.DataFrame) -> None:
    """Documents and postings for (trace_id, step_idx, text) rows, ids in (trace, step) order."""
    if steps.height == 0:
        return
    con = db.connection
    # ids never reused: a merge rewrites a range of ids, which must hold only its own runs
    base = int(
        con.execute(  # type: ignore[index]
            "SELECT greatest((SELECT coalesce(max(doc_id), 0) FROM search_docs), "
            "(SELECT coalesce(max(last_doc), 0) FROM search_segments))"
        ).fetchone()[0]
    )
    steps = steps.sort("trace_id", "step_idx")  # document ids in a stable order
    tokens = token_lists(steps.get_column("text"))
    docs = pa.table(  # noqa: F841 - scanned by name
        {
            "doc_id": pa.array(range(base + 1, base + 1 + steps.height), pa.int64()),
            "trace_id": steps.get_column("trace_id").to_arrow(),
            "step_idx": steps.get_column("step_idx").cast(pl.Int32).to_arrow(),
            "len": tokens.list.len().cast(pl.Int32).to_arrow(),
        }
    )
    con.execute("INSERT INTO search_docs SELECT doc_id, trace_id, step_idx, len FROM docs")
    postings = _postings_rows(db, tokens, base)
    if postings.num_rows:
        con.execute("INSERT INTO search_postings SELECT term_id, doc_id, tf, positions FROM postings")
    con.execute(
        "INSERT INTO search_segments VALUES (?, ?, ?)", [base + 1, base + steps.height, postings.num_rows]
    )
    _merge_segments(db)


def _tier(n_rows: int) -> int:
    return int(math.log(max(n_rows, 1), MERGE_FANOUT))


def _merge_segments(db: Database) -> None:
    """Merge the newest runs of postings while `MERGE_FANOUT` of them have the same size tier
    (LSM-style tiers: each posting is rewritten about once per tier, log of the corpus size),
    unless the merged run would pass `MERGE_MAX_ROWS`, which bounds what one write pays."""
    con = db.connection
    runs = [
        tuple(map(int, r)) for r in con.execute("SELECT * FROM search_segments ORDER BY first_doc").fetchall()
    ]
    while len(runs) >= MERGE_FANOUT:
        tier = _tier(runs[-1][2])
        same = next((i for i in range(len(runs) - 1, -1, -1) if _tier(runs[i][2]) != tier), -1) + 1
        tail = runs[same:]
        if len(tail) < MERGE_FANOUT or sum(r[2] for r in tail) > MERGE_MAX_ROWS:
            return
        low, high = tail[0][0], tail[-1][1]
        con.execute(
            "CREATE OR REPLACE TEMP TABLE search_merge AS SELECT * FROM search_postings "
            "WHERE doc_id BETWEEN ? AND ? ORDER BY term_id, doc_id",
            [low, high],
        )
        con.execute("DELETE FROM search_postings WHERE doc_id BETWEEN ? AND ?", [low, high])
        n_rows = int(con.execute("INSERT INTO search_postings SELECT * FROM search_merge").fetchone()[0])  # type: ignore[index]
        con.execute("DROP TABLE search_merge")
        con.execute("DELETE FROM search_segments WHERE first_doc >= ?", [low])
        con.execute("INSERT INTO search_segments VALUES (?, ?, ?)", [low, high, n_rows])
        runs = [*runs[:same], (low, high, n_rows)]


def _postings_rows(db: Database, tokens: pl.Series, base: int) -> pa.Table:
    """One row per (term, document) of these token lists (document `base + 1 + i` for list i),
    sorted by term id then document: the token rows are stably sorted by term (they come
    ordered by document and position), and each run of one term in one document is a row."""
    words = (
        pl.DataFrame({"term": tokens})
        .with_columns(
            doc=pl.int_range(pl.len(), dtype=pl.UInt32),
            pos=pl.int_ranges(pl.col("term").list.len(), dtype=pl.Int32),
        )
        .explode("term", "pos")
        .drop_nulls("term")
    )
    if words.height == 0:
        return pa.table({"term_id": pa.array([], pa.int32())})
    terms, term_ids = _term_ids(db, words.get_column("term").unique().sort())
    code = words.get_column("term").cast(pl.Enum(terms)).to_physical()  # rank of the term's id
    words = pl.DataFrame({"code": code, "doc": words.get_column("doc"), "pos": words.get_column("pos")})
    words = words.sort("code", maintain_order=True)
    key = words.get_column("code").cast(pl.UInt64) * (1 << 32) + words.get_column("doc").cast(pl.UInt64)
    runs = key.rle().struct.unnest()
    offsets = np.concatenate([[0], np.cumsum(runs.get_column("len").to_numpy())]).astype(np.int32)
    first = runs.get_column("value")
    return pa.table(
        {
            "term_id": pa.array(term_ids[(first // (1 << 32)).to_numpy().astype(np.int64)], pa.int32()),
            "doc_id": pa.array((first % (1 << 32)).to_numpy().astype(np.int64) + base + 1, pa.int64()),
            "tf": pa.array(runs.get_column("len").to_numpy().astype(np.int32), pa.int32()),
            "positions": pa.ListArray.from_arrays(pa.array(offsets), words.get_column("pos").to_arrow()),
        }
    )


def _term_ids(db: Database, batch_terms: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """The batch's distinct terms (sorted) ordered by their id in `search_terms`, and those
    ids; terms new to the corpus get the next ids, in sorted order. One scan of the terms."""
    con = db.connection
    wanted_terms = pa.table({"term": batch_terms.to_arrow()})  # noqa: F841 - scanned by name
    found = pl.from_arrow(
        con.execute(
            "SELECT term, term_id FROM search_terms WHERE term IN (SELECT term FROM wanted_terms) "
            "UNION ALL SELECT NULL, coalesce(max(term_id), 0) FROM search_terms"
        ).to_arrow_table()
    )
    assert isinstance(found, pl.DataFrame)
    top = int(found.filter(pl.col("term").is_null()).get_column("term_id")[0])
    found = found.drop_nulls("term")
    new = (
        pl.DataFrame({"term": batch_terms})
        .join(found, on="term", how="anti")
        .sort("term")  # new ids in term order, whatever order the join left
        .with_columns(term_id=pl.int_range(top + 1, top + 1 + pl.len(), dtype=pl.Int32))
    )
    if new.height:
        new_terms = new.to_arrow()  # noqa: F841 - scanned by name
        con.execute("INSERT INTO search_terms SELECT term, term_id FROM new_terms")
    known = pl.concat([found, new]).sort("term_id")
    return known.get_column("term"), known.get_column("term_id").to_numpy()


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


def _term_ids_sql(token: str, prefix: bool) -> str:
    """The ids of a query token's terms: the term itself, or every term starting with a prefix."""
    if not prefix:
        where = f"term = {_literal(token)}"
    else:
        low, high = _literal(token), _literal(token + chr(0x10FFFF))  # no letter sorts after U+10FFFF
        where = f"term >= {low} AND term <= {high} AND starts_with(term, {low})"
    return f"SELECT term_id FROM search_terms WHERE {where}"


def _tokens(parts: list[QueryPart]) -> list[tuple[str, bool]]:
    """The query's distinct tokens (a prefix's expansions count as one), in a stable order."""
    return sorted({(t, p.prefix) for p in parts for t in p.tokens})


# term ids per token number (as in `_tokens`), looked up before the query; without them (SQL
# for a caller with no connection) the ids are a subquery, which DuckDB does not use to skip
# row groups: every query token then scans the whole term_id column
TermIds = dict[int, list[int]]


def _term_filter(n: int, tokens: list[tuple[str, bool]], ids: TermIds | None) -> str:
    """A filter on `term_id` for token `n`: constants where looked up, which DuckDB pushes
    into the scan (row groups skipped by their min/max)."""
    if ids is None:
        return f"term_id IN ({_term_ids_sql(*tokens[n])})"
    found = ids.get(n, [])
    if not found:
        return "FALSE"
    if len(found) == 1:
        return f"term_id = {found[0]}"
    return f"term_id BETWEEN {min(found)} AND {max(found)} AND term_id IN ({', '.join(map(str, found))})"


def _query_postings(parts: list[QueryPart], ids: TermIds | None, within: str | None = None) -> str:
    """SQL for (token, term_id, doc_id, tf) of every query token (numbered as in `_tokens`),
    only of the documents `within` selects when given."""
    tokens = _tokens(parts)
    also = f" AND doc_id IN ({within})" if within else ""
    return " UNION ALL ".join(
        f"SELECT {n} AS token, term_id, doc_id, tf FROM search_postings "
        f"WHERE {_term_filter(n, tokens, ids)}{also}"
        for n in range(len(tokens))
    )


@dataclass(frozen=True)
class TermCounts:
    """A query's term ids per token and how many documents hold each: (token, term_id, df)."""

    n_tokens: int
    ids: TermIds
    rows: list[tuple[int, int, int]]

    @property
    def rarest_first(self) -> list[int]:
        """Token numbers by their postings, fewest first: the intersection then starts from
        the smallest set and only probes the larger ones (a token without postings first)."""
        totals: dict[int, int] = {}
        for token, _, df in self.rows:
            totals[token] = totals.get(token, 0) + df
        return sorted(range(self.n_tokens), key=lambda n: (totals.get(n, 0), n))

    def values_sql(self) -> str:
        """The rows as a VALUES table (token, term_id, df) for the BM25 join."""
        rows = ", ".join(f"({t}, {i}, {d})" for t, i, d in self.rows) or "(NULL, NULL, NULL)"
        return f"SELECT * FROM (VALUES {rows}) v(token, term_id, df)"


def term_counts(db: Database, parts: list[QueryPart]) -> TermCounts:
    """The query's term ids (one look-up in `search_terms`) and the document frequency of each
    (one aggregate over their postings)."""
    tokens = _tokens(parts)
    lookup = " UNION ALL ".join(
        f"SELECT {n} AS token, term_id FROM ({_term_ids_sql(t, prefix)})"
        for n, (t, prefix) in enumerate(tokens)
    )
    ids: TermIds = {}
    for n, term_id in db.rows(f"{lookup} ORDER BY 1, 2"):
        ids.setdefault(int(n), []).append(int(term_id))
    rows = db.rows(
        f"SELECT token, term_id, count(*) FROM ({_query_postings(parts, ids)}) GROUP BY ALL ORDER BY 1, 2"
    )
    return TermCounts(len(tokens), ids, [(int(t), int(i), int(d)) for t, i, d in rows])


def _match_ctes(parts: list[QueryPart], counts: TermCounts | None = None) -> tuple[list[str], str]:
    """CTEs and a SELECT of `doc_id` for every step holding every part: the documents of the
    first token (the rarest, given `counts`; else the longest), each next token's postings
    kept only for documents still in; phrases are then checked by position on those
    candidates only."""
    tokens = _tokens(parts)
    ids = counts.ids if counts is not None else None
    if counts is not None:
        order = counts.rarest_first
    else:  # no counts at hand: longer words first, as they tend to be rarer
        order = sorted(range(len(tokens)), key=lambda n: (-len(tokens[n][0]), n))
    ctes: list[str] = []
    for step, n in enumerate(order):
        within = f" AND doc_id IN (SELECT doc_id FROM m{step - 1})" if step else ""
        distinct = "DISTINCT " if tokens[n][1] else ""  # one document can hold several expansions
        ctes.append(
            f"m{step} AS MATERIALIZED (SELECT {distinct}doc_id FROM search_postings "
            f"WHERE {_term_filter(n, tokens, ids)}{within})"
        )
    last = f"m{len(tokens) - 1}"
    final = f"SELECT doc_id FROM {last}"
    for j, part in enumerate(p for p in parts if p.phrase):
        ctes.append(f"phrase{j} AS ({_phrase_sql(part, tokens, ids, order, last)})")
        final += f" SEMI JOIN phrase{j} USING (doc_id)"
    return ctes, final


def _phrase_sql(
    part: QueryPart, tokens: list[tuple[str, bool]], ids: TermIds | None, order: list[int], within: str
) -> str:
    """The documents of `within` where the phrase's words stand next to each other: the
    positions of its rarest word (first in `order`) are unnested, each a candidate start, and
    each other word's position list in that document must contain `start + its place`. The
    common words' positions are only searched, never unnested: on 100k traces the filter `"of the"` went
    from 915-1,019 ms to 395-421 ms CPU (docs/search.md)."""
    numbers = [tokens.index((t, False)) for t in part.tokens]
    rarest = min(range(len(numbers)), key=lambda i: (order.index(numbers[i]), i))

    def postings(i: int) -> str:
        return (
            f"(SELECT doc_id, positions FROM search_postings WHERE {_term_filter(numbers[i], tokens, ids)} "
            f"AND doc_id IN (SELECT doc_id FROM {within}))"
        )

    others = [i for i in range(len(numbers)) if i != rarest]
    joins = "".join(f" JOIN {postings(i)} p{i} USING (doc_id)" for i in others)
    checks = " AND ".join(f"list_contains(p{i}.positions, r.start + {i})" for i in others)
    return (
        f"SELECT DISTINCT r.doc_id FROM (SELECT doc_id, unnest(positions) - {rarest} AS start "
        f"FROM {postings(rarest)}) r{joins} WHERE {checks}"
    )


def _matched_traces_sql(parts: list[QueryPart], counts: TermCounts | None = None) -> str:
    ctes, final = _match_ctes(parts, counts)
    return (
        f"WITH {', '.join(ctes)}, matched AS ({final}) "
        "SELECT DISTINCT d.trace_id FROM search_docs d SEMI JOIN matched USING (doc_id)"
    )


def _hits_sql(parts: list[QueryPart], counts: TermCounts) -> str:
    """SQL for every matching step: (trace_id, step_idx, score), BM25 summed over the query's
    terms (a prefix's expansions each count), rounded so float summation order cannot reorder.
    Only the matching steps' postings are read for the score; the document frequencies are the
    counts already taken."""
    ctes, final = _match_ctes(parts, counts)
    return f"""
        WITH {", ".join(ctes)}, matched AS MATERIALIZED ({final}),
        qp AS ({_query_postings(parts, counts.ids, "SELECT doc_id FROM matched")}),
        df AS ({counts.values_sql()}),
        st AS (SELECT count(*) AS n, avg(len) AS avgdl FROM search_docs),
        scored AS (
            SELECT qp.doc_id, round(sum(
                ln((st.n - df.df + 0.5) / (df.df + 0.5) + 1)
                * qp.tf * {K1 + 1} / (qp.tf + {K1} * (1 - {B} + {B} * d.len / st.avgdl))
            ), 9) AS score
            FROM qp JOIN df USING (token, term_id) JOIN search_docs d ON d.doc_id = qp.doc_id, st
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


def text_clause(query: str, db: Database | None = None) -> str:
    """`trace_id IN (...)` for the traces with a step matching `query`, from the index: for SQL
    built apart from a query (the corpus filter). Given the connection, the query's term ids
    and counts are looked up first and written in as constants, intersected rarest first: with
    ids as a subquery DuckDB cannot prune row groups by them nor estimate how few documents
    match (1,936 traces for `umbrella` on 100k: 332 ms, with constants 54 ms). The index is
    current for every corpus this tracefail wrote or migrated."""
    parts = parse_query(query)
    return f"trace_id IN ({_matched_traces_sql(parts, term_counts(db, parts) if db is not None else None)})"


def search_steps(
    db: Database, query: str, *, limit: int = 20, indexed: bool = True, trace_id: str | None = None
) -> tuple[pl.DataFrame, int, int]:
    """The best `limit` hits (trace_id, step_idx, agent, kind, score, content) by BM25, the
    number of matching steps and of matching traces. `content` is the searchable text (content,
    tool calls, metadata), so a hit in the metadata shows where it matched."""
    parts = parse_query(query)
    sql, params = (_hits_sql(parts, term_counts(db, parts)), []) if indexed else _scan_sql(parts)
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
        sql = _matched_traces_sql(parts, term_counts(db, parts))
        return db.frame(f"{sql} ORDER BY 1").get_column("trace_id")
    scan, params = _scan_sql(parts)
    return db.frame(f"SELECT DISTINCT trace_id FROM ({scan}) ORDER BY 1", params).get_column("trace_id")
