"""Queries behind `tracefail browse`: a filtered, sorted, paged corpus listing, step search,
per-step features, and human label writes with undo.

Every listing query pages (LIMIT/OFFSET) so the TUI fetches only what it shows; the filter is
compiled once into a `WHERE` over `traces t` and reused by the count, the page, the stats and
the export, so they always agree on what "the current selection" is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from tracefail.model import HEADLINE_FEATURES, Attribution, Label
from tracefail.store import export, search
from tracefail.store.db import Database
from tracefail.store.traces import insert_attributions, insert_labels

FeatureOp = Literal[">", ">=", "<", "<="]
Agreement = Literal["agree", "disagree"]

# Column name shown by the TUI -> SQL expression it sorts by.
SORT_COLUMNS: dict[str, str] = {
    "trace_id": "t.trace_id",
    "framework": "t.framework",
    "llm": "t.llm",
    "benchmark": "t.benchmark",
    "steps": "t.n_steps",
    "outcome": "t.outcome",
    "modes": "len(coalesce(lab.modes, []))",
    "sources": "len(coalesce(lab.sources, []))",
}
# Per-step uncertainty features the sparkline prefers, best first.
SPARK_FEATURES = tuple(f for f in HEADLINE_FEATURES if f.startswith("tok."))


@dataclass(frozen=True)
class FeatureThreshold:
    """`name op value` holds when some step (or the trace aggregate) of a trace satisfies it."""

    name: str
    op: FeatureOp
    value: float


@dataclass(frozen=True)
class CorpusFilter:
    """What the corpus screen shows; empty fields do not filter."""

    framework: str | None = None
    llm: str | None = None
    benchmark: str | None = None
    outcome: str | None = None
    mode: str | None = None  # a present label of this mode from any source
    category: str | None = None  # the category's name, for display; its modes filter
    category_modes: tuple[str, ...] = ()  # a present label of any of these modes (one category)
    source: str | None = None  # label source or its kind prefix ("human", "llm-judge", ...)
    agreement: Agreement | None = None
    features: tuple[FeatureThreshold, ...] = ()
    text: str | None = None  # words some step must contain (`tracefail.store.search` queries)
    sort: str = "trace_id"
    descending: bool = False


def _latest(where: str = "TRUE") -> str:
    """Each source's current answer per (trace, mode): its newest label. Labels are appended,
    never updated, so a human who first accepts and then rejects a mode has rejected it."""
    return (
        "(SELECT trace_id, source, mode_id, arg_max(present, label_id) AS present FROM labels "
        f"WHERE {where} GROUP BY trace_id, source, mode_id)"
    )


def _label_agg(latest: str) -> str:
    """Per trace of the `latest` labels (a `_latest` relation): present modes and sources."""
    return f"""
        SELECT trace_id,
               list(DISTINCT mode_id ORDER BY mode_id) FILTER (WHERE present) AS modes,
               list(DISTINCT source ORDER BY source) AS sources
        FROM {latest} GROUP BY trace_id
    """


def _disagree(latest: str) -> str:
    """Traces where two sources of the `latest` labels give different answers for one mode."""
    return f"""
        SELECT DISTINCT trace_id FROM {latest} WHERE present IS NOT NULL
        GROUP BY trace_id, mode_id HAVING bool_or(present) AND NOT bool_and(present)
    """


def _attribution_sources(where: str = "TRUE") -> str:
    return f"""
        SELECT trace_id, list(DISTINCT source ORDER BY source) AS sources
        FROM attributions WHERE {where} GROUP BY trace_id
    """


_LABEL_AGG = _label_agg(_latest())
_DISAGREE = _disagree(_latest())
_MULTI_SOURCE = """
    SELECT trace_id FROM labels WHERE present IS NOT NULL
    GROUP BY trace_id HAVING count(DISTINCT source) > 1
"""


def _where(f: CorpusFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column in ("framework", "llm", "benchmark", "outcome"):
        value = getattr(f, column)
        if value:
            clauses.append(f"t.{column} = ?")
            params.append(value)
    if f.mode:
        clauses.append(f"t.trace_id IN (SELECT trace_id FROM {_latest('mode_id = ?')} WHERE present)")
        params.append(f.mode)
    if f.category_modes:
        clauses.append(
            f"t.trace_id IN (SELECT trace_id FROM {_latest('mode_id IN (SELECT unnest(?))')} WHERE present)"
        )
        params.append(list(f.category_modes))
    if f.source:
        clauses.append(
            "t.trace_id IN (SELECT trace_id FROM labels WHERE source = ? OR starts_with(source, ?))"
        )
        params.extend([f.source, f.source.rstrip(":") + ":"])
    if f.agreement == "disagree":
        clauses.append(f"t.trace_id IN ({_DISAGREE})")
    elif f.agreement == "agree":
        clauses.append(f"t.trace_id IN ({_MULTI_SOURCE}) AND t.trace_id NOT IN ({_DISAGREE})")
    for threshold in f.features:
        if threshold.op not in (">", ">=", "<", "<="):
            raise ValueError(f"unknown comparison {threshold.op!r}")
        clauses.append(
            f"t.trace_id IN (SELECT trace_id FROM features WHERE name = ? AND value {threshold.op} ?)"
        )
        params.extend([threshold.name, threshold.value])
    if f.text:
        clause, text_params = search.scan_clause(f.text)
        clauses.append(f"t.{clause}")
        params.extend(text_params)
    return (" AND ".join(clauses) or "TRUE"), params


def selection_sql(f: CorpusFilter) -> tuple[str, list[Any]]:
    """`SELECT trace_id FROM traces t WHERE <filter>`: the current selection, for reuse."""
    where, params = _where(f)
    return f"SELECT t.trace_id FROM traces t WHERE {where}", params


def count_traces(db: Database, f: CorpusFilter) -> int:
    where, params = _where(f)
    return int(db.rows(f"SELECT count(*) FROM traces t WHERE {where}", params)[0][0])


_ON_PAGE = "trace_id IN (SELECT trace_id FROM page)"


def page_traces(db: Database, f: CorpusFilter, offset: int, limit: int) -> pl.DataFrame:
    """One page of the corpus listing: the trace columns, modes found and label sources.

    The page's ids are chosen first and only their labels are aggregated, so a page costs the
    same on 100 or 100,000 traces; sorting by a label column has to aggregate them all.
    """
    if f.sort not in SORT_COLUMNS:
        raise ValueError(f"cannot sort by {f.sort!r}; choose one of {', '.join(SORT_COLUMNS)}")
    where, params = _where(f)
    direction = "DESC" if f.descending else "ASC"
    order = f"{SORT_COLUMNS[f.sort]} {direction} NULLS LAST, t.trace_id {direction}"
    by_labels = f.sort in ("modes", "sources")
    label_join = f"LEFT JOIN ({_LABEL_AGG}) lab USING (trace_id)" if by_labels else ""
    return db.frame(
        f"""
        WITH page AS (
            SELECT {SORT_COLUMNS[f.sort]} AS sort_key, t.trace_id, t.framework, t.llm,
                   t.benchmark, t.n_steps, t.outcome
            FROM traces t {label_join}
            WHERE {where}
            ORDER BY {order} LIMIT ? OFFSET ?
        )
        SELECT page.* EXCLUDE (sort_key), coalesce(lab.modes, []) AS modes,
               coalesce(lab.sources, []) AS sources, coalesce(att.sources, []) AS attribution_sources
        FROM page
        LEFT JOIN ({_label_agg(_latest(_ON_PAGE))}) lab USING (trace_id)
        LEFT JOIN ({_attribution_sources(_ON_PAGE)}) att USING (trace_id)
        ORDER BY page.sort_key {direction} NULLS LAST, page.trace_id {direction}
        """,
        [*params, int(limit), int(offset)],
    )


# --- the corpus index: the listing held in memory, filtered with polars ---------------------------
# Filters over labels and features aggregate hundreds of thousands of rows; doing that in SQL on
# every keystroke costs 0.1-0.5 s on 100k traces. The browser instead reads, once per corpus
# state, one row per trace with everything the filters and the listing need, and filters that
# frame in memory. The SQL above stays the definition: the index is built from the same
# `_latest`, `_label_agg`, `_disagree` and `_MULTI_SOURCE` queries, and the tests check both
# paths agree.
INDEX_COLUMNS = (
    "trace_id",
    "framework",
    "llm",
    "benchmark",
    "n_steps",
    "outcome",
    "modes",
    "sources",
    "attribution_sources",
)
_INDEX_SORT: dict[str, pl.Expr] = {
    "trace_id": pl.col("trace_id"),
    "framework": pl.col("framework"),
    "llm": pl.col("llm"),
    "benchmark": pl.col("benchmark"),
    "steps": pl.col("n_steps"),
    "outcome": pl.col("outcome"),
    "modes": pl.col("modes").list.len(),
    "sources": pl.col("sources").list.len(),
}


@dataclass
class CorpusIndex:
    """One row per trace, sorted by trace id (listing columns, present modes, label sources,
    agreement flags), the same modes and sources one per row, and each trace's lowest and
    highest value per feature, as read in one snapshot of the corpus. Rows are referred to by
    position; a selection is an array of positions in display order."""

    traces: pl.DataFrame
    present: pl.DataFrame  # row, mode_id: a mode some source's latest label says is present
    sources: pl.DataFrame  # row, source: every label source of the trace
    feature_ranges: pl.DataFrame  # row, name, lo, hi (DuckDB's min/max: NaN is highest)
    orders: dict[tuple[str, bool], np.ndarray] = field(default_factory=dict)  # filled on demand

    def order(self, column: str, descending: bool) -> np.ndarray:
        """Row positions sorted as `page_traces` sorts: by `column`, nulls last, then trace id."""
        key = (column, descending)
        if key not in self.orders:
            if column == "trace_id" and not descending:
                self.orders[key] = np.arange(self.traces.height)
            else:
                self.orders[key] = (
                    self.traces.with_row_index("row")
                    .sort(
                        [_INDEX_SORT[column], pl.col("trace_id")],
                        descending=[descending, descending],
                        nulls_last=True,
                    )
                    .get_column("row")
                    .to_numpy()
                )
        return self.orders[key]


def corpus_index(db: Database) -> CorpusIndex:
    """Read the index in one transaction so every part sees the same corpus."""
    with db.transaction():
        traces = db.frame(
            f"""
            WITH latest AS MATERIALIZED (SELECT * FROM {_latest()}),
            lab AS ({_label_agg("latest")}),
            dis AS ({_disagree("latest")}),
            multi AS ({_MULTI_SOURCE}),
            att AS ({_attribution_sources()})
            SELECT t.trace_id, t.framework, t.llm, t.benchmark, t.n_steps, t.outcome,
                   coalesce(lab.modes, []) AS modes, coalesce(lab.sources, []) AS sources,
                   coalesce(att.sources, []) AS attribution_sources,
                   dis.trace_id IS NOT NULL AS disagree, multi.trace_id IS NOT NULL AS multi_source
            FROM traces t
            LEFT JOIN lab USING (trace_id) LEFT JOIN dis USING (trace_id)
            LEFT JOIN multi USING (trace_id) LEFT JOIN att USING (trace_id)
            ORDER BY t.trace_id
            """
        )
        ranges = db.frame(
            "SELECT trace_id, name, min(value) AS lo, max(value) AS hi FROM features "
            "WHERE value IS NOT NULL GROUP BY trace_id, name"
        )
    rows = traces.select("trace_id", "modes", "sources").with_row_index("row")
    return CorpusIndex(
        traces=traces,
        present=rows.select("row", mode_id="modes").explode("mode_id").drop_nulls(),
        sources=rows.select("row", source="sources").explode("source").drop_nulls(),
        feature_ranges=ranges.join(rows.select("trace_id", "row"), on="trace_id").drop("trace_id"),
    )


def select_indexed(index: CorpusIndex, f: CorpusFilter, text_ids: pl.Series | None = None) -> np.ndarray:
    """Positions of the traces `f` selects, in its order: the in-memory twin of `_where` and
    `page_traces`. `text_ids` are the traces matching `f.text` (the search service), needed when set."""
    if f.sort not in SORT_COLUMNS:
        raise ValueError(f"cannot sort by {f.sort!r}; choose one of {', '.join(SORT_COLUMNS)}")
    traces = index.traces
    keep = np.ones(traces.height, dtype=bool)

    def only(rows: pl.Series) -> None:
        hit = np.zeros(traces.height, dtype=bool)
        hit[rows.to_numpy()] = True
        keep[:] &= hit

    for column in ("framework", "llm", "benchmark", "outcome"):
        value = getattr(f, column)
        if value:
            keep &= (traces.get_column(column) == value).fill_null(False).to_numpy()
    if f.mode:
        only(index.present.filter(pl.col("mode_id") == f.mode).get_column("row"))
    if f.category_modes:
        only(index.present.filter(pl.col("mode_id").is_in(list(f.category_modes))).get_column("row"))
    if f.source:
        prefix = f.source.rstrip(":") + ":"
        wanted = (pl.col("source") == f.source) | pl.col("source").str.starts_with(prefix)
        only(index.sources.filter(wanted).get_column("row"))
    if f.agreement == "disagree":
        keep &= traces.get_column("disagree").to_numpy()
    elif f.agreement == "agree":
        keep &= traces.get_column("multi_source").to_numpy() & ~traces.get_column("disagree").to_numpy()
    for threshold in f.features:
        bound = {
            ">": pl.col("hi") > threshold.value,
            ">=": pl.col("hi") >= threshold.value,
            "<": pl.col("lo") < threshold.value,
            "<=": pl.col("lo") <= threshold.value,
        }.get(threshold.op)
        if bound is None:
            raise ValueError(f"unknown comparison {threshold.op!r}")
        only(index.feature_ranges.filter((pl.col("name") == threshold.name) & bound).get_column("row"))
    if f.text:
        if text_ids is None:
            raise ValueError("a text filter needs the ids of the traces that match it")
        keep &= traces.get_column("trace_id").is_in(text_ids.implode()).to_numpy()
    order = index.order(f.sort, f.descending)
    return order[keep[order]]


def indexed_page(index: CorpusIndex, selected: np.ndarray, offset: int, limit: int) -> list[dict[str, Any]]:
    """Rows `offset`..`offset + limit` of a `select_indexed` selection, shaped like `page_traces`."""
    return index.traces[selected[offset : offset + limit]].select(INDEX_COLUMNS).to_dicts()


def sparklines(db: Database, trace_ids: list[str]) -> tuple[str | None, dict[str, list[float]]]:
    """Per-step values of the first uncertainty feature stored for these traces, by trace."""
    if not trace_ids:
        return None, {}
    rows = db.rows(
        "SELECT name, trace_id, list(value ORDER BY step_idx) FROM features "
        "WHERE trace_id IN (SELECT unnest(?)) AND name IN (SELECT unnest(?)) AND step_idx >= 0 "
        "GROUP BY name, trace_id",
        [trace_ids, list(SPARK_FEATURES)],
    )
    name = next((n for n in SPARK_FEATURES if any(r[0] == n for r in rows)), None)
    values = {trace_id: [v for v in vs if v is not None] for n, trace_id, vs in rows if n == name}
    return name, values


@dataclass
class Facets:
    """The values each filter can take, for completion and the palette."""

    frameworks: list[str] = field(default_factory=list)
    llms: list[str] = field(default_factory=list)
    benchmarks: list[str] = field(default_factory=list)
    modes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)  # category -> mode ids


def _distinct(db: Database, column: str, table: str) -> list[str]:
    return [
        r[0] for r in db.rows(f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL ORDER BY 1")
    ]


def facets(db: Database) -> Facets:
    categories: dict[str, list[str]] = {}
    for (definition,) in db.rows("SELECT definition FROM taxonomies ORDER BY loaded_at"):
        for mode in json.loads(definition).get("modes", []):
            if mode.get("category") and mode.get("id"):
                categories.setdefault(str(mode["category"]), []).append(str(mode["id"]))
    return Facets(
        frameworks=_distinct(db, "framework", "traces"),
        llms=_distinct(db, "llm", "traces"),
        benchmarks=_distinct(db, "benchmark", "traces"),
        modes=_distinct(db, "mode_id", "labels"),
        sources=_distinct(db, "source", "labels"),
        features=_distinct(db, "name", "features"),
        categories={k: sorted(set(v)) for k, v in categories.items()},
    )


# --- stats over the selection (the stats screen follows the corpus filter) ---------------------
def prevalence(db: Database, f: CorpusFilter, by: Literal["framework", "llm"]) -> pl.DataFrame:
    """Share of selected traces per group where some source's latest label has the mode present."""
    selection, params = selection_sql(f)
    return db.frame(
        f"""
        WITH sel AS (SELECT t.trace_id, coalesce(t.{by}, '?') AS grp FROM traces t
                     WHERE t.trace_id IN ({selection})),
             sizes AS (SELECT grp, count(*) AS n FROM sel GROUP BY grp),
             hits AS (SELECT DISTINCT sel.grp, sel.trace_id, l.mode_id FROM sel
                      JOIN {_latest()} l USING (trace_id) WHERE l.present)
        SELECT hits.grp AS "group", hits.mode_id, count(*) AS traces, any_value(sizes.n) AS total,
               count(*) / any_value(sizes.n) AS share
        FROM hits JOIN sizes USING (grp) GROUP BY hits.grp, hits.mode_id
        ORDER BY share DESC, "group", mode_id
        """,
        params,
    )


def cooccurrence(db: Database, f: CorpusFilter, limit: int = 15) -> pl.DataFrame:
    selection, params = selection_sql(f)
    return db.frame(
        f"""
        WITH present AS (SELECT DISTINCT trace_id, mode_id FROM {_latest(f"trace_id IN ({selection})")}
                         WHERE present)
        SELECT a.mode_id AS mode_a, b.mode_id AS mode_b, count(*) AS traces
        FROM present a JOIN present b ON a.trace_id = b.trace_id AND a.mode_id < b.mode_id
        GROUP BY ALL ORDER BY traces DESC, mode_a, mode_b LIMIT ?
        """,
        [*params, limit],
    )


def failure_positions(db: Database, f: CorpusFilter, bins: int = 10) -> pl.DataFrame:
    """Where mistakes sit along traces: attributed steps by relative position, in `bins` bins."""
    selection, params = selection_sql(f)
    return db.frame(
        f"""
        SELECT least(floor(a.step_idx / greatest(t.n_steps, 1) * ?), ? - 1)::INTEGER AS bin,
               count(*) AS mistakes
        FROM attributions a JOIN traces t USING (trace_id)
        WHERE a.step_idx IS NOT NULL AND t.trace_id IN ({selection})
        GROUP BY bin ORDER BY bin
        """,
        [bins, bins, *params],
    )


# --- one trace ---------------------------------------------------------------------------------
def trace_head(db: Database, trace_id: str) -> dict[str, Any] | None:
    rows = db.frame("SELECT * EXCLUDE (raw) FROM traces WHERE trace_id = ?", [trace_id]).to_dicts()
    return rows[0] if rows else None


def trace_steps(db: Database, trace_id: str) -> pl.DataFrame:
    return db.frame(
        "SELECT step_idx, span_id, parent_span_id, agent, recipient, role, kind, name, content, "
        "tool_calls, status FROM steps WHERE trace_id = ? ORDER BY step_idx",
        [trace_id],
    )


def trace_labels(db: Database, trace_id: str) -> pl.DataFrame:
    return db.frame(
        "SELECT label_id, taxonomy_id, taxonomy_version, mode_id, present, probability, "
        "evidence_steps, agent, rationale, source, created_at FROM labels WHERE trace_id = ? "
        "ORDER BY mode_id, source, label_id",
        [trace_id],
    )


def trace_attributions(db: Database, trace_id: str) -> pl.DataFrame:
    return db.frame(
        "SELECT attribution_id, agent, step_idx, reason, probability, source FROM attributions "
        "WHERE trace_id = ? ORDER BY attribution_id",
        [trace_id],
    )


def step_features(db: Database, trace_id: str) -> dict[str, list[float | None]]:
    """Per-step values by feature name (index = step_idx), from the newest extractor version."""
    rows = db.rows(
        """
        SELECT name, step_idx, value FROM features
        WHERE trace_id = ? AND step_idx >= 0
        QUALIFY rank() OVER (PARTITION BY name ORDER BY extractor_version DESC, model) = 1
        ORDER BY name, step_idx
        """,
        [trace_id],
    )
    out: dict[str, list[float | None]] = {}
    for name, step_idx, value in rows:
        values = out.setdefault(name, [])
        values.extend([None] * (step_idx + 1 - len(values)))
        values[step_idx] = value
    return out


def taxonomy_modes(db: Database) -> list[tuple[str, str, str, str]]:
    """(taxonomy id, version, mode id, mode name) for every stored taxonomy."""
    found = []
    for taxonomy_id, version, definition in db.rows(
        "SELECT taxonomy_id, version, definition FROM taxonomies ORDER BY taxonomy_id, version"
    ):
        for mode in json.loads(definition).get("modes", []):
            found.append((taxonomy_id, version, str(mode.get("id")), str(mode.get("name", ""))))
    return found


# --- human writes ------------------------------------------------------------------------------
def add_human_label(db: Database, label: Label) -> int:
    """Append one human label and return its id; other sources' rows are never touched."""
    if not label.source.startswith("human:"):
        raise ValueError(f"browse writes human labels only, not {label.source!r}")
    with db.transaction():
        insert_labels(db, [label])
        return int(db.rows("SELECT currval('label_id_seq')")[0][0])


def add_human_attribution(db: Database, attribution: Attribution) -> int:
    if not attribution.source.startswith("human:"):
        raise ValueError(f"browse writes human attributions only, not {attribution.source!r}")
    with db.transaction():
        insert_attributions(db, [attribution])
        return int(db.rows("SELECT currval('attribution_id_seq')")[0][0])


def undo_human_write(db: Database, table: Literal["labels", "attributions"], row_id: int) -> bool:
    """Delete a row this user wrote; refuses anything that is not a human row."""
    key = {"labels": "label_id", "attributions": "attribution_id"}[table]
    with db.transaction():
        deleted = db.rows(
            f"DELETE FROM {table} WHERE {key} = ? AND starts_with(source, 'human:') RETURNING {key}",
            [row_id],
        )
    return bool(deleted)


def export_selection(db: Database, f: CorpusFilter, out: Path) -> int:
    """The selected traces with steps, labels and attributions as JSONL (one trace a line)."""
    selection, params = selection_sql(f)
    target = str(out).replace("'", "''")
    nested = f"SELECT * FROM ({export._NESTED}) n WHERE n.trace_id IN ({selection})"
    db.execute(f"COPY ({nested}) TO '{target}' (FORMAT json)", params)
    return count_traces(db, f)
