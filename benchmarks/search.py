"""Time `tracefail search` (BM25 over tracefail's postings index) against a DuckDB ILIKE scan of
every step for the same words, on a large corpus; then what the index costs to keep.

    .venv/bin/python benchmarks/make_corpus.py --traces 100000 --db /tmp/big.duckdb
    .venv/bin/python benchmarks/search.py --db /tmp/big.duckdb [--rebuild]
    .venv/bin/python benchmarks/search.py --ingest /tmp/tracefail-bench/mast_synth_50mb_v3_diverse.json

Both sides return the number of matching steps and traces; the search also ranks and returns
the best 20 with snippets. Each query runs `--repeat` times; the best time is printed with the
ratio scan / search. Then 1,000 new traces (text copied from stored steps) are added with
`add_traces`, which indexes them in its transaction: its time, and the time of indexing those
traces again alone. `--rebuild` also drops the whole index and builds it again from the steps
(what a corpus from before the index costs once). The corpus file is changed: use a copy.

`--ingest FILE` (a JSON array, as benchmarks/ingest.py synthesizes) instead times DuckDB's
`read_json` of the file and a `--workers 0` ingest of it into fresh files, with the seconds spent
in `index_written` (the index's share of the ingest) and both as ratios of read_json's time.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracefail.model import Outcome, Step, Trace
from tracefail.services import search as service
from tracefail.store import Database
from tracefail.store import search as store
from tracefail.store.traces import add_traces

QUERIES = [
    "umbrella",
    "verification",
    "error",
    "python code",
    "pandas dataframe",
    '"the answer"',
    "reasons about the task",  # the words of the TUI benchmark's free-text filter
    '"reasons about the task"',  # ... as its phrase (benchmarks/tui.py)
]


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
    parser.add_argument("--db")
    parser.add_argument("--ingest", type=Path, help="time the index's share of ingesting this JSON array")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true", help="also time a build of the whole index")
    args = parser.parse_args()
    if args.ingest:
        index_share(args.ingest)
        return
    if not args.db:
        parser.error("--db or --ingest is required")
    with Database(args.db) as db:
        n_steps = db.rows("SELECT count(*) FROM steps")[0][0]
        print(f"corpus: {n_steps} steps; load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
        state, caught_up = store.ensure_index(db)
        if caught_up is not None:
            print(f"index caught up in {caught_up:.1f} s ({state.indexed_steps} steps)")
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
        _upkeep(db, args.rebuild)
        print(f"load average after: {os.getloadavg()[0]:.2f}")


def _upkeep(db: Database, rebuild: bool) -> None:
    """Cost of adding 1,000 traces (~10 steps each, text copied from the corpus) with their
    index rows, of indexing them again alone, and (with `rebuild`) of indexing every step."""
    texts = [r[0] or "" for r in db.rows("SELECT content FROM steps USING SAMPLE 10000 ROWS (reservoir, 1)")]
    traces = [
        Trace(
            trace_id=f"bench-search:{i}",
            source="bench-search",
            outcome=Outcome.FAILURE,
            steps=[
                Step(step_idx=k, agent=f"a{k % 3}", content=texts[(i * 10 + k) % len(texts)])
                for k in range(10)
            ],
        )
        for i in range(1000)
    ]
    started = time.perf_counter()
    add_traces(db, traces, run_id=None)
    added = time.perf_counter() - started
    started = time.perf_counter()
    with db.transaction():
        store.index_traces(db, [t.trace_id for t in traces])
    again = time.perf_counter() - started
    print(
        f"1,000 new traces (10,000 steps): add_traces {added:.2f} s with their index rows; "
        f"indexing them again alone {again:.2f} s"
    )
    if rebuild:
        db.execute("DELETE FROM search_postings")
        db.execute("DELETE FROM search_docs")
        built = store.catch_up(db)
        print(f"whole index from scratch: {built:.1f} s for {store.index_state(db).indexed_steps} steps")


def index_share(path: Path) -> None:
    """read_json of `path`, then a one-process ingest of it with `index_written` timed inside
    (wall and CPU seconds of this process, all threads: set POLARS_MAX_THREADS=1 for one)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from rawscan import read_json_rows  # benchmarks/rawscan.py, beside this script

    from tracefail.services.ingest import ingest
    from tracefail.store import traces as writer

    spent = [0.0, 0.0]
    index_written = writer.index_written

    def timed(*args: Any, **kwargs: Any) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        index_written(*args, **kwargs)
        spent[0] += time.perf_counter() - wall
        spent[1] += time.process_time() - cpu

    writer.index_written = timed
    with tempfile.TemporaryDirectory() as tmp:
        load = os.getloadavg()[0]
        with Database(Path(tmp) / "rawscan.duckdb") as db:
            wall, cpu = time.perf_counter(), time.process_time()
            read_json_rows(db, [path], array=True)
            raw, raw_cpu = time.perf_counter() - wall, time.process_time() - cpu
        with Database(Path(tmp) / "ingest.duckdb") as db:
            wall, cpu = time.perf_counter(), time.process_time()
            report = ingest(db, [path], workers=0)
            db.execute("CHECKPOINT")
            whole, whole_cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"{path.name}: {report.steps} steps; load average {load:.2f} -> {os.getloadavg()[0]:.2f}\n"
        f"wall: read_json {raw:.2f} s | ingest --workers 0 {whole:.2f} s ({whole / raw:.2f}x)"
        f" | of it index_written {spent[0]:.2f} s ({spent[0] / raw:.2f}x read_json,"
        f" {spent[0] / whole:.0%} of the ingest)\n"
        f"CPU:  read_json {raw_cpu:.2f} s | ingest --workers 0 {whole_cpu:.2f} s ({whole_cpu / raw_cpu:.2f}x)"
        f" | of it index_written {spent[1]:.2f} s ({spent[1] / raw_cpu:.2f}x read_json,"
        f" {spent[1] / whole_cpu:.0%} of the ingest)"
    )


if __name__ == "__main__":
    main()
