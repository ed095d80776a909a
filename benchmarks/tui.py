"""How fast `tracefail browse` paints and filters a big corpus, driven by Textual's pilot.

    .venv/bin/python benchmarks/make_corpus.py --out /tmp/big.duckdb   # 100k traces / 1M steps
    .venv/bin/python benchmarks/tui.py --db /tmp/big.duckdb

Prints, for the corpus screen: time to the first page painted (target < 1.5 s) and to a filter
change painted (target < 0.3 s), each against the plain baseline of materialising the whole
listing (`store.traces.list_traces`, what a non-paged table would need before painting).
Then a 10k-step trace with a 1 MB step: open it and move through it. Timings are wall-clock
on a shared machine; run it more than once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from tracefail.model import Outcome, Step, Trace
from tracefail.store import Database
from tracefail.store.traces import add_traces, list_traces
from tracefail.tui.app import TracefailApp
from tracefail.tui.screens.corpus import CorpusScreen
from tracefail.tui.screens.trace import TraceScreen

SIZE = (160, 48)
FILTERS = ["framework:AG2", "mode:1.3", "agree:no", "source:dataset", "outcome:failure sort:-steps"]


async def _until(pilot: Pilot, ready: Callable[[], bool], limit_s: float = 60.0) -> float:
    """Seconds until `ready()` holds, polled every 2 ms, then one more refresh to paint."""
    start = time.perf_counter()
    while not ready():
        if time.perf_counter() - start > limit_s:
            raise TimeoutError("the screen did not get there in time")
        await asyncio.sleep(0.002)
    await pilot.pause()
    return time.perf_counter() - start


async def _corpus(db: Path) -> dict[str, object]:
    started, started_cpu = time.perf_counter(), time.process_time()
    app = TracefailApp(db, "bench", export_dir=Path(tempfile.gettempdir()))
    async with app.run_test(size=SIZE) as pilot:

        def first_rows() -> bool:
            return isinstance(app.screen, CorpusScreen) and app.screen.loaded > 0

        await _until(pilot, first_rows)
        first_paint, first_cpu = time.perf_counter() - started, time.process_time() - started_cpu
        screen = app.screen
        assert isinstance(screen, CorpusScreen)
        await _until(pilot, lambda: screen.total is not None)
        total = screen.total
        rows_shown, counted, cpu_used = [], [], []
        for words in FILTERS:
            await _until(pilot, lambda: not screen.loading and screen.total is not None)
            await pilot.pause(0.2)  # let the sparkline workers of the last page finish
            box = screen.query_one("#filter")
            box.value = words  # type: ignore[attr-defined]
            box.focus()
            await pilot.pause()
            generation = screen.generation + 1
            begin, cpu = time.perf_counter(), time.process_time()
            await pilot.press("enter")

            def shown(generation: int = generation) -> bool:
                return screen.generation == generation and not screen.loading

            await _until(pilot, shown)
            rows_shown.append(time.perf_counter() - begin)
            cpu_used.append(time.process_time() - cpu)
            await _until(pilot, lambda: screen.total is not None)
            counted.append(time.perf_counter() - begin)
    return {
        "traces": total,
        "first_paint": first_paint,
        "rows_shown": rows_shown,
        "counted": counted,
        "cpu": cpu_used,
        "first_cpu": first_cpu,
    }


def _baseline(db: Path) -> float:
    start = time.perf_counter()
    with Database(db, read_only=True) as store:
        list_traces(store)
    return time.perf_counter() - start


def _big_trace(tmp: Path) -> Path:
    path = tmp / "long.duckdb"
    steps = [
        Step(
            step_idx=i, agent=f"agent{i % 7}", content=("x" * 1_000_000 if i == 5 else f"step {i} text " * 20)
        )
        for i in range(10_000)
    ]
    trace = Trace(trace_id="bench:long", source="bench", outcome=Outcome.FAILURE, steps=steps)
    with Database(path) as store:
        add_traces(store, [trace], run_id=None)
    return path


async def _long_trace(db: Path) -> dict[str, float]:
    app = TracefailApp(db, "bench", export_dir=Path(tempfile.gettempdir()))
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, CorpusScreen) and app.screen.loaded > 0)
        begin = time.perf_counter()
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, TraceScreen) and app.screen.view is not None)
        opened = time.perf_counter() - begin
        screen = app.screen
        assert isinstance(screen, TraceScreen)
        moves = []
        for key in ["down"] * 10 + ["end", "home", "pagedown"]:  # step 5 holds 1 MB of text
            begin = time.perf_counter()
            await pilot.press(key)
            moves.append(time.perf_counter() - begin)
    return {"open": opened, "key_median": statistics.median(moves), "key_max": max(moves)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", type=Path, required=True, help="corpus from benchmarks/make_corpus.py")
    args = parser.parse_args()
    if not args.db.exists():
        parser.error(f"{args.db}: no such corpus; make one with benchmarks/make_corpus.py")
    baseline = _baseline(args.db)
    corpus = asyncio.run(_corpus(args.db))
    shown, counted, cpu = corpus["rows_shown"], corpus["counted"], corpus["cpu"]
    assert isinstance(shown, list) and isinstance(counted, list) and isinstance(cpu, list)
    first = float(corpus["first_paint"])  # type: ignore[arg-type]
    print(f"corpus: {corpus['traces']:,} traces ({args.db})")
    print(f"plain baseline, whole listing materialised (list_traces): {baseline:.3f} s")
    print(
        f"first screen painted (app start -> first page shown): {first:.3f} s, process CPU "
        f"{corpus['first_cpu']:.3f} s  (target < 1.5 s; baseline / this = {baseline / first:.2f})"
    )
    for words, rows, total, used in zip(FILTERS, shown, counted, cpu, strict=True):
        print(f"filter {words!r:34} rows painted {rows:.3f} s, count shown {total:.3f} s, CPU {used:.3f} s")
    median = statistics.median(shown)
    print(
        f"filter change, median rows painted: {median:.3f} s  (target < 0.3 s; "
        f"baseline / this = {baseline / median:.2f})"
    )
    print(f"machine load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        long = asyncio.run(_long_trace(_big_trace(Path(tmp))))
    print(
        f"10k-step trace with a 1 MB step: opened in {long['open']:.3f} s; key press median "
        f"{long['key_median'] * 1000:.0f} ms, max {long['key_max'] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
