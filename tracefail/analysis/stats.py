"""Failure statistics from the store's counts: prevalence with Wilson intervals, category shares,
co-occurrence (lift, phi), failure position, agent blame, failure rates and agreement.

The store counts (DuckDB); this module turns counts into rates and intervals (polars), so every
number in the output is either a SQL count or a closed-form function of such counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import polars as pl

from tracefail.analysis.agreement import cohen_kappa
from tracefail.model import SourceKind
from tracefail.store import Database
from tracefail.store import stats as q
from tracefail.store.labels import stored_sources
from tracefail.store.selection import CorpusFilter
from tracefail.taxonomy import TaxonomyFile

Z95 = 1.959963984540054
SOURCE_KINDS = {
    **{kind.value: [f"{kind.value}:%"] for kind in SourceKind},
    "judge": [f"{SourceKind.LLM_JUDGE.value}:%"],  # short for llm-judge
    "all": [],
    "trusted": [],
}
DEFAULT_SOURCE = "trusted"
GROUPINGS = (*q.GROUP_COLUMNS, "agent")


class SourceError(ValueError):
    """A --source value that names no kind and no stored source; the message lists both."""


def source_patterns(source: str) -> list[str]:
    """LIKE patterns for a --source value: a kind (judge, human, ...), `all`/`trusted`, or a
    source name (`human:alice`, `llm-judge:%`) taken as it is."""
    return SOURCE_KINDS.get(source.lower(), [source])


def check_source(db: Database, source: str) -> list[str]:
    """The LIKE patterns of `source`, or SourceError when it is neither a kind nor the name
    (or a `%` pattern) of a source stored in this corpus: a typo must not count zero labels."""
    if source.lower() in SOURCE_KINDS:
        return SOURCE_KINDS[source.lower()]
    stored = stored_sources(db)
    if ("%" in source and ":" in source) or source in stored:
        return [source]
    close = [s for s in stored if s.split(":")[0] == source.split(":")[0]] or stored
    raise SourceError(
        f"--source {source!r}: not a source kind ({', '.join(SOURCE_KINDS)}) "
        f"nor a stored source ({', '.join(close[:8]) or 'none stored'})"
    )


def policy_text(source: str) -> str:
    """One line saying how a --source value turns labels into one verdict per (trace, mode)."""
    if source == "trusted":
        return (
            "trusted: per (trace, mode) the most trusted source with a verdict decides "
            "(" + " > ".join(kind.value for kind in SourceKind) + ")"
        )
    if source == "all":
        return "pooled: all sources, present if any source says present"
    return f"source {source}: only these labels, present if any of them says present"


def wilson(k: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials; (nan, nan) when n is 0."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if k == 0 else max(0.0, centre - half)
    return low, 1.0 if k == n else min(1.0, centre + half)


def with_wilson(frame: pl.DataFrame, k: str, n: str, prefix: str = "") -> pl.DataFrame:
    """`wilson` as columns: the rate k/n and its 95% interval (`{prefix}rate`, `{prefix}ci_low`,
    `{prefix}ci_high`; `prevalence`, `ci_low`, `ci_high` without a prefix)."""
    z2 = Z95 * Z95
    kk, nn = pl.col(k).cast(pl.Float64), pl.col(n).cast(pl.Float64)
    p = kk / nn
    denom = 1 + z2 / nn
    centre = (p + z2 / (2 * nn)) / denom
    half = Z95 * ((p * (1 - p) / nn + z2 / (4 * nn * nn)).sqrt()) / denom
    return frame.with_columns(
        p.alias(f"{prefix}rate" if prefix else "prevalence"),
        pl.when(kk == 0).then(0.0).otherwise((centre - half).clip(0.0, 1.0)).alias(f"{prefix}ci_low"),
        pl.when(kk == nn).then(1.0).otherwise((centre + half).clip(0.0, 1.0)).alias(f"{prefix}ci_high"),
    )


def rate_cell(row: Mapping[str, Any], k: str, n: str, prefix: str) -> str:
    """A rate as every table shows it (terminal, browser, report): `12.5% [4.3–31.0%] (3/24)`,
    the rate k/n, its Wilson 95% interval (`with_wilson`'s columns under `prefix`) and its k/n;
    `–` where n = 0, as no interval is then defined."""
    if not row[n]:
        return "–"
    low, high = 100 * row[f"{prefix}ci_low"], 100 * row[f"{prefix}ci_high"]
    return f"{row[f'{prefix}rate']:.1%} [{low:.1f}–{high:.1f}%] ({row[k]:,}/{row[n]:,})"


def figure_cell(value: object, n: int, fmt: str) -> str:
    """A figure beside the n it rests on: `1,234 (n=56)`; `–` where nothing was measured."""
    return "–" if value is None or not n else f"{format(value, fmt)} (n={n:,})"


OPS_CELLS = ("tokens in/out", "cost USD", "p50 ms", "p95 ms", "error rate [95% CI]", "tool failures [95% CI]")


def ops_cells(row: Mapping[str, Any]) -> dict[str, str]:
    """One row of the ops table as the terminal, the browser and `stats --section ops` show it
    (the OPS_CELLS, each figure beside its n, each rate with its interval and k/n)."""
    tokens = f"{row['tokens_in']:,}/{row['tokens_out']:,}"
    return dict(
        zip(
            OPS_CELLS,
            (
                figure_cell(tokens, row["tokens_n"], ""),
                figure_cell(row["cost_usd"], row["cost_n"], ",.2f"),
                figure_cell(row["latency_p50_ms"], row["latency_n"], ",.0f"),
                figure_cell(row["latency_p95_ms"], row["latency_n"], ",.0f"),
                rate_cell(row, "errors", "steps", "error_"),
                rate_cell(row, "tool_failures", "tool_results", "tool_failure_"),
            ),
            strict=True,
        )
    )


def modes_frame(loaded: TaxonomyFile) -> pl.DataFrame:
    tax = loaded.taxonomy
    return pl.DataFrame(
        {
            "mode_id": [m.id for m in tax.modes],
            "name": [m.name for m in tax.modes],
            "category": [m.category for m in tax.modes],
            "stage": [m.stage or "" for m in tax.modes],
        }
    )


def code_map(db: Database, loaded: TaxonomyFile) -> pl.DataFrame:
    """Stored (version, code, mode name) -> this taxonomy's mode id, via the file's legacy maps."""
    codes = q.label_codes(db, loaded.taxonomy.id)
    rows = []
    for version, code, name in codes.iter_rows():
        mode_id, _ = loaded.remap(version, code, name or None)
        if mode_id is not None:
            rows.append({"taxonomy_version": version, "code": code, "mode_name": name, "mode_id": mode_id})
    schema = {"taxonomy_version": pl.String, "code": pl.String, "mode_name": pl.String, "mode_id": pl.String}
    return pl.DataFrame(rows, schema=schema)


def select(db: Database, loaded: TaxonomyFile, source: str, within: CorpusFilter | None = None) -> None:
    """Make the store's selection tables hold the labels every later call counts (of the traces
    `within` selects, all when None)."""
    q.select_labels(
        db,
        loaded.taxonomy.id,
        code_map(db, loaded),
        modes_frame(loaded),
        check_source(db, source),
        within,
        trusted=source.lower() == "trusted",
    )


def kappa_interval(n11: int, n10: int, n01: int, n00: int) -> tuple[float, float, float]:
    """Kappa of a 2x2 table with a 95% interval from its large-sample standard error
    sqrt(po (1 - po) / (n (1 - pe)^2)) (Cohen 1960), clipped to kappa's range [-1, 1]; nan when
    undefined."""
    n = n11 + n10 + n01 + n00
    if not n:
        return math.nan, math.nan, math.nan
    po = (n11 + n00) / n
    pe = ((n11 + n10) * (n11 + n01) + (n01 + n00) * (n10 + n00)) / (n * n)
    if pe >= 1:
        return math.nan, math.nan, math.nan  # one class on both sides: kappa says nothing
    kappa = (po - pe) / (1 - pe)
    se = math.sqrt(po * (1 - po) / (n * (1 - pe) ** 2))
    return kappa, max(-1.0, kappa - Z95 * se), min(1.0, kappa + Z95 * se)


def judge_validation(db: Database, loaded: TaxonomyFile) -> dict[str, str]:
    """judge source -> "validated: kappa ..." or "not validated: why", from its pooled agreement
    with the reference verdicts (human, else dataset) on shared (trace, mode) pairs."""
    select(db, loaded, "all")
    out = {}
    for source, n11, n10, n01, n00 in q.judge_reference_counts(db).iter_rows():
        kappa, low, high = kappa_interval(n11, n10, n01, n00)
        n = n11 + n10 + n01 + n00
        if not n:
            out[source] = "not validated: no reference labels on its traces"
        elif math.isnan(kappa) or low <= 0:
            shown = "undefined (one class)" if math.isnan(kappa) else f"{kappa:.2f} [{low:.2f}, {high:.2f}]"
            out[source] = f"not validated: kappa {shown} vs references, n={n}"
        else:
            out[source] = f"validated: kappa {kappa:.2f} [{low:.2f}, {high:.2f}] vs references, n={n}"
    return out


def _described(frame: pl.DataFrame, loaded: TaxonomyFile) -> pl.DataFrame:
    return frame.join(modes_frame(loaded), on="mode_id", how="left")


def _share(frame: pl.DataFrame) -> pl.DataFrame:
    total = pl.col("affected").sum().over("group")
    return frame.with_columns(
        pl.when(total > 0).then(pl.col("affected") / total).otherwise(None).alias("share")
    )


def mode_prevalence(db: Database, loaded: TaxonomyFile, by: str | None) -> pl.DataFrame:
    """Per group and mode: traces labelled and affected, prevalence with a Wilson 95% interval,
    and the mode's share of all present (trace, mode) verdicts in the group."""
    frame = _share(with_wilson(q.mode_counts(db, by), "affected", "labelled"))
    return _described(frame, loaded).select(
        "group",
        "mode_id",
        "name",
        "category",
        "stage",
        "labelled",
        "affected",
        "prevalence",
        "ci_low",
        "ci_high",
        "share",
    )


def category_prevalence(db: Database, loaded: TaxonomyFile, by: str | None) -> pl.DataFrame:
    frame = _share(with_wilson(q.category_counts(db, by), "affected", "labelled"))
    names = pl.DataFrame(
        {"category": list(loaded.taxonomy.categories), "name": list(loaded.taxonomy.categories.values())}
    )
    return frame.join(names, on="category", how="left").select(
        "group", "category", "name", "labelled", "affected", "prevalence", "ci_low", "ci_high", "share"
    )


def cooccurrence(db: Database) -> pl.DataFrame:
    """Mode pairs over traces labelled for both: counts, lift = P(a,b) / (P(a) P(b)), and the
    phi coefficient of the 2x2 table (null when a margin is empty)."""
    f = q.pair_counts(db)
    n, a, b, ab = (pl.col(c).cast(pl.Float64) for c in ("n", "n_a", "n_b", "n_ab"))
    denom = a * b * (n - a) * (n - b)
    return f.with_columns(
        pl.when(a * b > 0).then(ab * n / (a * b)).otherwise(None).alias("lift"),
        pl.when(denom > 0).then((n * ab - a * b) / denom.sqrt()).otherwise(None).alias("phi"),
    )


def failure_position(db: Database, loaded: TaxonomyFile, bins: int = 10) -> dict[str, pl.DataFrame]:
    """Evidence steps of present labels along the trace: a histogram per mode and per stage
    (bin i covers relative positions [i/bins, (i+1)/bins)), and the mean position per mode."""
    f = _described(q.evidence_positions(db, bins), loaded)
    per_mode = (
        f.group_by("mode_id", "name", "stage")
        .agg(pl.col("steps").sum(), pl.col("rel_sum").sum())
        .with_columns((pl.col("rel_sum") / pl.col("steps")).alias("mean_position"))
        .drop("rel_sum")
        .sort("mode_id")
    )
    by_stage = f.group_by("stage", "bin").agg(pl.col("steps").sum()).sort("stage", "bin")
    return {"position": per_mode, "position_bins": f.drop("rel_sum", "name"), "position_stages": by_stage}


def blame(db: Database, source: str, by: str | None) -> dict[str, pl.DataFrame]:
    """Root-cause attributions per agent (with the agent's share of blamed traces in its group)
    and the agents present labels name, per mode."""
    attributed = q.attribution_blame(db, check_source(db, source), by)
    attributed = attributed.with_columns(
        (pl.col("traces") / pl.col("traces").sum().over("group")).alias("share")
    )
    return {"blame": attributed, "blame_modes": q.label_blame(db)}


def failure_rates(db: Database) -> pl.DataFrame:
    """Share of labelled traces with at least one mode present, per framework and per llm."""
    parts = [
        with_wilson(q.failure_rates(db, column), "failing", "labelled", prefix="failure_").with_columns(
            pl.lit(column).alias("column")
        )
        for column in ("framework", "llm")
    ]
    return pl.concat(parts).select(
        "column",
        "group",
        "labelled",
        "failing",
        "failure_rate",
        "failure_ci_low",
        "failure_ci_high",
        "outcome_failure",
    )


@cache
def _kappa(n11: int, n10: int, n01: int, n00: int) -> float:
    """Kappa of a 2x2 table through the shared cohen_kappa (cached: many tables repeat, e.g. a
    source and its one-source family)."""
    a = [True] * (n11 + n10) + [False] * (n01 + n00)
    b = [True] * n11 + [False] * n10 + [True] * n01 + [False] * n00
    return cohen_kappa(a, b)


def agreement(db: Database) -> pl.DataFrame:
    """Cohen's kappa per mode between label sources on the traces both labelled, for each pair
    of sources and each pair of source kinds (human vs llm-judge, ...)."""
    parts = []
    for level in ("family", "source"):
        f = q.agreement_counts(db, level)
        if level == "family":
            f = f.filter(pl.col("rater_a") != pl.col("rater_b"))
        parts.append(f.with_columns(pl.lit(level).alias("level")))
    f = pl.concat(parts)
    kappas = [_kappa(*row) for row in f.select("n11", "n10", "n01", "n00").iter_rows()]
    n = pl.col("n11") + pl.col("n10") + pl.col("n01") + pl.col("n00")
    return f.with_columns(
        n.alias("n"),
        (
            (pl.col("n11") + pl.col("n00")) / (pl.col("n11") + pl.col("n10") + pl.col("n01") + pl.col("n00"))
        ).alias("observed_agreement"),
        pl.Series("kappa", kappas, dtype=pl.Float64),
        # both raters gave every item the same class: kappa is 1 by convention and says nothing
        pl.when((pl.col("n11") == n) | (pl.col("n00") == n))
        .then(pl.lit("one class only"))
        .when(n < 10)
        .then(pl.lit("n < 10"))
        .otherwise(pl.lit(""))
        .alias("note"),
    ).select(
        "level",
        "rater_a",
        "rater_b",
        "mode_id",
        "n",
        "n11",
        "n10",
        "n01",
        "n00",
        "observed_agreement",
        "kappa",
        "note",
    )


@dataclass
class Stats:
    """Every section of `tracefail stats` as a table, in output order."""

    taxonomy: str
    source: str
    by: str | None
    sections: dict[str, pl.DataFrame]
    policy: str = ""
    validation: dict[str, str] = field(default_factory=dict)  # judge source -> (not) validated

    @property
    def sources(self) -> list[str]:
        return self.sections["sources"]["source"].to_list()

    def as_dict(self) -> dict:
        return {
            "taxonomy": self.taxonomy,
            "source": self.source,
            "policy": self.policy,
            "sources": self.sources,
            "by": self.by,
            **{name: _records(frame) for name, frame in self.sections.items()},
        }


def _records(frame: pl.DataFrame) -> list[dict]:
    """Rows as dicts with NaN turned into null, so the JSON is valid and comparable."""
    out = []
    for row in frame.iter_rows(named=True):
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    return out


def source_table(db: Database, validation: dict[str, str]) -> pl.DataFrame:
    """Per selected source what it contributed, with the judge sources' validation."""
    used = q.source_usage(db)
    return used.with_columns(
        pl.col("source").replace_strict(validation, default="", return_dtype=pl.String).alias("validation")
    )


def compute(db: Database, loaded: TaxonomyFile, source: str = DEFAULT_SOURCE, by: str | None = None) -> Stats:
    validation = judge_validation(db, loaded)
    select(db, loaded, source)
    sections: dict[str, pl.DataFrame] = {
        "sources": source_table(db, validation),
        "modes": mode_prevalence(db, loaded, by),
        "categories": category_prevalence(db, loaded, by),
        "cooccurrence": cooccurrence(db),
        **failure_position(db, loaded),
        **blame(db, source, by),
        "failure_rates": failure_rates(db),
        "agreement": agreement(db),
    }
    tax = loaded.taxonomy
    return Stats(
        taxonomy=f"{tax.id}@{tax.version}",
        source=source,
        by=by,
        sections=sections,
        policy=policy_text(source),
        validation=validation,
    )
