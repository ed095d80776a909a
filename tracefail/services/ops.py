"""The operations dashboard: tokens, cost, latency p50/p95, error and tool-failure rates per agent,
model, framework and day, each figure with the n it rests on (and each rate with its Wilson 95%
interval, as `tracefail stats` gives prevalence). `tracefail stats --section ops` and
the browser's ops screen both show this result.

Cost comes from a price table (USD per 1M input and output tokens, matched by the longest model-name
prefix). The built-in table is a few list prices as of its date; `--prices FILE` (JSON
`{"model-prefix": [in, out]}`) replaces it. Steps whose model has no price count as unpriced, never
as free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import polars as pl

from tracefail.analysis.stats import OPS_CELLS, ops_cells, with_wilson
from tracefail.store import ops as ops_store
from tracefail.store.db import Database

PRICES_AS_OF = "2025-06"
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
}
DIMENSIONS = tuple(ops_store.DIMENSIONS)
OVER_DAYS = ops_store.OVER_DAYS


class PriceTableError(ValueError):
    """A --prices file that is not a JSON object of model prefix -> [input, output] USD per 1M."""


def load_prices(path: Path | None) -> tuple[dict[str, tuple[float, float]], str]:
    """The price table and where it came from."""
    if path is None:
        return dict(DEFAULT_PRICES), f"built-in list prices as of {PRICES_AS_OF}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise PriceTableError(f"{path}: {error}") from error
    if not isinstance(data, dict):
        raise PriceTableError(f"{path}: expected an object of model prefix -> [input, output]")
    table = {}
    for model, pair in data.items():
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, int | float) for p in pair)):
            raise PriceTableError(f"{path}: {model!r}: expected [input, output] USD per 1M tokens")
        table[str(model)] = (float(pair[0]), float(pair[1]))
    return table, str(path)


def price_of(model: str, prices: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
    """Longest prefix of the model name (case-insensitive, a provider prefix like `openai/` ignored)."""
    name = model.lower().rsplit("/", 1)[-1]
    matches = [key for key in prices if name.startswith(key.lower())]
    return prices[max(matches, key=len)] if matches else None


@dataclass(frozen=True)
class Ops:
    table: pl.DataFrame  # one row per (dimension, value)
    prices_source: str
    by_day: pl.DataFrame  # one row per (agent or model, value, day): steps, errors, tokens

    def as_dict(self) -> dict[str, object]:
        days = self.by_day.with_columns(pl.col("day").cast(pl.String))
        return {"prices": self.prices_source, "ops": self.table.to_dicts(), "by_day": days.to_dicts()}

    def readable(self) -> pl.DataFrame:
        """The table as text cells for a terminal: each figure beside its n, each rate with its
        Wilson 95% interval and its k/n (the CSV and JSON keep the numbers in their own columns)."""
        keys = self.table.select("dimension", "value", "traces", "steps")
        rows = [ops_cells(r) for r in self.table.iter_rows(named=True)]
        shown = pl.DataFrame(rows, schema=dict.fromkeys(OPS_CELLS, pl.String))
        return pl.concat([keys, shown], how="horizontal")

    def days(self) -> list[str]:
        """Every day from the first step to the last (days without steps included)."""
        return list(self._days)

    def over_days(self, dimension: str, value: str, column: str = "steps") -> list[int]:
        """`column` of one agent or model on each of `days()`, 0 on a day without its steps."""
        shown = [0] * len(self._days)
        for offset, row in self._by_value.get((dimension, value), []):
            shown[offset] = row[column]
        return shown

    # Computed once: a screen asks for one series per row, and the days can span years (a corpus
    # of 73 days over 2017-2026 has 3,600), too many to rebuild and look up on every call.
    @cached_property
    def _days(self) -> tuple[str, ...]:
        found: list[date] = self.by_day["day"].to_list()
        if not found:
            return ()
        first, last = min(found), max(found)
        return tuple(str(first + timedelta(days=i)) for i in range((last - first).days + 1))

    @cached_property
    def _by_value(self) -> dict[tuple[str, str], list[tuple[int, dict[str, Any]]]]:
        """The per-day rows of each (dimension, value), each with its position in `days()`."""
        if self.by_day.is_empty():
            return {}
        first = self.by_day["day"].min()
        rows = self.by_day.with_columns(offset=(pl.col("day") - first).dt.total_days())
        grouped: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
        for row in rows.iter_rows(named=True):
            grouped.setdefault((row["dimension"], row["value"]), []).append((row["offset"], row))
        return grouped


def ops(db: Database, prices: Path | None = None) -> Ops:
    table, source = load_prices(prices)
    found = {m: price_of(m, table) for m in ops_store.models(db)}
    frame = ops_store.ops_table(db, {m: p for m, p in found.items() if p is not None})
    frame = frame.with_columns(
        pl.col("latency_ms").list.get(0).alias("latency_p50_ms"),
        pl.col("latency_ms").list.get(1).alias("latency_p95_ms"),
    )
    frame = with_wilson(frame, "errors", "steps", prefix="error_")
    frame = with_wilson(frame, "tool_failures", "tool_results", prefix="tool_failure_")
    rates = [c for c in frame.columns if c.startswith("tool_failure_")]
    # no tool result: no rate and no interval (Wilson of 0/0 is undefined, not 0-100%)
    frame = frame.with_columns(pl.when(pl.col("tool_results") > 0).then(pl.col(c)).alias(c) for c in rates)
    order = pl.col("dimension").replace_strict({d: i for i, d in enumerate(DIMENSIONS)})
    return Ops(frame.sort(order, "value").select(COLUMNS), source, ops_store.ops_by_day(db))


COLUMNS = [
    "dimension",
    "value",
    "traces",
    "steps",
    "tokens_in",
    "tokens_out",
    "tokens_n",
    "cost_usd",
    "cost_n",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_n",
    "errors",
    "error_rate",
    "error_ci_low",
    "error_ci_high",
    "tool_results",
    "tool_failures",
    "tool_failure_rate",
    "tool_failure_ci_low",
    "tool_failure_ci_high",
]
