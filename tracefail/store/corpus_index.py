"""The corpus index: the listing held in memory, filtered with polars.

Filters over labels and features aggregate hundreds of thousands of rows; doing that in SQL on
every keystroke costs 0.1-0.5 s on 100k traces. The browser instead reads, once per corpus
state, one row per trace with everything the filters and the listing need, and filters that
frame in memory. The SQL in `selection` stays the definition: the index is built from the same
`latest`, `label_agg`, `disagree` and `MULTI_SOURCE` queries, and the tests check both paths
agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from tracefail.store.db import Database
from tracefail.store.selection import (
    MULTI_SOURCE,
    SORT_COLUMNS,
    VALUE_COLUMNS,
    CorpusFilter,
    attribution_sources,
    disagree,
    label_agg,
    latest,
    value_key,
)

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
            WITH latest AS MATERIALIZED (SELECT * FROM {latest()}),
            lab AS ({label_agg("latest")}),
            dis AS ({disagree("latest")}),
            multi AS ({MULTI_SOURCE}),
            att AS ({attribution_sources()})
            SELECT t.trace_id, t.framework, t.llm, t.benchmark, t.n_steps, t.outcome,
                   {", ".join(f"{sql} AS {column}_key" for column, sql in VALUE_COLUMNS.items())},
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
    rows = traces.select("trace_id", "modes", "sources", "attribution_sources").with_row_index("row")
    every_source = pl.concat_list("sources", "attribution_sources").list.unique(maintain_order=True)
    return CorpusIndex(
        traces=traces,
        present=rows.select("row", mode_id="modes").explode("mode_id").drop_nulls(),
        sources=rows.select("row", source=every_source).explode("source").drop_nulls(),
        feature_ranges=ranges.join(rows.select("trace_id", "row"), on="trace_id").drop("trace_id"),
    )


def select_indexed(index: CorpusIndex, f: CorpusFilter, text_ids: pl.Series | None = None) -> np.ndarray:
    """Positions of the traces `f` selects, in its order: the in-memory twin of `selection.where` and
    `page_traces`. `text_ids` are the traces matching `f.text` (the search service), needed when set."""
    if f.sort not in SORT_COLUMNS:
        raise ValueError(f"cannot sort by {f.sort!r}; choose one of {', '.join(SORT_COLUMNS)}")
    traces = index.traces
    keep = np.ones(traces.height, dtype=bool)

    def only(rows: pl.Series) -> None:
        hit = np.zeros(traces.height, dtype=bool)
        hit[rows.to_numpy()] = True
        keep[:] &= hit

    for column in VALUE_COLUMNS:
        value = getattr(f, column)
        if value:
            keep &= (
                (traces.get_column(f"{column}_key") == value_key(column, value)).fill_null(False).to_numpy()
            )
    if f.trace_ids:
        keep &= traces.get_column("trace_id").is_in(list(f.trace_ids)).to_numpy()
    if f.mode:
        only(index.present.filter(pl.col("mode_id") == f.mode).get_column("row"))
    if f.category_modes:
        only(index.present.filter(pl.col("mode_id").is_in(list(f.category_modes))).get_column("row"))
    if f.source:  # a label or an attribution from the source (a name, or a kind before ':')
        name = f.source.lower()
        source = pl.col("source").str.to_lowercase()
        wanted = (source == name) | source.str.starts_with(name.rstrip(":") + ":")
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
