"""Time the ops dashboard (`stats --section ops`) on a large corpus against a bare DuckDB
COUNT(*) GROUP BY over the same steps (the floor of any per-group figure over them).

    .venv/bin/python benchmarks/make_corpus.py --traces 100000 --db /tmp/big.duckdb
    .venv/bin/python benchmarks/ops.py --db /tmp/big.duckdb
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from tracefail.services.ops import ops
from tracefail.store import Database


def best(call, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not args.db.exists():
        print(f"error: {args.db} does not exist; run benchmarks/make_corpus.py first", file=sys.stderr)
        return 2
    with Database(args.db, read_only=True) as db:
        traces, steps = db.rows("SELECT (SELECT count(*) FROM traces), (SELECT count(*) FROM steps)")[0]
        print(f"corpus {args.db}: {traces:,} traces, {steps:,} steps (best of {args.repeat})")
        print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        baseline = best(lambda: db.rows("SELECT agent, count(*) FROM steps GROUP BY agent"), args.repeat)
        dashboard = best(lambda: ops(db), args.repeat)
        rows = ops(db).table.height
        print(f"baseline COUNT(*) GROUP BY agent over steps: {baseline:.3f} s")
        ratio = dashboard / baseline
        print(f"ops (4 dimensions, {rows} rows): {dashboard:.3f} s = {ratio:.1f}x the baseline")
        print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
