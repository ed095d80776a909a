"""Learn where failures begin from the corpus's own attributions (`tracefail train`), show how
accuracy grows with labels, and order unlabelled failures by how much a label would help
(`tracefail review`). Every accuracy is printed beside the strong structural baselines."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from tracefail.analysis.attribution import Gold, Hits, TraceSteps, baseline_hits, top_k_recall
from tracefail.analysis.ranker import LinearRanker, TraceRows, cross_validate, fit, fit_temperature, softmax
from tracefail.analysis.step_features import FEATURES, StepRow, trace_features
from tracefail.store import Database
from tracefail.store.attribution import (
    attribution_sources,
    reference_attributions,
    steps_for,
    unattributed_failures,
)
from tracefail.store.features import feature_frame

RANKER_VERSION = "steps-v1"


class TrainError(ValueError):
    """Nothing to learn from (no reference attributions, too few traces); one line for the user."""


def reference_pattern(reference: str) -> str:
    """dataset -> every dataset:*, human -> every human:*, anything else is one exact source."""
    return {"dataset": "dataset:%", "human": "human:%"}.get(reference, reference)


@dataclass(frozen=True)
class Score:
    value: float
    low: float
    high: float
    diff: float | None = None  # the ranker minus this method, paired over the same traces
    diff_low: float | None = None
    diff_high: float | None = None


@dataclass(frozen=True)
class MethodRow:
    name: str
    agent: Score
    step: Score
    within1: Score
    within3: Score
    top3: Score | None = None


@dataclass(frozen=True)
class Corpus:
    """Traces with a reference attribution: their steps, rule inputs and gold."""

    steps: dict[str, list[StepRow]]
    rules: list[TraceSteps]
    gold: list[Gold]

    @property
    def trace_ids(self) -> list[str]:
        return [t.trace_id for t in self.rules]

    def restricted(self, keep: set[str]) -> Corpus:
        """Only the traces in `keep`, so two methods are compared on the same traces."""
        pairs = [(r, g) for r, g in zip(self.rules, self.gold, strict=True) if r.trace_id in keep]
        return Corpus(
            {t: s for t, s in self.steps.items() if t in keep}, [r for r, _ in pairs], [g for _, g in pairs]
        )


def _step_rows(frame: pl.DataFrame) -> dict[str, list[StepRow]]:
    out: dict[str, list[StepRow]] = defaultdict(list)
    for row in frame.iter_rows(named=True):
        out[row["trace_id"]].append(
            StepRow(row["step_idx"], row["agent"], row["role"], row["kind"], row["content"])
        )
    return out


def load_corpus(db: Database, reference: str) -> Corpus:
    refs = reference_attributions(db, reference_pattern(reference))
    if not refs.height:
        raise TrainError(f"no attributions with a step from --reference {reference!r} in this corpus")
    steps = _step_rows(steps_for(db, refs["trace_id"].to_list()))
    rules, gold = [], []
    for row in refs.iter_rows(named=True):
        trace = steps.get(row["trace_id"], [])
        if not 0 <= row["step_idx"] < len(trace):
            continue  # the reference names a step the trace does not have: nothing to learn
        rules.append(TraceSteps.from_steps(row["trace_id"], [(s.agent, s.role, s.kind) for s in trace]))
        gold.append(Gold(row["step_idx"], row["agent"]))
    return Corpus(dict(steps), rules, gold)


def lm_feature_columns(
    db: Database, trace_ids: Sequence[str]
) -> tuple[list[str], dict[tuple[str, int], dict[str, float]]]:
    """The stored LM step features (from the model with the most rows), as name -> value per step."""
    frame = feature_frame(db, trace_ids=trace_ids).filter(pl.col("step_idx") >= 0)
    if not frame.height:
        return [], {}
    model = frame.group_by("model").len().sort(["len", "model"], descending=[True, False])["model"][0]
    frame = frame.filter(pl.col("model") == model)
    names = sorted(frame["name"].unique().to_list())
    values: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for trace_id, step, name, value in frame.select("trace_id", "step_idx", "name", "value").iter_rows():
        values[(trace_id, step)][name] = value
    return [f"lm.{n}" for n in names], values


def feature_rows(corpus: Corpus, lm: tuple[list[str], dict] | None = None) -> list[TraceRows]:
    out = []
    for rules, gold in zip(corpus.rules, corpus.gold, strict=True):
        x = trace_features(corpus.steps[rules.trace_id])
        if lm and lm[0]:
            names, values = lm
            extra = np.array(
                [
                    [values.get((rules.trace_id, i), {}).get(n[3:], np.nan) for n in names]
                    for i in range(len(x))
                ]
            )
            x = np.hstack([x, extra])
        out.append(TraceRows(rules.trace_id, x, gold.step))
    return out


def _score(summary: dict[str, dict[str, float]], name: str) -> Score:
    return Score(**summary[name])


def _row(name: str, hits: Hits, reps: int, ranker: Hits | None, top3: np.ndarray | None = None) -> MethodRow:
    """diff: the ranker minus this method, paired over the same traces."""
    summary = hits.summary(reps)
    if ranker is not None:
        paired = ranker.summary(reps, hits)
        summary = {
            k: {**v, **{d: paired[k][d] for d in ("diff", "diff_low", "diff_high")}}
            for k, v in summary.items()
        }
    top = None
    if top3 is not None:
        top = Score(**Hits(top3, top3, top3, top3).summary(reps)["step"])
    return MethodRow(
        name,
        agent=_score(summary, "agent"),
        step=_score(summary, "step"),
        within1=_score(summary, "within1"),
        within3=_score(summary, "within3"),
        top3=top,
    )


@dataclass(frozen=True)
class TrainReport:
    reference: str
    n_traces: int
    n_steps: int
    folds: int
    rows: list[MethodRow]  # rankers first, then every baseline (diff: the ranker minus it)
    best_baseline: str
    features: list[str]
    lm_features: int  # LM features stored for these traces (0: the "with LM" row is absent)
    temperature: float
    model_path: str | None
    note: str


def _oof(
    corpus: Corpus, rows: list[TraceRows], features: Sequence[str], folds: int
) -> tuple[Hits, np.ndarray, list[np.ndarray]]:
    fold = cross_validate(rows, features, folds)
    scores = [fold.scores[t] for t in corpus.trace_ids]
    rankings = [list(np.argsort(-s, kind="stable")) for s in scores]
    guesses = [(int(r[0]), rules.agents[int(r[0])]) for r, rules in zip(rankings, corpus.rules, strict=True)]
    return Hits.of(guesses, corpus.gold), top_k_recall(rankings, corpus.gold), scores


def train(
    db: Database,
    *,
    reference: str = "dataset",
    output: Path | None = None,
    folds: int = 10,
    reps: int = 1000,
    lm_traces_only: bool = False,
) -> TrainReport:
    """Cross-validate the ranker (with and without stored LM features) beside the baselines, then
    fit it on every trace and save it. The saved model uses the cheap features only, so it can
    judge traces that have no LM features. `lm_traces_only` keeps only the traces with stored LM
    features, so "ranker" and "ranker+lm" are compared on the same traces when `features` ran on
    a subset."""
    corpus = load_corpus(db, reference)
    lm = lm_feature_columns(db, corpus.trace_ids)
    if lm_traces_only:
        corpus = corpus.restricted({trace for trace, _ in lm[1]})
    if len(corpus.rules) < 4:
        raise TrainError(
            f"only {len(corpus.rules)} traces with a usable attribution from {reference!r}"
            f"{' and stored LM features' if lm_traces_only else ''}; need at least 4"
        )
    cheap = feature_rows(corpus)
    hits, top3, scores = _oof(corpus, cheap, FEATURES, folds)
    rows = [_row("ranker", hits, reps, None, top3)]
    if lm[0]:
        lm_hits, lm_top3, _ = _oof(corpus, feature_rows(corpus, lm), [*FEATURES, *lm[0]], folds)
        rows.append(_row("ranker+lm", lm_hits, reps, hits, lm_top3))
    baselines = baseline_hits(corpus.rules, corpus.gold)
    rows += [_row(name, b, reps, hits) for name, b in baselines.items()]
    best = max(baselines, key=lambda n: float(baselines[n].step.mean()))
    temperature = fit_temperature(scores, [g.step or 0 for g in corpus.gold])
    model_path = None
    if output is not None:
        model = fit(cheap, FEATURES)
        summary = {
            "version": RANKER_VERSION,
            "reference": reference,
            "n_traces": len(cheap),
            "cv_folds": max(2, min(folds, len(cheap))),
            "cv_step_accuracy": float(hits.step.mean()),
            "cv_agent_accuracy": float(hits.agent.mean()),
        }
        model = LinearRanker(**{**model.__dict__, "temperature": temperature, "summary": summary})
        output.write_text(model.to_json())
        model_path = str(output)
    return TrainReport(
        reference=reference,
        n_traces=len(cheap),
        n_steps=sum(len(r.x) for r in cheap),
        folds=max(2, min(folds, len(cheap))),
        rows=rows,
        best_baseline=best,
        features=list(FEATURES),
        lm_features=len(lm[0]),
        temperature=temperature,
        model_path=model_path,
        note="exact match on 0-based steps; CIs: 95% bootstrap over traces; diff = ranker minus the method, "
        "paired; most_common_step/most_common_position use the gold of these same traces (an oracle floor); "
        "random is the expected accuracy of a uniform guess",
    )


@dataclass(frozen=True)
class CurvePoint:
    n_train: int
    step: Score
    agent: Score


def learning_curve(
    db: Database,
    *,
    reference: str = "dataset",
    sizes: Sequence[int] = (10, 20, 40, 80),
    folds: int = 10,
    reps: int = 1000,
) -> list[CurvePoint]:
    """Held-out accuracy when the ranker learns from only n labelled traces: each fold's test
    traces are scored by a model fitted on n traces drawn from the other folds."""
    from sklearn.model_selection import KFold

    corpus = load_corpus(db, reference)
    rows = feature_rows(corpus)
    k = max(2, min(folds, len(rows)))
    rng = np.random.default_rng(0)
    points = []
    splits = list(KFold(k, shuffle=True, random_state=0).split(np.arange(len(rows))))
    for size in [s for s in sizes if s < len(rows)] + [len(rows) * (k - 1) // k]:
        guesses: dict[int, tuple[int, str | None]] = {}
        for train_idx, test_idx in splits:
            chosen = rng.choice(train_idx, size=min(size, len(train_idx)), replace=False)
            model = fit([rows[i] for i in chosen], FEATURES)
            for i in test_idx:
                top = int(np.argmax(model.scores(rows[i].x)))
                guesses[i] = (top, corpus.rules[i].agents[top])
        hits = Hits.of([guesses[i] for i in range(len(rows))], corpus.gold)
        summary = hits.summary(reps)
        points.append(CurvePoint(size, _score(summary, "step"), _score(summary, "agent")))
    return points


@dataclass(frozen=True)
class ReviewItem:
    trace_id: str
    uncertainty: float  # 1 - the ranker's top step probability
    disagreement: int  # distinct root-cause steps named by the sources that attributed this trace
    top_steps: list[int]


def review_queue(
    db: Database, model: LinearRanker, *, reference: str = "human", limit: int = 20
) -> list[ReviewItem]:
    """Unlabelled failed traces, most useful to label first: where sources disagree, then where
    the ranker is least sure (its top step's probability is lowest)."""
    pattern = reference_pattern(reference)
    todo = unattributed_failures(db, pattern)
    steps = _step_rows(steps_for(db, todo))
    sources = attribution_sources(db, "%")
    named = sources.group_by("trace_id").agg(pl.col("step_idx").n_unique().alias("n"))
    disagreement = dict(named.iter_rows())
    items = []
    for trace_id in todo:
        if not steps.get(trace_id):
            continue
        p = softmax(model.scores(trace_features(steps[trace_id])) / model.temperature)
        order = [int(i) for i in np.argsort(-p, kind="stable")]
        items.append(
            ReviewItem(trace_id, float(1 - p[order[0]]), int(disagreement.get(trace_id, 0)), order[:3])
        )
    items.sort(key=lambda i: (-i.disagreement, -i.uncertainty, i.trace_id))
    return items[:limit]


def load_ranker(path: Path) -> LinearRanker:
    try:
        return LinearRanker.from_json(path.read_text())
    except (OSError, ValueError, TypeError) as exc:
        raise TrainError(f"{path}: {exc}") from exc


@dataclass(frozen=True)
class ReviewPanel:
    """What the browser's review view shows: the queue, where its ranker came from, and the
    learning curve of the user's own labels beside the best structural rule."""

    items: list[ReviewItem]
    ranker: str
    reference: str
    labelled: int  # traces with a usable attribution from `reference`
    curve: list[CurvePoint]
    best_baseline: str | None
    best_baseline_step: float | None


def _fitted_ranker(db: Database, references: Sequence[str]) -> tuple[LinearRanker, str]:
    for reference in references:
        try:
            corpus = load_corpus(db, reference)
        except TrainError:
            continue
        if len(corpus.rules) >= 4:
            return fit(
                feature_rows(corpus), FEATURES
            ), f"fitted now on {len(corpus.rules)} {reference} traces"
    raise TrainError(
        "no ranker to order the queue: run `tracefail train`, or mark the mistake step (m) in 4 traces"
    )


def review_panel(
    db: Database, *, ranker_path: Path | None, reference: str = "human", limit: int = 50, reps: int = 200
) -> ReviewPanel:
    """The review queue ordered by a saved ranker (else one fitted on `reference`, then on the
    dataset's attributions), and the learning curve of `reference` once 4 traces are labelled."""
    if ranker_path is not None and ranker_path.exists():
        model, origin = load_ranker(ranker_path), str(ranker_path)
    else:
        model, origin = _fitted_ranker(db, [reference, "dataset"])
    items = review_queue(db, model, reference=reference, limit=limit)
    try:
        corpus = load_corpus(db, reference)
    except TrainError:
        return ReviewPanel(items, origin, reference, 0, [], None, None)
    if len(corpus.rules) < 4:
        return ReviewPanel(items, origin, reference, len(corpus.rules), [], None, None)
    baselines = baseline_hits(corpus.rules, corpus.gold)
    best = max(baselines, key=lambda n: float(baselines[n].step.mean()))
    curve = learning_curve(db, reference=reference, reps=reps)
    return ReviewPanel(
        items, origin, reference, len(corpus.rules), curve, best, float(baselines[best].step.mean())
    )
