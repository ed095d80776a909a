"""Time `tracefail eval` on a large corpus, and its bootstrap against the plain one that
resamples the items (the loop eval used before: one 2x2 table rebuilt per resample).

    .venv/bin/python benchmarks/make_corpus.py --traces 20000 --db /tmp/c20k.duckdb
    .venv/bin/python benchmarks/eval.py --db /tmp/c20k.duckdb

Both bootstraps run on the same pooled (judge, reference) pairs with the same number of
resamples; the ratio is measured in this run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from tracefail.analysis.agreement import binary_scores, binary_scores_ci
from tracefail.services.evaluate import evaluate, judge_modes, reference_modes
from tracefail.store import Database
from tracefail.taxonomy import find


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="a corpus made by benchmarks/make_corpus.py")
    parser.add_argument("--reference", default="dataset")
    parser.add_argument("--reps", type=int, default=1000, help="resamples of eval itself")
    parser.add_argument("--baseline-reps", type=int, default=20, help="resamples of both bootstraps")
    args = parser.parse_args()
    if not args.db.exists():
        print(f"error: {args.db} does not exist; run benchmarks/make_corpus.py first", file=sys.stderr)
        return 2
    with Database(args.db, read_only=True) as db:
        started = time.perf_counter()
        result = evaluate(db, reference=args.reference, reps=args.reps)
        whole = time.perf_counter() - started
        loaded = find("mast-v1")
        ref = reference_modes(db, args.reference, loaded).verdicts
        pred = judge_modes(db, result["judge_source"], loaded)
    keys = sorted(set(ref) & set(pred))
    p = np.array([pred[k][0] for k in keys])
    r = np.array([ref[k] for k in keys])
    reps = args.baseline_reps
    started = time.perf_counter()
    binary_scores_ci(p, r, reps=reps)
    ours = time.perf_counter() - started
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for _ in range(reps):
        idx = rng.integers(0, len(p), len(p))
        for _name in ("kappa", "precision", "recall", "f1", "accuracy"):
            binary_scores(p[idx], r[idx])
    plain = time.perf_counter() - started
    print(f"eval --reps {args.reps}: {result['modes']['n_pairs']} pairs, {whole:.2f} s")
    print(
        f"bootstrap of {len(p)} pooled pairs, {reps} resamples: multinomial {ours * 1000:.1f} ms, "
        f"resampling items {plain:.2f} s, ratio {plain / max(ours, 1e-9):.0f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
