"""Time the ops dashboard on a large corpus against a bare DuckDB COUNT(*) GROUP BY over the same
steps (the floor of any per-group figure over them): the service call, `tracefail stats --section
ops --format json` as a user runs it (a new process), and the browser's `O` screen until its
tables are drawn.

    .venv/bin/python benchmarks/make_corpus.py --traces 100000 --db /tmp/big.duckdb
    .venv/bin/python benchmarks/ops.py --db /tmp/big.duckdb
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stats import best  # benchmarks/stats.py, beside this script
from textual.worker import WorkerState

from tracefail.services.ops import ops
from tracefail.store import Database
from tracefail.store import ops as ops_store
from tracefail.tui.app import TracefailApp
from tracefail.tui.screens.corpus import CorpusScreen
from tracefail.tui.screens.ops import OpsScreen


def cli_json(db: Path) -> None:
    """`stats --section ops --format json` in a new process, its JSON read to the end."""
    tracefail = shutil.which("tracefail") or str(Path(sys.executable).with_name("tracefail"))
    done = subprocess.run(
        [tracefail, "stats", "--db", str(db), "--section", "ops", "--format", "json"],
        capture_output=True,
        check=True,
    )
    assert done.stdout.startswith(b"{")


async def screen_paint(db: Path) -> float:
    """Seconds from pressing `O` on the corpus list until the ops screen has drawn its tables."""
    app = TracefailApp(db, "bench", export_dir=Path(tempfile.gettempdir()))
    async with app.run_test(size=(200, 50)) as pilot:
        busy = (WorkerState.PENDING, WorkerState.RUNNING)
        while not (isinstance(app.screen, CorpusScreen) and app.screen.total is not None) or any(
            w.state in busy for w in app.workers
        ):
            await asyncio.sleep(0.01)  # the list painted, counted and indexed: the CPU is the screen's
        await pilot.pause()
        started = time.perf_counter()
        await pilot.press("O")
        while not (isinstance(app.screen, OpsScreen) and app.screen.built is not None):
            await asyncio.sleep(0.002)
        await pilot.pause()  # the frame that shows them
        return time.perf_counter() - started


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


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
        print(f"load average before: {load()}")
        baseline = best(lambda: db.rows("SELECT agent, count(*) FROM steps GROUP BY agent"), args.repeat)
        columns = ", ".join(f"{sql} AS {name}" for name, sql in ops_store.DIMENSIONS.items())
        sets = ", ".join(f"({name})" for name in ops_store.DIMENSIONS)
        same_groups = best(  # COUNT(*) over the same join and the same five groupings
            lambda: db.rows(
                f"SELECT count(*) FROM (SELECT {columns} FROM steps s "
                f"JOIN {ops_store._TRACES} USING (trace_id)) GROUP BY GROUPING SETS ({sets})"
            ),
            args.repeat,
        )
        dashboard = best(lambda: ops(db), args.repeat)
        built = ops(db)
    print(f"baseline COUNT(*) GROUP BY agent over steps: {baseline:.3f} s")
    floor = f"{same_groups:.3f} s = {same_groups / baseline:.1f}x"
    print(f"COUNT(*) over the same join and five GROUPING SETS: {floor}")
    rows, days = built.table.height, built.by_day.height
    print(f"ops() ({rows:,} rows, {days:,} per-day rows): {dashboard:.3f} s = {dashboard / baseline:.1f}x")
    cli = best(lambda: cli_json(args.db), args.repeat)
    print(f"stats --section ops --format json (new process): {cli:.3f} s = {cli / baseline:.1f}x")
    paint = min(asyncio.run(screen_paint(args.db)) for _ in range(args.repeat))
    print(f"O screen, key to tables drawn: {paint:.3f} s = {paint / baseline:.1f}x")
    print(f"load average after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
