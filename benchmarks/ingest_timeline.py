"""Where one ingest's time goes, by thread: the store's steps (inserts, the search index's parts)
and the fidelity measure beside the reading, each timed where it runs.

    .venv/bin/python benchmarks/ingest_timeline.py [--mast-mb 50] [--workers 0] [--mast-text diverse]
        [--workdir DIR]

Ingests the synthesized MAST-style array (`ingest.py`'s, made if missing) into a fresh corpus
with the named functions wrapped: per function and thread, the calls, the wall seconds inside
them, the calling thread's CPU seconds (polars works on its own threads: their CPU is not in
it) and the span from the first call's start to the last one's end. With reader processes, what
they run is not seen here (their CPU is in `ingest.py`'s figures). Wall seconds grow with the
load, which is printed.
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corpus_text import synthesize_mast  # benchmarks/corpus_text.py, beside this script

from tracefail.ingest import fidelity
from tracefail.services import ingest as ingest_service
from tracefail.store import Database, search, traces

Call = tuple[str, str, float, float, float]  # name, thread, start, wall, thread CPU


def _wrap(owner: Any, name: str, calls: list[Call], started: list[float]) -> None:
    function: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            thread = threading.current_thread().name[:24]
            calls.append(
                (name, thread, wall - started[0], time.perf_counter() - wall, time.thread_time() - cpu)
            )

    setattr(owner, name, timed)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mast-mb", type=int, default=50)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument(
        "--mast-text", choices=("diverse", "repeated"), default="diverse", help="as ingest.py's"
    )
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "tracefail-bench")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    # the file ingest.py makes and caches: v2 the sample text repeated, v3 in real words
    version = "v3_diverse" if args.mast_text == "diverse" else "v2"
    mast = args.workdir / f"mast_synth_{args.mast_mb}mb_{version}.json"
    if not mast.exists():
        synthesize_mast(mast, args.mast_mb, diverse=args.mast_text == "diverse")
    calls: list[Call] = []
    started = [time.perf_counter()]
    _wrap(fidelity.Stored, "measure", calls, started)
    _wrap(traces, "add_prepared", calls, started)
    _wrap(traces, "_insert", calls, started)
    _wrap(traces, "index_written", calls, started)
    for name in ("_drop_docs", "_add_docs", "token_lists", "_postings_rows", "_term_ids", "_merge_segments"):
        _wrap(search, name, calls, started)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        db = Database(Path(tmp) / "timeline.duckdb")
        load = os.getloadavg()[0]
        cpu = time.process_time()
        started[0] = time.perf_counter()
        report = ingest_service.ingest(db, [mast], workers=args.workers)
        db.execute("CHECKPOINT")
        wall = time.perf_counter() - started[0]
        db.close()
    print(
        f"{mast.name}, --workers {args.workers} ({report.reader_processes} reader processes): "
        f"{wall:.2f} s, CPU of this process {time.process_time() - cpu:.2f} s, "
        f"load {load:.1f}-{os.getloadavg()[0]:.1f}"
    )
    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0, 0.0, float("inf"), 0.0])
    for name, thread, start, spent, thread_cpu in calls:
        total = totals[(name, thread)]
        total[0] += 1
        total[1] += spent
        total[2] += thread_cpu
        total[3] = min(total[3], start)
        total[4] = max(total[4], start + spent)
    for (name, thread), (n, spent, thread_cpu, first, last) in sorted(totals.items(), key=lambda t: t[1][3]):
        print(
            f"  {name:16} {thread:24} {int(n):4} calls  wall {spent:6.2f} s  thread CPU {thread_cpu:5.2f} s"
            f"  from {first:6.2f} to {last:6.2f} s"
        )


if __name__ == "__main__":
    main()
