"""What the fidelity measure costs an ingest: the measure alone vs a whole ingest, one run.

    .venv/bin/python benchmarks/fidelity.py [--mast-mb 50] [--workdir /tmp/...]

Input: the MAST-Data-style array `benchmarks/ingest.py` synthesizes. Timings in this process,
one after the other (the two ingests alternate `--repeat` times, best of each kept): a whole
`ingest --workers 0` into a fresh database file (which measures fidelity as every ingest does),
the same ingest with the measure switched off (its text lines never asked for), and the measure
alone on every run (as `formats --check` does) as ingest runs it (records in runs of
RUN_BYTES, each run's traces mapped, their stored text indexed, the run's text lines looked
up). Prints the ratios and the load average: timings on a shared machine move, ratios less.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _ingest_seconds(path: Path, workdir: Path, measured: bool) -> float:
    from tracefail.services import ingest_read
    from tracefail.services.ingest import ingest
    from tracefail.store import Database

    db_path = workdir / f"fidelity-{measured}.duckdb"
    db_path.unlink(missing_ok=True)
    db = Database(db_path)
    off = mock.patch.object(ingest_read, "FIDELITY_MAX_BYTES", -1)  # whole files unmeasured
    parts = ingest_read._parts

    def unmeasured(unit, limits, sample=True):  # the same parts without their text lines
        for part, _, sampled in parts(unit, limits, sample):
            yield part, None, sampled

    start = time.perf_counter()
    if measured:
        report = ingest(db, [path], workers=0)
    else:
        with off, mock.patch.object(ingest_read, "_parts", unmeasured):
            report = ingest(db, [path], workers=0)
    db.execute("CHECKPOINT")
    seconds = time.perf_counter() - start
    db.close()
    text = report.text
    print(
        f"  ingest {'with' if measured else 'without'} the measure: {seconds:6.2f} s, "
        f"{report.traces} traces, "
        f"{report.steps} steps; text retrievable {text.share:.2%} of {text.lines:,} lines"
    )
    return seconds


def _measure_seconds(path: Path) -> float:
    """Every run measured (as `formats --check` does), with the time mapping records taken out."""
    from tracefail.ingest import fidelity, registry
    from tracefail.ingest.base import Rejected
    from tracefail.services.ingest_read import RUN_BYTES

    adapter = registry.detect(path)
    start = time.perf_counter()
    run, size = [], 0

    def one(records):
        stored = fidelity.Stored()
        parse = time.perf_counter()
        traces = [t for t in adapter.from_records(path, records) if not isinstance(t, Rejected)]
        parse = time.perf_counter() - parse
        for trace in traces:
            stored.add(trace)
        stored.measure(fidelity.text_lines(fidelity.record_values(records)))
        return parse

    parsing = 0.0
    for record in adapter.records(path):
        run.append(record)
        size += record.size
        if size >= RUN_BYTES:
            parsing += one(run)
            run, size = [], 0
    if run:
        parsing += one(run)
    seconds = time.perf_counter() - start - parsing
    print(f"  the measure alone (mapping the records not counted): {seconds:6.2f} s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mast-mb", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "tracefail-bench")
    args = parser.parse_args()
    from ingest import synthesize_mast  # benchmarks/ingest.py, beside this script

    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / f"mast_{args.mast_mb}mb.json"
    if not path.exists():
        synthesize_mast(path, args.mast_mb)
    print(f"{path.name}: {path.stat().st_size / 1e6:.1f} MB; load average {os.getloadavg()[0]:.2f}")
    without, with_it = [], []
    for _ in range(args.repeat):  # alternating, best of each: the least disturbed runs
        without.append(_ingest_seconds(path, args.workdir, measured=False))
        with_it.append(_ingest_seconds(path, args.workdir, measured=True))
    without, with_it = min(without), min(with_it)
    alone = _measure_seconds(path)
    print(
        f"  ratio: ingest with the measure {with_it / without:.2f}x ingest without; the measure alone "
        f"{alone / without:.2f}x an ingest without it; load average now {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
