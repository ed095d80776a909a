"""The cost of merging a trace's spans into its stored version, vs ingesting them at once.

Files: a trace split over two OTLP files vs one file (two halves / one file).
Live (`serve`): the writer merging N requests of k spans each, one write per request (what it
does when each request finds no other waiting, as a long-running agent's do), vs one request
holding all spans. Each write maps and writes only its new spans and appends them to the
trace's `trace_spans` rows (docs/serve.md, "Cost of a growing trace"): the time of the writes
that reach 100, 1,000, 5,000 and 10,000 spans so far is printed (the median of the 10 writes
before each mark) with its ratio to the first writes' (flat: about 1x). Both end in the same
stored trace (same content hash and `raw`, it asserts so).

    .venv/bin/python benchmarks/otlp_merge.py [--spans 5000] [--live 10000] [--per-request 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tracefail.services.ingest import ingest
from tracefail.services.span_merge import IncomingSpans, merge_spans
from tracefail.store import Database

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def span(n: int) -> dict[str, Any]:
    """Span `n` of the trace: a chat span under span 0, starting after span n - 1."""
    return {
        "traceId": TRACE,
        "spanId": f"{n + 1:016x}",
        **({"parentSpanId": f"{1:016x}"} if n else {}),
        "name": "chat",
        "startTimeUnixNano": str(1_700_000_000_000_000_000 + n * 1000),
        "attributes": [{"key": "gen_ai.completion", "value": {"stringValue": f"reply {n} " * 20}}],
    }


def export(path: Path, numbers: range) -> Path:
    """An OTLP/JSON file with spans `numbers` of the trace."""
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span(n) for n in numbers]}]}]}))
    return path


def timed(folder: Path, files: list[Path]) -> tuple[float, int]:
    db = Database(folder / "corpus.duckdb")
    started = time.perf_counter()
    for file in files:
        ingest(db, [file])
    elapsed = time.perf_counter() - started
    steps = db.rows("SELECT n_steps FROM traces")[0][0]
    db.close()
    return elapsed, steps


def live(folder: Path, n: int, per_request: int) -> tuple[float, list[float], list[float]]:
    """Seconds of one request with all `n` spans, and of each write of one request of
    `per_request` spans (interleaved, so both see the same load on a shared machine): wall
    time, and CPU time of this process (all its threads; what other processes' load moves less)."""
    dbs = {name: Database(folder / f"{name}.duckdb") for name in ("one", "split")}
    seconds: dict[str, list[float]] = {name: [] for name in dbs}
    cpu: list[float] = []
    whole = [span(i) for i in range(n)]
    requests = [whole[first : first + per_request] for first in range(0, n, per_request)]
    for variant, spans in [("one", whole), *(("split", spans) for spans in requests)]:
        started, started_cpu = time.perf_counter(), time.process_time()
        merge_spans(dbs[variant], [IncomingSpans(TRACE, [("agent", spans)], "live", "otlp-live")], None)
        seconds[variant].append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    stored = {
        name: db.rows(
            "SELECT n_steps, content_hash, trace_raw.raw FROM traces JOIN trace_raw USING (trace_id)"
        )
        for name, db in dbs.items()
    }
    for db in dbs.values():
        db.close()
    assert stored["one"] == stored["split"] and stored["one"][0][0] == n
    return seconds["one"][0], seconds["split"], cpu[1:]


def around(times: list[float], spans_so_far: int, per_request: int, window: int = 10) -> float:
    """Median seconds of the `window` writes that end with `spans_so_far` spans stored (a median:
    one write stalled by another process on a shared machine does not move it)."""
    last = spans_so_far // per_request
    return statistics.median(times[max(1, last - window) : last])  # never the first write: it builds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=5000, help="spans of the file case (0: skip it)")
    parser.add_argument("--live", type=int, nargs="*", default=[10000], help="spans of the live cases")
    parser.add_argument("--per-request", type=int, default=10, help="spans per live request")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    if args.spans:
        with tempfile.TemporaryDirectory() as one_dir, tempfile.TemporaryDirectory() as two_dir:
            one, two = Path(one_dir), Path(two_dir)
            whole, whole_steps = timed(one, [export(one / "all.json", range(args.spans))])
            halves, merged_steps = timed(
                two,
                [
                    export(two / "a.json", range(0, args.spans, 2)),
                    export(two / "b.json", range(1, args.spans, 2)),
                ],
            )
        assert whole_steps == merged_steps == args.spans
        print(
            f"{args.spans:,} spans of one trace: one file {whole:.2f} s, two half files (merged) "
            f"{halves:.2f} s, two halves/one file {halves / whole:.2f}x"
        )
    for n in args.live:
        k = args.per_request
        with tempfile.TemporaryDirectory() as folder:
            at_once, writes, cpu = live(Path(folder), n, k)
        first = around(writes, min(11, len(writes)) * k, k)  # writes 2-11
        marks = [m for m in (100, 1000, 5000, 10000) if m <= n]
        costs = ", ".join(
            f"{m:,} spans so far {around(writes, m, k) * 1000:.1f} ms ({around(writes, m, k) / first:.1f}x)"
            for m in marks
        )
        cpu_first = around(cpu, min(11, len(cpu)) * k, k)
        cpu_costs = ", ".join(
            f"{m:,} {around(cpu, m, k) * 1000:.1f} ms ({around(cpu, m, k) / cpu_first:.1f}x)" for m in marks
        )
        print(
            f"live, {n:,} spans in {len(writes)} requests of {k} (load {os.getloadavg()[0]:.1f}): "
            f"one request {at_once:.2f} s; one write per request {sum(writes):.2f} s "
            f"({sum(writes) / at_once:.1f}x one request); per write: first writes "
            f"{first * 1000:.1f} ms, {costs}; CPU per write: first writes {cpu_first * 1000:.1f} ms, "
            f"{cpu_costs}"
        )


if __name__ == "__main__":
    main()
