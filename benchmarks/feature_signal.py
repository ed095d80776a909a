"""Do the step features carry signal? HaluEval QA AUROC and Who&When mistake-step accuracy.

    .venv/bin/python benchmarks/feature_signal.py [--n 200] [--whowhen-traces 126] [--model ID]
        [--window 2048] [--layers all] [--db /tmp/whowhen-features.duckdb] [--boot 1000]

1. HaluEval QA (../shared/data/halueval, first 1,000 items): the knowledge + question is a user
   turn and the answer an assistant turn; the right and the hallucinated answer of each of the
   first `--n` items are scored separately. For every step-level summary feature: AUROC of
   telling hallucinated (1) from right (0), with a 95% bootstrap CI over items (pairs resampled
   together). Polarity is not assumed: AUROC < 0.5 means lower values flag hallucination.
   Caveat: right answers are short phrases, hallucinated ones often full sentences, so the
   step length itself separates them; `len.step_tokens` is printed as the baseline to beat.
2. Who&When algorithm-generated (../shared/data/whowhen-algorithm-generated): the traces are
   ingested into `--db` and features extracted (resumable); the mistake step is predicted as
   the step where a feature peaks (argmax) or dips (argmin); exact-match accuracy is printed
   beside the trivial baselines (random step, most common step, first step). Picking the best
   of many features x 2 directions on the same data is optimistic: read it as exploratory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PER_LAYER = re.compile(r"\.l\d+$")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Mann-Whitney AUROC with ties counted half."""
    scores = np.concatenate([positive, negative])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def halueval(args, loaded) -> None:
    from tracefail.features.extract import ExtractConfig, Extractor
    from tracefail.model import Step

    path = SHARED / "halueval" / "halueval_qa_first1000.jsonl"
    items = [json.loads(line) for line in path.read_text().splitlines()[: args.n]]
    extractor = Extractor(loaded, ExtractConfig(window=args.window, layers=args.layers))
    values: dict[str, dict[str, list[float]]] = {}
    start, tokens = time.perf_counter(), 0
    for index, item in enumerate(items):
        prompt = f"{item['knowledge']}\n\nQuestion: {item['question']}"
        for kind in ("right_answer", "hallucinated_answer"):
            steps = [
                Step(step_idx=0, agent="user", content=prompt),
                Step(step_idx=1, agent="assistant", content=item[kind]),
            ]
            result = extractor.extract(steps)
            tokens += result.tokens
            for step, name, value in result.rows:
                if step == 1 and not PER_LAYER.search(name) and not name.startswith("dyn."):
                    values.setdefault(name, {}).setdefault(kind, [None] * len(items))[index] = value
    elapsed = time.perf_counter() - start
    print(
        f"\nHaluEval QA: {len(items)} items x 2 answers, {loaded.name}, window {args.window}, "
        f"layers {args.layers}; {tokens} tokens in {elapsed:.0f} s"
    )
    table = []
    for name, by_kind in values.items():
        right = np.array([np.nan if v is None else v for v in by_kind.get("right_answer", [])], dtype=float)
        wrong = np.array(
            [np.nan if v is None else v for v in by_kind.get("hallucinated_answer", [])], dtype=float
        )
        if len(right) != len(items) or len(wrong) != len(items):
            continue
        keep = ~(np.isnan(right) | np.isnan(wrong))
        if keep.sum() < 10:
            continue
        right, wrong = right[keep], wrong[keep]
        point = auroc(wrong, right)
        rng = np.random.default_rng(args.seed)  # the same resamples for every feature
        samples = []
        for _ in range(args.boot):
            b = rng.integers(0, len(right), len(right))
            samples.append(auroc(wrong[b], right[b]))
        low, high = np.percentile(samples, [2.5, 97.5])
        table.append((abs(point - 0.5), name, point, low, high, int(keep.sum())))
    print(f"  {'feature':<34} {'AUROC':>6}  {'95% CI':>15}  n   (hallucinated = positive)")
    for _, name, point, low, high, n in sorted(table, reverse=True):
        print(f"  {name:<34} {point:6.3f}  [{low:.3f}, {high:.3f}]  {n}")


def whowhen(args, loaded) -> None:
    from tracefail.services.features import extract_features
    from tracefail.services.ingest import ingest
    from tracefail.store import Database
    from tracefail.store import features as feature_store
    from tracefail.store import traces as trace_store

    db = Database(args.db)
    ingest(db, [SHARED / "whowhen-algorithm-generated"])
    chosen = trace_store.trace_ids(db, args.whowhen_traces)
    start = time.perf_counter()
    report = extract_features(db, loaded=loaded, window=args.window, layers=args.layers, trace_ids=chosen)
    elapsed = time.perf_counter() - start
    frame = feature_store.feature_frame(db, trace_ids=chosen, model=loaded.name)
    truth, n_steps = {}, {}
    for trace_id in chosen:
        record = trace_store.get_trace(db, trace_id)
        steps = [a["step_idx"] for a in record["attributions"] if a["step_idx"] is not None]
        if steps:
            truth[trace_id] = steps[0]
            n_steps[trace_id] = record["trace"]["n_steps"]
    per_trace: dict[str, dict[str, dict[int, float]]] = {}
    for row in frame.iter_rows(named=True):
        if row["step_idx"] < 0 or PER_LAYER.search(row["name"]) or row["name"].startswith("len.parts"):
            continue
        per_trace.setdefault(row["trace_id"], {}).setdefault(row["name"], {})[row["step_idx"]] = row["value"]
    traces = [t for t in truth if t in per_trace]
    print(
        f"\nWho&When algorithm-generated: {len(traces)} traces with a mistake step; extracted "
        f"{report.traces} now ({report.skipped} already in {args.db}), "
        f"{report.tokens} tokens in {elapsed:.0f} s"
    )
    common = Counter(truth[t] for t in traces).most_common(1)[0][0]
    random_acc = float(np.mean([1 / n_steps[t] for t in traces]))
    rng = random.Random(args.seed)
    sampled = np.mean([[rng.randrange(n_steps[t]) == truth[t] for t in traces] for _ in range(1000)])
    print(
        f"  baselines: random step {random_acc:.3f} (expected; simulated {sampled:.3f}), "
        f"most common step ({common}) {np.mean([truth[t] == common for t in traces]):.3f}, "
        f"first step {np.mean([truth[t] == 0 for t in traces]):.3f}"
    )
    names = sorted({name for t in traces for name in per_trace[t]})
    rows = []
    for name in names:
        for label, pick in (("argmax", max), ("argmin", min)):
            hits, counted = 0, 0
            for t in traces:
                series = per_trace[t].get(name)
                if not series:
                    continue
                counted += 1
                hits += pick(series, key=lambda step, s=series: (s[step], -step)) == truth[t]
            if counted:
                rows.append((hits / counted, name, label, counted))
    print(f"  {'feature':<36} {'pick':<6} {'exact':>6}  n")
    for accuracy, name, label, counted in sorted(rows, reverse=True)[: args.top]:
        print(f"  {name:<36} {label:<6} {accuracy:6.3f}  {counted}")
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="HaluEval items (each gives 2 answers)")
    parser.add_argument("--whowhen-traces", type=int, default=126)
    parser.add_argument("--model", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--window", type=int, default=2048)
    parser.add_argument("--layers", default="all")
    parser.add_argument("--db", default="/tmp/tracefail-whowhen-features.duckdb")
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-halueval", action="store_true")
    parser.add_argument("--skip-whowhen", action="store_true")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # results appear as they come, even when piped
    from tracefail.features.loading import load_causal_lm

    loaded = load_causal_lm(args.model, device=args.device)
    if not args.skip_halueval:
        halueval(args, loaded)
    if not args.skip_whowhen:
        whowhen(args, loaded)


if __name__ == "__main__":
    main()
