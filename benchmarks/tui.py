"""How fast `tracefail browse` paints and filters a big corpus, driven by Textual's pilot.

    .venv/bin/python benchmarks/make_corpus.py --traces 100000 --db /tmp/big.duckdb  # 1M steps
    .venv/bin/python benchmarks/tui.py --db /tmp/big.duckdb

Prints, for the corpus screen: time to the first page painted (target < 1.5 s), time until the
in-memory corpus index is ready, and for each filter change (target < 0.3 s) the time until its
first page is painted, until its count is shown and until every worker it started (count,
sparklines) has finished. "Painted" is the end of the first screen refresh after the rows are in
the table (`call_after_refresh`), not the CPU-idle wait of `pilot.press`, which also waits for
the sparkline worker. The filters run twice: answered from the index, then with SQL only (what a
filter change costs before the index is built or right after the corpus changed). Free-text
words are answered by the full-text index of `tracefail search` (docs/search.md) and are reported
on their own lines, outside the median, with the traces they match (target < 0.5 s to the first
row): a phrase of common words, a rare word, and a phrase no trace holds.
Then a 10k-step trace with a 1 MB step: open it and move through it. Timings are wall-clock on
a shared machine; run it more than once.
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
from textual.worker import WorkerState

from tracefail.model import Outcome, Step, Trace
from tracefail.services.browse import BrowseService
from tracefail.services.filter_language import parse_filter
from tracefail.services.search import matching_traces
from tracefail.store import Database
from tracefail.store.trace_view import SPARK_FEATURES
from tracefail.store.traces import add_traces, list_traces
from tracefail.tui.app import TracefailApp
from tracefail.tui.screens.corpus import CorpusScreen
from tracefail.tui.screens.trace import TraceScreen

SIZE = (160, 48)
# {category} and {feature} are filled from the corpus' facets; filters naming neither are skipped
FILTERS = [
    "framework:AG2",
    "llm:gpt-4o",
    "mode:1.3",
    "category:{category}",
    "source:dataset",
    "outcome:failure sort:-steps",
    "agree:no",
    "agree:yes",
    "{feature}>4",
    "sort:-modes",
    "framework:AG2 mode:2.2 sort:-llm",
    "",  # back to all traces
]
# free-text filters: a phrase of two of the commonest words (the slowest kind: long postings to
# intersect by position), a rare word, and the phrase earlier rounds timed (no trace holds it, so
# it measures an empty answer)
TEXT_SEARCHES = ['"the answer" framework:AG2', "umbrella", '"reasons about the task" framework:AG2']


_FRAMES: list[float] = []  # when the corpus screen last composited a frame


def _watch_frames(screen: CorpusScreen) -> None:
    """Note the time of every frame the screen renders (its compositor refresh)."""
    refresh = screen._compositor_refresh

    def timed() -> None:
        refresh()
        _FRAMES.append(time.perf_counter())

    screen._compositor_refresh = timed  # type: ignore[method-assign]


async def _until(pilot: Pilot, ready: Callable[[], bool], limit_s: float = 60.0, paint: bool = True) -> float:
    """Seconds until `ready()` holds (polled every 2 ms) and, with `paint`, until the next frame
    the screen renders: the first frame that can show the change. Frames rendered between the
    change and the poll that sees it are not counted, so this errs on the slow side."""
    start = time.perf_counter()
    while not ready():
        if time.perf_counter() - start > limit_s:
            raise TimeoutError("the screen did not get there in time")
        await asyncio.sleep(0.002)
    if paint:
        seen = time.perf_counter()
        while not (_FRAMES and _FRAMES[-1] >= seen):
            if time.perf_counter() - start > limit_s:
                raise TimeoutError("the screen did not paint in time")
            await asyncio.sleep(0.001)
        return _FRAMES[-1] - start
    return time.perf_counter() - start


def _idle(pilot: Pilot) -> bool:
    return not any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in pilot.app.workers)


async def _filter(pilot: Pilot, screen: CorpusScreen, words: str) -> dict[str, float]:
    await _until(
        pilot, lambda: _idle(pilot) and not screen.fetching and screen.total is not None, paint=False
    )
    box = screen.query_one("#filter")
    box.value = words  # type: ignore[attr-defined]
    box.focus()
    await pilot.pause()
    generation = screen.generation + 1
    begin, cpu = time.perf_counter(), time.process_time()
    press = asyncio.create_task(pilot.press("enter"))  # its own wait for CPU idle is not our measure

    def shown() -> bool:
        return screen.generation == generation and not screen.fetching

    rows = await _until(pilot, shown)
    await _until(pilot, lambda: screen.total is not None, paint=False)
    counted = time.perf_counter() - begin
    await press
    await _until(pilot, lambda: _idle(pilot), paint=False)
    return {
        "rows": rows,
        "counted": counted,
        "settled": time.perf_counter() - begin,
        "cpu": time.process_time() - cpu,
    }


async def _corpus(db: Path, use_index: bool) -> dict[str, object]:
    started, started_cpu = time.perf_counter(), time.process_time()
    app = TracefailApp(db, "bench", export_dir=Path(tempfile.gettempdir()))
    indexing = hasattr(app.service, "index")  # False when measuring a tracefail without it
    if indexing:
        app.service.index.enabled = use_index
    async with app.run_test(size=SIZE) as pilot:

        def first_rows() -> bool:
            if not isinstance(app.screen, CorpusScreen):
                return False
            if not hasattr(app.screen, "_watched"):
                app.screen._watched = True  # type: ignore[attr-defined]
                _watch_frames(app.screen)
            return app.screen.loaded > 0

        await _until(pilot, first_rows)
        first_paint, first_cpu = time.perf_counter() - started, time.process_time() - started_cpu
        screen = app.screen
        assert isinstance(screen, CorpusScreen)
        await _until(pilot, lambda: screen.total is not None, paint=False)
        total = screen.total
        index_s = None
        if indexing and use_index:
            await _until(pilot, lambda: app.service.index_ready, paint=False)
            index_s = time.perf_counter() - started - first_paint
        facets = BrowseService(db, "bench").facets()  # what the filter words may name
        fill = {
            "category": next(iter(sorted(facets.categories)), None),
            "feature": next((f for f in SPARK_FEATURES if f in facets.features), None),
        }
        results: dict[str, dict[str, float]] = {}
        for template in FILTERS:
            try:
                words = template.format(**fill)
            except KeyError:
                continue
            if "None" in words:
                continue
            results[words] = await _filter(pilot, screen, words)
        texts: dict[str, dict[str, float]] = {}
        for words in TEXT_SEARCHES:
            texts[words] = await _filter(pilot, screen, words)
            texts[words]["matched"] = float(screen.total or 0)
            texts[words]["query"] = _query_alone(db, words)  # the same search on its own, just after
        again = await _filter(pilot, screen, TEXT_SEARCHES[0] + " outcome:failure")
    return {
        "traces": total,
        "first_paint": first_paint,
        "first_cpu": first_cpu,
        "index_s": index_s,
        "filters": results,
        "texts": texts,
        "text_again": again,
    }


def _query_alone(db: Path, words: str) -> float:
    """Seconds for the free-text filter's own search (open read-only, search, close): what the
    browser's filter path adds is the filter's time less this."""
    text = parse_filter(words).text
    assert text is not None
    start = time.perf_counter()
    with Database(db, read_only=True) as store:
        matching_traces(store, text)
    return time.perf_counter() - start


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
        await _until(
            pilot, lambda: isinstance(app.screen, CorpusScreen) and app.screen.loaded > 0, paint=False
        )
        begin = time.perf_counter()
        await pilot.press("enter")
        await _until(
            pilot, lambda: isinstance(app.screen, TraceScreen) and app.screen.view is not None, paint=False
        )
        await pilot.pause()  # as before: until the app is idle after the trace is shown
        opened = time.perf_counter() - begin
        screen = app.screen
        assert isinstance(screen, TraceScreen)
        moves = []
        for key in ["down"] * 10 + ["end", "home", "pagedown"]:  # step 5 holds 1 MB of text
            begin = time.perf_counter()
            await pilot.press(key)
            moves.append(time.perf_counter() - begin)
    return {"open": opened, "key_median": statistics.median(moves), "key_max": max(moves)}


def _report(name: str, corpus: dict[str, object], baseline: float) -> None:
    filters = corpus["filters"]
    assert isinstance(filters, dict)
    print(f"--- {name}")
    first = float(corpus["first_paint"])  # type: ignore[arg-type]
    print(
        f"first screen painted (app start -> first page shown): {first:.3f} s, process CPU "
        f"{corpus['first_cpu']:.3f} s  (target < 1.5 s; baseline / this = {baseline / first:.2f})"
    )
    if corpus["index_s"] is not None:
        print(f"corpus index ready {corpus['index_s']:.3f} s after the first paint (built in a worker)")
    for words, t in filters.items():
        print(
            f"filter {words or '(none)'!r:36} rows painted {t['rows']:.3f} s, "
            f"count shown {t['counted']:.3f} s, workers done {t['settled']:.3f} s, CPU {t['cpu']:.3f} s"
        )
    median = statistics.median(t["rows"] for t in filters.values())
    print(
        f"filter change, median rows painted: {median:.3f} s  "
        f"(target < 0.3 s; baseline / this = {baseline / median:.2f})"
    )
    texts = corpus["texts"]
    assert isinstance(texts, dict)
    for words, t in texts.items():
        print(
            f"free-text filter {words!r} ({t['matched']:,.0f} traces; target < 0.5 s): rows painted "
            f"{t['rows']:.3f} s, count shown {t['counted']:.3f} s; its search alone (open, query, "
            f"close) {t['query']:.3f} s, the browser's path around it {t['rows'] - t['query']:.3f} s"
        )
    again = corpus["text_again"]
    assert isinstance(again, dict)
    print(
        f"the first words + outcome:failure: rows painted {again['rows']:.3f} s, "
        f"count shown {again['counted']:.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", type=Path, required=True, help="corpus from benchmarks/make_corpus.py")
    parser.add_argument("--sql-only", action="store_true", help="skip the run that uses the index")
    parser.add_argument("--skip-sql", action="store_true", help="skip the run with SQL only")
    args = parser.parse_args()
    if not args.db.exists():
        parser.error(f"{args.db}: no such corpus; make one with benchmarks/make_corpus.py")
    baseline = _baseline(args.db)
    print(f"corpus: {args.db}")
    print(f"plain baseline, whole listing materialised (list_traces): {baseline:.3f} s")
    runs = [("index", True)] * (not args.sql_only) + [("SQL only", False)] * (not args.skip_sql)
    for name, use_index in runs:
        corpus = asyncio.run(_corpus(args.db, use_index))
        _report(f"{name}: {corpus['traces']:,} traces", corpus, baseline)
    print(f"machine load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        long = asyncio.run(_long_trace(_big_trace(Path(tmp))))
    print(
        f"10k-step trace with a 1 MB step: opened in {long['open']:.3f} s; key press median "
        f"{long['key_median'] * 1000:.0f} ms, max {long['key_max'] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
