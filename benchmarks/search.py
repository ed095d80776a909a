"""Time `tracefail search` (BM25 over the fts index) against a DuckDB ILIKE scan of every step
for the same words, on a large corpus.

    .venv/bin/python benchmarks/make_corpus.py --traces 100000 --db /tmp/big.duckdb
    .venv/bin/python benchmarks/search.py --db /tmp/big.duckdb

The index is built first (its time printed on its own line). Both sides return the number of
matching steps and traces; the search also ranks and returns the best 20 with snippets. Each
query runs `--repeat` times; the best time is printed with the ratio scan / search.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from collections.abc import Callable

from tracefail.services import search as service
from tracefail.store import Database
from tracefail.store import search as store

QUERIES = ["umbrella", "verification", "error", "python code", "pandas dataframe", '"the answer"']


def best(call: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        value = call()
        times.append(time.perf_counter() - started)
    return min(times), value


def ilike_scan(db: Database, query: str) -> tuple[int, int]:
    """Steps containing every word (a quoted phrase as one substring), case-insensitively."""
    words = [m.group(1) or m.group(2) for m in re.finditer(r'"([^"]+)"|(\S+)', query)]
    where = " AND ".join("content ILIKE ?" for _ in words)
    row = db.rows(
        f"SELECT count(*), count(DISTINCT trace_id) FROM steps WHERE {where}", [f"%{w}%" for w in words]
    )
    return int(row[0][0]), int(row[0][1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with Database(args.db) as db:
        n_steps = db.rows("SELECT count(*) FROM steps")[0][0]
        print(f"corpus: {n_steps} steps; load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
        built = store.build_index(db)
        print(
            f"index build: {built.build_s:.1f} s for {built.indexed_steps} steps (once; again after ingest)"
        )
        ratios = []
        for query in QUERIES:
            scan_s, (scan_steps, _) = best(lambda q=query: ilike_scan(db, q), args.repeat)
            search_s, result = best(lambda q=query: service.search(db, q, limit=20), args.repeat)
            filter_s, _ = best(lambda q=query: service.matching_traces(db, q), args.repeat)
            ratios.append(scan_s / search_s)
            print(
                f"{query!r:24} search {search_s * 1000:7.0f} ms"
                f" ({result.n_steps} steps, {result.n_traces} traces)"
                f" | trace filter {filter_s * 1000:6.0f} ms"
                f" | ILIKE scan {scan_s * 1000:7.0f} ms ({scan_steps} steps, substring)"
                f" | scan/search {scan_s / search_s:5.1f}x"
            )
        print(f"median scan/search ratio over {len(QUERIES)} queries: {statistics.median(ratios):.1f}x")


if __name__ == "__main__":
    main()
