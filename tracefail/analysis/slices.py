"""Error-slice discovery: groups of traces, described by metadata and binned features, whose rate
of a failure mode is far above the corpus rate.

Slices are single conditions (`llm=X`, `n_steps in (7, 12]`) and conjunctions of two. A slice is
reported when it has enough traces, its lift over the corpus rate is large enough, and its Wilson
interval lies above the corpus rate; `significant` also requires that with a Bonferroni-corrected
interval over every slice tested, so a long list of lucky small groups does not pass.
"""

from __future__ import annotations

import math
from itertools import pairwise
from statistics import NormalDist

import numpy as np
import polars as pl

from tracefail.analysis.stats import Z95, wilson

CATEGORICAL = ("framework", "llm", "benchmark", "trace_source")
NUMERIC = ("n_steps", "n_agents")


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def binned(values: pl.Series, name: str, bins: int = 4) -> pl.Series:
    """Quantile bins of a numeric column as readable conditions: `name <= a`, `a < name <= b`, ..."""
    present = values.drop_nulls().to_numpy().astype(float)
    if not len(present):
        return pl.Series(name, [None] * len(values), dtype=pl.String)
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
    labels = [f"{name} <= {_fmt(edges[0])}"] if len(edges) else [f"{name} = any"]
    labels += [f"{_fmt(a)} < {name} <= {_fmt(b)}" for a, b in pairwise(edges)]
    if len(edges):
        labels.append(f"{name} > {_fmt(edges[-1])}")
    out = []
    for v in values.to_list():
        out.append(
            None
            if v is None or (isinstance(v, float) and math.isnan(v))
            else labels[int(np.searchsorted(edges, v, side="left"))]
        )
    return pl.Series(name, out, dtype=pl.String)


def slice_table(attributes: pl.DataFrame, numeric: list[str]) -> pl.DataFrame:
    """trace_id plus one string column per attribute, each value a condition like `llm=X`."""
    columns = [pl.col("trace_id")]
    for name in attributes.columns:
        if name == "trace_id":
            continue
        if name in numeric:
            columns.append(pl.lit(binned(attributes[name], name)).alias(name))
        else:
            columns.append(
                (pl.lit(f"{name}=") + pl.col(name).cast(pl.String).fill_null("(none)")).alias(name)
            )
    return attributes.select(columns)


def _members(conditions: pl.DataFrame) -> pl.DataFrame:
    """trace_id, slice, depth: every condition a trace meets and every pair of them (in column
    order, `a & b`), built by one self-join of the long table instead of one query per pair of
    columns (which grew with the square of the number of LM features)."""
    attrs = [c for c in conditions.columns if c != "trace_id"]
    position = {a: i for i, a in enumerate(attrs)}
    long = (
        conditions.unpivot(index="trace_id", on=attrs, variable_name="attr", value_name="slice")
        .drop_nulls("slice")
        .with_columns(pl.col("attr").replace_strict(position, return_dtype=pl.Int32).alias("pos"))
    )
    pairs = (
        long.join(long, on="trace_id", suffix="_b")
        .filter(pl.col("pos") < pl.col("pos_b"))
        .select("trace_id", pl.concat_str(["slice", "slice_b"], separator=" & ").alias("slice"))
    )
    return pl.concat(
        [
            long.select("trace_id", "slice", pl.lit(1).alias("depth")),
            pairs.with_columns(pl.lit(2).alias("depth")),
        ]
    )


def find_slices(
    verdicts: pl.DataFrame,
    conditions: pl.DataFrame,
    *,
    min_size: int = 10,
    min_lift: float = 1.5,
    alpha: float = 0.05,
) -> pl.DataFrame:
    """verdicts: trace_id, mode_id, present; conditions: trace_id + condition columns.

    Returns one row per reported (mode, slice) of one condition or two, highest z first."""
    wide = verdicts.with_columns(pl.col("present").cast(pl.Int8)).pivot(
        on="mode_id", index="trace_id", values="present"
    )
    modes = [c for c in wide.columns if c != "trace_id"]
    frame = conditions.join(wide, on="trace_id", how="inner")
    corpus = {m: (int(frame[m].sum()), frame[m].count()) for m in modes}  # Int8 column: an int sum
    if not modes or conditions.width < 2:
        return _empty()
    counts = (
        _members(conditions)
        .join(wide, on="trace_id")
        .group_by("slice", "depth")
        .agg(
            [pl.col(m).count().alias(f"n|{m}") for m in modes]
            + [pl.col(m).sum().alias(f"k|{m}") for m in modes]
        )
    )
    parts = [
        counts.select(
            "slice",
            pl.lit(m).alias("mode_id"),
            pl.col("depth").cast(pl.Int32),
            pl.col(f"n|{m}").cast(pl.Int64).alias("size"),
            pl.col(f"k|{m}").cast(pl.Int64).alias("affected"),
        )
        for m in modes
    ]
    found = pl.concat(parts).filter(pl.col("size") >= min_size)
    tested = max(1, found.height)
    z_bonf = NormalDist().inv_cdf(1 - alpha / (2 * tested))
    rows = []
    for r in found.iter_rows(named=True):
        k0, n0 = corpus[r["mode_id"]]
        p0 = k0 / n0 if n0 else math.nan
        rate = r["affected"] / r["size"]
        if not p0 or rate < min_lift * p0:
            continue
        low, high = wilson(r["affected"], r["size"], Z95)
        if low <= p0:
            continue
        strict_low, _ = wilson(r["affected"], r["size"], z_bonf)
        z = (rate - p0) / math.sqrt(p0 * (1 - p0) / r["size"]) if 0 < p0 < 1 else math.inf
        rows.append(
            {
                **r,
                "rate": rate,
                "ci_low": low,
                "ci_high": high,
                "corpus_rate": p0,
                "lift": rate / p0,
                "z": z,
                "significant": strict_low > p0,
            }
        )
    if not rows:
        return _empty()
    out = pl.DataFrame(rows)
    # a two-condition slice is only news when it beats both of its one-condition parents by 10%
    singles = {
        (m, s): k / n
        for m, s, n, k in found.filter(pl.col("depth") == 1)
        .select("mode_id", "slice", "size", "affected")
        .iter_rows()
    }
    keep = [
        r["depth"] == 1
        or all(r["rate"] > 1.1 * singles[(r["mode_id"], part)] for part in r["slice"].split(" & "))
        for r in rows
    ]
    return (
        out.filter(pl.Series(keep))
        .sort(["z", "size", "mode_id", "slice"], descending=[True, True, False, False])
        .select(_COLUMNS)
    )


_COLUMNS = [
    "mode_id",
    "slice",
    "depth",
    "size",
    "affected",
    "rate",
    "ci_low",
    "ci_high",
    "corpus_rate",
    "lift",
    "z",
    "significant",
]


def _empty() -> pl.DataFrame:
    schema = {
        "mode_id": pl.String,
        "slice": pl.String,
        "depth": pl.Int64,
        "size": pl.Int64,
        "affected": pl.Int64,
        "rate": pl.Float64,
        "ci_low": pl.Float64,
        "ci_high": pl.Float64,
        "corpus_rate": pl.Float64,
        "lift": pl.Float64,
        "z": pl.Float64,
        "significant": pl.Boolean,
    }
    return pl.DataFrame(schema=schema)
