"""Time `stats`, `slices`, `audit` and `report` on a large corpus against a bare DuckDB
COUNT(*) GROUP BY over the same labels (the floor any statistic over them has to pay).

    .venv/bin/python benchmarks/make_corpus.py --traces 100000 --db /tmp/big.duckdb
    .venv/bin/python benchmarks/stats.py --db /tmp/big.duckdb

Each step runs `--repeat` times and the best time is printed with its ratio to the baseline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from tracefail.services import stats as service
from tracefail.store import Database
from tracefail.store.traces import counts


def label_counts_by_source(db: Database) -> pl.DataFrame:
    """The bare baseline: COUNT(*) of present labels per source and mode."""
    return db.frame("SELECT source, mode_id, count(*) AS n FROM labels WHERE present GROUP BY ALL")


def best(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="a corpus made by benchmarks/make_corpus.py")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not args.db.exists():
        print(f"error: {args.db} does not exist; run benchmarks/make_corpus.py first", file=sys.stderr)
        return 2
    with Database(args.db, read_only=True) as db, tempfile.TemporaryDirectory() as tmp:
        size = counts(db)
        traces, steps, labels = size["traces"], size["steps"], size["labels"]
        print(
            f"corpus {args.db}: {traces:,} traces, {steps:,} steps, {labels:,} labels (best of {args.repeat})"
        )
        baseline = best(lambda: label_counts_by_source(db), args.repeat)
        rows = [("baseline: COUNT(*) GROUP BY source, mode over labels", baseline)]
        rows.append(("stats (all sections)", best(lambda: service.stats(db), args.repeat)))
        rows.append(("stats --by framework", best(lambda: service.stats(db, by="framework"), args.repeat)))
        rows.append(("slices", best(lambda: service.slices(db), args.repeat)))
        rows.append(
            (
                "audit --mode 1.3 --threshold 0.2",
                best(lambda: service.audit(db, mode="1.3", threshold=0.2), args.repeat),
            )
        )
        rows.append(("report (html)", best(lambda: service.report(db, Path(tmp) / "r.html"), args.repeat)))
    width = max(len(name) for name, _ in rows)
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:8.3f} s  {seconds / baseline:8.1f}x baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
