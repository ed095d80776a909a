"""Build a large synthetic corpus (default 100k traces, ~1M steps) for the stats and TUI benchmarks.

The shipped samples are ingested first (steps, roles and agents to copy), then
`benchmarks/synth.py` fills every table inside DuckDB; each copied step text gets its words from
real text (`benchmarks/corpus_text.py`; `--text repeated`: copied as it is, the earlier corpus).

    .venv/bin/python benchmarks/make_corpus.py --traces 100000 --db /tmp/big.duckdb
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from corpus_text import Words, add_text_options, pool_words  # benchmarks/, beside this script
from synth import synthesize

from tracefail.services.ingest import ingest
from tracefail.store import Database, StoreError

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--db", type=Path, default=Path("bench-corpus.duckdb"))
    parser.add_argument("--seed", type=int, default=0)
    add_text_options(parser, "--text", "step texts")
    args = parser.parse_args()
    if args.db.exists():
        print(f"error: {args.db} exists; pick a new path", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with Database(args.db) as db:
        ingested = ingest(db, [SAMPLES])
        try:
            words = Words(pool_words(args.shared_data), args.seed) if args.text == "diverse" else None
            report = synthesize(db, args.traces, seed=args.seed, text=None if words is None else words.text)
        except StoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    elapsed = time.perf_counter() - started
    print(
        f"{args.db}: {ingested.traces} sample traces + {report.traces} synthetic traces, "
        f"{report.steps} steps, {report.labels} labels, {report.attributions} attributions, "
        f"{report.features} feature rows in {elapsed:.1f} s; {report.distinct_texts} distinct "
        f"synthetic step texts ({report.distinct_texts / max(report.steps, 1):.1%}, {args.text} text)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
