"""Merging a trace split over two OTLP files vs ingesting it from one file: the same spans end in
the same stored trace; the ratio (two halves / one file) is the cost of the merge path (reading
the stored spans back, deduplicating, rebuilding, replacing the rows).

    .venv/bin/python benchmarks/otlp_merge.py [--spans 5000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tracefail.services.ingest import ingest
from tracefail.store import Database


def export(path: Path, numbers: range) -> Path:
    """An OTLP/JSON file with spans `numbers` of one trace (each a chat span under span 0)."""
    spans = [
        {
            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": f"{n + 1:016x}",
            **({"parentSpanId": f"{1:016x}"} if n else {}), "name": "chat",
            "startTimeUnixNano": str(1_700_000_000_000_000_000 + n * 1000),
            "attributes": [{"key": "gen_ai.completion", "value": {"stringValue": f"reply {n} " * 20}}],
        }
        for n in numbers
    ]
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=5000)
    n = parser.parse_args().spans
    with tempfile.TemporaryDirectory() as one_dir, tempfile.TemporaryDirectory() as two_dir:
        one, two = Path(one_dir), Path(two_dir)
        whole, whole_steps = timed(one, [export(one / "all.json", range(n))])
        halves, merged_steps = timed(two, [export(two / "a.json", range(0, n, 2)),
                                           export(two / "b.json", range(1, n, 2))])
    assert whole_steps == merged_steps == n
    print(f"{n:,} spans of one trace: one file {whole:.2f} s, two half files (merged) {halves:.2f} s, "
          f"two halves/one file {halves / whole:.2f}x")


if __name__ == "__main__":
    main()
