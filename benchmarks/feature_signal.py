"""Do the step features carry signal? HaluEval QA AUROC and Who&When mistake-step accuracy.

    .venv/bin/python benchmarks/feature_signal.py [--n 200] [--whowhen-traces 126] [--model ID]
        [--window 2048] [--layers all] [--db /tmp/whowhen-features.duckdb] [--boot 1000]
        [--length-bins 10] [--cv 10]

1. HaluEval QA (../shared/data/halueval, first 1,000 items): the knowledge + question is a user
   turn and the answer an assistant turn; the right and the hallucinated answer of each of the
   first `--n` items are scored separately. For every step-level summary feature: AUROC of
   telling hallucinated (1) from right (0), with a 95% bootstrap CI over items (pairs resampled
   together). Polarity is not assumed: AUROC < 0.5 means lower values flag hallucination.
   Right answers are short phrases, hallucinated ones often full sentences, so the step length
   itself separates them; `len.step_tokens` is printed as the baseline to beat, and every feature
   is also scored length-controlled, as the "Self-Attention as Transport" paper does:
   (a) strata: AUROC within quantile bins of the step's token count, averaged over the bins that
   hold both classes (weighted by the pairs they compare); (b) resid: AUROC of the feature after
   regressing out log step tokens and log context tokens (least squares on both classes, labels
   unused). The CIs resample items with the same draws for all three.
2. Who&When algorithm-generated (../shared/data/whowhen-algorithm-generated): the traces are
   ingested into `--db` and features extracted (resumable); the mistake step is predicted as
   the step where a feature peaks (argmax) or dips (argmin); exact-match accuracy is printed
   beside the trivial baselines (random step, most common step, first step). Picking the best
   of many features x 2 directions on the same data is optimistic: read it as exploratory.
   `--whowhen-traces N` takes the N shortest traces (features are slow on a CPU). Then the ranker
   ablation: `tracefail train`'s step ranker with and without the LM features, cross-validated
   on the same traces (those with features), with paired differences.
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
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([positive, negative]))
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def stratified_auroc(wrong: np.ndarray, right: np.ndarray, bins_w: np.ndarray, bins_r: np.ndarray) -> float:
    """Length control (a): AUROC within each length bin that holds both classes, averaged with
    weights n_pos * n_neg (the pairs compared); pairs across bins are never compared."""
    total, weight = 0.0, 0
    for b in np.intersect1d(bins_w, bins_r):
        w, r = wrong[bins_w == b], right[bins_r == b]
        total += auroc(w, r) * len(w) * len(r)
        weight += len(w) * len(r)
    return total / weight if weight else float("nan")


def residualise(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Length control (b): the feature minus its least-squares fit on log step and context length
    (fitted on both classes together; the labels are not used)."""
    design = np.column_stack([np.ones(len(values)), np.log1p(lengths)])
    coef, *_ = np.linalg.lstsq(design, values, rcond=None)
    return values - design @ coef


def _three_aurocs(arrays: tuple[np.ndarray, ...], b: np.ndarray) -> tuple[float, float, float]:
    """Plain, length-stratified and length-residualised AUROC on the items `b` (a resample)."""
    w, r, bw, br, rw, rr = (a[b] for a in arrays)
    return auroc(w, r), stratified_auroc(w, r, bw, br), auroc(rw, rr)


def _ci(samples: list[float]) -> tuple[float, float]:
    low, high = np.nanpercentile(samples, [2.5, 97.5])
    return float(low), float(high)


def halueval(args, loaded) -> None:
    from tracefail.features.extract import ExtractConfig, Extractor
    from tracefail.model import Step

    path = Path(args.data) / "halueval" / "halueval_qa_first1000.jsonl"
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

    def column(name: str, kind: str) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in values[name][kind]], dtype=float)

    length = {k: column("len.step_tokens", k) for k in ("right_answer", "hallucinated_answer")}
    context = {k: column("len.context_tokens", k) for k in ("right_answer", "hallucinated_answer")}
    pooled = np.concatenate(list(length.values()))
    edges = np.unique(np.nanquantile(pooled, np.linspace(0, 1, args.length_bins + 1))[1:-1])
    table = []
    for name, by_kind in values.items():
        if len(by_kind) != 2 or name.startswith("len."):
            continue
        right, wrong = column(name, "right_answer"), column(name, "hallucinated_answer")
        keep = ~(np.isnan(right) | np.isnan(wrong))
        if keep.sum() < 10:
            continue
        n = int(keep.sum())
        r, w = right[keep], wrong[keep]
        lr, lw = length["right_answer"][keep], length["hallucinated_answer"][keep]
        cr, cw = context["right_answer"][keep], context["hallucinated_answer"][keep]
        resid = residualise(np.concatenate([w, r]), np.column_stack([np.r_[lw, lr], np.r_[cw, cr]]))
        rw, rr = resid[:n], resid[n:]
        bw, br = np.digitize(lw, edges), np.digitize(lr, edges)

        arrays = (w, r, bw, br, rw, rr)
        point = _three_aurocs(arrays, np.arange(n))
        rng = np.random.default_rng(args.seed)  # the same resamples for every feature
        boot = [_three_aurocs(arrays, rng.integers(0, n, n)) for _ in range(args.boot)]
        cis = [_ci([s[i] for s in boot]) for i in range(3)]
        table.append((abs(point[2] - 0.5), name, point, cis, n))
    pairs_in_bins = sum(
        int((np.digitize(length["hallucinated_answer"], edges) == b).sum())
        * int((np.digitize(length["right_answer"], edges) == b).sum())
        for b in range(len(edges) + 1)
    )
    base = auroc(length["hallucinated_answer"], length["right_answer"])
    print(
        f"  length alone (len.step_tokens): AUROC {base:.3f}; {len(edges) + 1} length bins (quantiles of "
        f"both answers' step tokens) compare {pairs_in_bins} of {len(items) ** 2} hallucinated x right pairs"
    )
    print(
        f"  {'feature':<30} {'AUROC [95% CI]':<22} {'LC strata [95% CI]':<22} "
        f"{'LC resid [95% CI]':<22} n   (hallucinated = positive; sorted by |LC resid - 0.5|)"
    )
    for _, name, point, cis, n in sorted(table, key=lambda row: row[0], reverse=True)[: args.top]:
        cells = [f"{p:.3f} [{lo:.3f}, {hi:.3f}]" for p, (lo, hi) in zip(point, cis, strict=True)]
        print(f"  {name:<30} {cells[0]:<22} {cells[1]:<22} {cells[2]:<22} {n}")


def whowhen(args, loaded) -> None:
    from tracefail.services.features import extract_features
    from tracefail.services.ingest import ingest
    from tracefail.store import Database
    from tracefail.store import features as feature_store
    from tracefail.store import traces as trace_store

    db = Database(args.db)
    ingest(db, [Path(args.data) / "whowhen-algorithm-generated"])
    shortest_first = db.rows(
        "SELECT trace_id FROM steps GROUP BY trace_id ORDER BY sum(length(coalesce(content, ''))), trace_id"
    )
    chosen = [t for (t,) in shortest_first][: args.whowhen_traces]
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
    ranker_ablation(db, args)
    db.close()


def ranker_ablation(db, args) -> None:
    """The trained step ranker with and without the LM features, cross-validated on the same
    traces (those with stored LM features): do the features earn their place?"""
    from tracefail.services.attribution import TrainError, train

    try:
        report = train(db, folds=args.cv, reps=args.boot, lm_traces_only=True)
    except TrainError as exc:
        print(f"  ranker ablation skipped: {exc}")
        return
    print(
        f"\n  ranker ablation: {report.n_traces} traces ({report.n_steps} steps) with LM features, "
        f"{report.folds}-fold CV by trace, {report.lm_features} LM features; Δ = ranker minus the row, paired"
    )
    print(f"  {'method':<31} {'step [95% CI]':<22} {'Δ step [95% CI]':<26} {'agent [95% CI]':<22} Δ agent")
    for row in [r for r in report.rows if r.name.startswith("ranker")] + [
        next(r for r in report.rows if r.name == report.best_baseline)
    ]:
        cells = []
        for score in (row.step, row.agent):
            cells.append(f"{score.value:.3f} [{score.low:.3f}, {score.high:.3f}]")
            diff = (
                ""
                if score.diff is None
                else f"{score.diff:+.3f} [{score.diff_low:+.3f}, {score.diff_high:+.3f}]"
            )
            cells.append(diff)
        print(f"  {row.name:<31} {cells[0]:<22} {cells[1]:<26} {cells[2]:<22} {cells[3]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="HaluEval items (each gives 2 answers)")
    parser.add_argument("--whowhen-traces", type=int, default=126)
    parser.add_argument("--model", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--window", type=int, default=2048)
    parser.add_argument("--layers", default="all")
    parser.add_argument("--db", default="/tmp/tracefail-whowhen-features.duckdb")
    parser.add_argument("--data", default=str(SHARED), help="The shared data folder (halueval, whowhen-...)")
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--length-bins", type=int, default=10, help="HaluEval length strata (quantiles)")
    parser.add_argument("--cv", type=int, default=10, help="Who&When ranker ablation folds")
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
