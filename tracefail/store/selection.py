"""The corpus selection in SQL: a `CorpusFilter` compiled once into a `WHERE` over `traces t`,
reused by the count, the page, the stats and the export, so they always agree on what "the
current selection" is. Every listing query pages (LIMIT/OFFSET) so the TUI fetches only what it
shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from tracefail.store import search
from tracefail.store.db import Database
from tracefail.store.text_list import IN_TEXTS, texts

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

_PROVIDER = r"^([a-z0-9_.-]+/)+"  # openai/, Qwen/, models/
_VERSION = r"[-_@:](\d{4}-\d{2}-\d{2}|\d{8}|\d{4})$"  # -2024-08-06, -20241022, -0613


def llm_name(column: str) -> str:
    """SQL for a model name as the filters and statistics compare it: lower case, without a
    provider prefix (`openai/`, `Qwen/`) or a date/version suffix (`-2024-08-06`, `-20241022`,
    `-0613`), so `GPT-4o`, `openai/gpt-4o` and `gpt-4o-2024-08-06` are one model."""
    return f"regexp_replace(regexp_replace(lower(trim({column})), '{_PROVIDER}', ''), '{_VERSION}', '')"


def text_value(column: str) -> str:
    """SQL for a framework, benchmark or outcome as the filters compare it: case-insensitive."""
    return f"lower(trim({column}))"


# filter key -> SQL over `traces t` that its value is compared with
VALUE_COLUMNS = {
    "framework": text_value("t.framework"),
    "llm": llm_name("t.llm"),
    "benchmark": text_value("t.benchmark"),
    "outcome": text_value("t.outcome"),
}


def value_key(column: str, value: str) -> str:
    """The Python twin of VALUE_COLUMNS (tests check they agree): what a typed value is
    compared as, in the in-memory index and in the filter language's checks."""
    key = value.strip().lower()
    if column == "llm":
        key = re.sub(_VERSION, "", re.sub(_PROVIDER, "", key))
    return key


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
    source: str | None = None  # label/attribution source or its kind ("human", "llm-judge", ...)
    agreement: Agreement | None = None
    features: tuple[FeatureThreshold, ...] = ()
    trace_ids: tuple[str, ...] = ()  # only these traces (a failure cluster opened from the TUI)
    text: str | None = None  # a search query (`tracefail.store.search`): words some step must contain
    sort: str = "trace_id"
    descending: bool = False


def latest(where: str = "TRUE") -> str:
    """Each source's current answer per (trace, mode): its newest label by creation time (then
    label id), as `tracefail stats` orders them. Labels are appended, never updated, so a human
    who first accepts and then rejects a mode has rejected it."""
    return (
        "(SELECT trace_id, source, mode_id, arg_max(present, (created_at, label_id)) AS present "
        f"FROM labels WHERE {where} GROUP BY trace_id, source, mode_id)"
    )


def label_agg(latest: str) -> str:
    """Per trace of the `latest` labels (a `_latest` relation): present modes and sources."""
    return f"""
        SELECT trace_id,
               list(DISTINCT mode_id ORDER BY mode_id) FILTER (WHERE present) AS modes,
               list(DISTINCT source ORDER BY source) AS sources
        FROM {latest} GROUP BY trace_id
    """


def disagree(latest: str) -> str:
    """Traces where two sources of the `latest` labels give different answers for one mode."""
    return f"""
        SELECT DISTINCT trace_id FROM {latest} WHERE present IS NOT NULL
        GROUP BY trace_id, mode_id HAVING bool_or(present) AND NOT bool_and(present)
    """


def attribution_sources(where: str = "TRUE") -> str:
    return f"""
        SELECT trace_id, list(DISTINCT source ORDER BY source) AS sources
        FROM attributions WHERE {where} GROUP BY trace_id
    """


LABEL_AGG = label_agg(latest())
DISAGREE = disagree(latest())
MULTI_SOURCE = """
    SELECT trace_id FROM labels WHERE present IS NOT NULL
    GROUP BY trace_id HAVING count(DISTINCT source) > 1
"""


def _where(f: CorpusFilter, db: Database | None = None) -> tuple[str, list[Any]]:
    """The filter as SQL; given the connection, free-text words are answered with their term
    ids looked up first (constants DuckDB prunes row groups with; see `search.text_clause`)."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, sql in VALUE_COLUMNS.items():
        value = getattr(f, column)
        if value:
            clauses.append(f"{sql} = ?")
            params.append(value_key(column, value))
    if f.trace_ids:
        clauses.append(f"t.trace_id {IN_TEXTS}")
        params.append(texts(f.trace_ids))
    if f.mode:
        clauses.append(f"t.trace_id IN (SELECT trace_id FROM {latest('mode_id = ?')} WHERE present)")
        params.append(f.mode)
    if f.category_modes:
        clauses.append(f"t.trace_id IN (SELECT trace_id FROM {latest(f'mode_id {IN_TEXTS}')} WHERE present)")
        params.append(texts(f.category_modes))
    if f.source:  # a label or an attribution from the source (a name, or a kind before ':')
        clauses.append(
            "t.trace_id IN (SELECT trace_id FROM labels WHERE lower(source) = lower(?) "
            "OR starts_with(lower(source), lower(?)) UNION SELECT trace_id FROM attributions "
            "WHERE lower(source) = lower(?) OR starts_with(lower(source), lower(?)))"
        )
        params.extend([f.source, f.source.rstrip(":") + ":"] * 2)
    if f.agreement == "disagree":
        clauses.append(f"t.trace_id IN ({DISAGREE})")
    elif f.agreement == "agree":
        clauses.append(f"t.trace_id IN ({MULTI_SOURCE}) AND t.trace_id NOT IN ({DISAGREE})")
    for threshold in f.features:
        if threshold.op not in (">", ">=", "<", "<="):
            raise ValueError(f"unknown comparison {threshold.op!r}")
        clauses.append(
            f"t.trace_id IN (SELECT trace_id FROM features WHERE name = ? AND value {threshold.op} ?)"
        )
        params.extend([threshold.name, threshold.value])
    if f.text:
        clauses.append(f"t.{search.text_clause(f.text, db)}")
    return (" AND ".join(clauses) or "TRUE"), params


def selection_sql(f: CorpusFilter) -> tuple[str, list[Any]]:
    """`SELECT trace_id FROM traces t WHERE <filter>`: the current selection, for reuse."""
    where, params = _where(f)
    return f"SELECT t.trace_id FROM traces t WHERE {where}", params


def count_traces(db: Database, f: CorpusFilter) -> int:
    where, params = _where(f, db)
    return int(db.rows(f"SELECT count(*) FROM traces t WHERE {where}", params)[0][0])


_ON_PAGE = "trace_id IN (SELECT trace_id FROM page)"


def page_traces(db: Database, f: CorpusFilter, offset: int, limit: int) -> pl.DataFrame:
    """One page of the corpus listing: the trace columns, modes found and label sources.

    The page's ids are chosen first and only their labels are aggregated, so a page costs the
    same on 100 or 100,000 traces; sorting by a label column has to aggregate them all.
    """
    if f.sort not in SORT_COLUMNS:
        raise ValueError(f"cannot sort by {f.sort!r}; choose one of {', '.join(SORT_COLUMNS)}")
    where, params = _where(f, db)
    direction = "DESC" if f.descending else "ASC"
    order = f"{SORT_COLUMNS[f.sort]} {direction} NULLS LAST, t.trace_id {direction}"
    by_labels = f.sort in ("modes", "sources")
    label_join = f"LEFT JOIN ({LABEL_AGG}) lab USING (trace_id)" if by_labels else ""
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
        LEFT JOIN ({label_agg(latest(_ON_PAGE))}) lab USING (trace_id)
        LEFT JOIN ({attribution_sources(_ON_PAGE)}) att USING (trace_id)
        ORDER BY page.sort_key {direction} NULLS LAST, page.trace_id {direction}
        """,
        [*params, int(limit), int(offset)],
    )
