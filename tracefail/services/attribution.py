"""Learn where failures begin from the corpus's own attributions (`tracefail train`), show how
accuracy grows with labels, and order unlabelled failures by how much a label would help
(`tracefail review`). Every accuracy is printed beside the strong structural baselines."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from tracefail.analysis.attribution import Gold, Hits, TraceSteps, baseline_hits, top_k_recall
from tracefail.analysis.ranker import LinearRanker, TraceRows, cross_validate, fit, fit_temperature, softmax
from tracefail.analysis.step_features import RANKER_FEATURES, StepRow, columns, trace_features
from tracefail.analysis.transfer import (
    VALIDATION_RUNS,
    Profile,
    RunShape,
    Shift,
    profile,
    run_unlike,
    shift,
)
from tracefail.store import Database
from tracefail.store.attribution import (
    attribution_sources,
    reference_attributions,
    steps_for,
    trace_column,
    unattributed_failures,
    unvalidated,
)
from tracefail.store.features import feature_frame
from tracefail.store.traces import trace_ids as all_trace_ids

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
    tasks: dict[str, str | None]

    @property
    def trace_ids(self) -> list[str]:
        return [t.trace_id for t in self.rules]

    def restricted(self, keep: set[str]) -> Corpus:
        """Only the traces in `keep`, so two methods are compared on the same traces."""
        pairs = [(r, g) for r, g in zip(self.rules, self.gold, strict=True) if r.trace_id in keep]
        return Corpus(
            {t: s for t, s in self.steps.items() if t in keep},
            [r for r, _ in pairs],
            [g for _, g in pairs],
            {t: task for t, task in self.tasks.items() if t in keep},
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
    return Corpus(dict(steps), rules, gold, trace_column(db, [r.trace_id for r in rules], "task"))


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


def feature_rows(
    corpus: Corpus, lm: tuple[list[str], dict] | None = None, names: Sequence[str] = RANKER_FEATURES
) -> list[TraceRows]:
    """Each trace's step features (the `names` columns), plus the stored LM features when given."""
    idx = columns(names)
    out = []
    for rules, gold in zip(corpus.rules, corpus.gold, strict=True):
        x = trace_features(corpus.steps[rules.trace_id], corpus.tasks.get(rules.trace_id))[:, idx]
        if lm and lm[0]:
            lm_names, values = lm
            extra = np.array(
                [
                    [values.get((rules.trace_id, i), {}).get(n[3:], np.nan) for n in lm_names]
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
class GroupRow:
    """One held-out domain: the ranker fitted on every other domain, and the rules, on its traces."""

    group: str
    n_traces: int
    step: Score
    agent: Score
    rules_step: dict[str, float]  # first_worker_step, last_worker_step, last_worker_speaker (agent rule)
    rules_agent: dict[str, float]


@dataclass(frozen=True)
class TrainReport:
    reference: str
    n_traces: int
    n_steps: int
    folds: int
    split: str  # "10-fold by trace", or "held out by framework (3 groups)"
    rows: list[MethodRow]  # rankers first, then every baseline (diff: the ranker minus it)
    best_baseline: str
    features: list[str]
    lm_features: int  # LM features stored for these traces (0: the "with LM" row is absent)
    temperature: float
    model_path: str | None
    note: str
    # held out by group: K-fold CV on the same traces (diff: held-out minus it)
    in_domain: MethodRow | None = None
    groups: list[GroupRow] = field(default_factory=list)


HEADLINE_RULES = ("first_worker_step", "last_worker_step", "last_worker_speaker")


def parse_cv(text: str | int) -> tuple[int, str | None]:
    """`10` -> 10 folds by trace; `by-framework` (or by-COLUMN, by-metadata.KEY) -> one fold per value."""
    value = str(text).strip()
    if value.isdigit() and int(value) >= 2:
        return int(value), None
    if value.startswith("by-") and len(value) > 3:
        return 10, value.removeprefix("by-")
    raise TrainError(f"--cv {value!r}: use a number of folds (>= 2) or by-COLUMN (e.g. by-framework)")


def domain_groups(db: Database, corpus: Corpus, column: str) -> list[str]:
    """Each trace's value of `column`, in corpus order; at least two values or nothing to hold out."""
    try:
        values = trace_column(db, corpus.trace_ids, column)
    except ValueError as exc:
        raise TrainError(f"--cv by-{column}: {exc}") from None
    groups = [values.get(t) or "unknown" for t in corpus.trace_ids]
    if len(set(groups)) < 2:
        raise TrainError(
            f"--cv by-{column}: all {len(groups)} labelled traces have {column} {groups[0]!r}; holding out "
            "needs two values (try by-benchmark, by-llm or by-metadata.KEY)"
        )
    return groups


def _oof(
    corpus: Corpus,
    rows: list[TraceRows],
    features: Sequence[str],
    folds: int,
    groups: Sequence[str] | None = None,
) -> tuple[Hits, np.ndarray, list[np.ndarray]]:
    fold = cross_validate(rows, features, folds, groups=groups)
    scores = [fold.scores[t] for t in corpus.trace_ids]
    rankings = [list(np.argsort(-s, kind="stable")) for s in scores]
    guesses = [(int(r[0]), rules.agents[int(r[0])]) for r, rules in zip(rankings, corpus.rules, strict=True)]
    return Hits.of(guesses, corpus.gold), top_k_recall(rankings, corpus.gold), scores


def _held_out_baselines(corpus: Corpus, groups: Sequence[str]) -> dict[str, Hits]:
    """The rules per held-out group; the two "most common" rules learn only from the other groups."""
    order = np.arange(len(groups))
    out_index = np.empty(len(groups), dtype=int)
    pieces: dict[str, list[Hits]] = defaultdict(list)
    position = 0
    for group in sorted(set(groups)):
        inside = order[np.asarray(groups) == group]
        train_golds = [
            (corpus.gold[i], len(corpus.rules[i].agents)) for i in range(len(groups)) if groups[i] != group
        ]
        hits = baseline_hits([corpus.rules[i] for i in inside], [corpus.gold[i] for i in inside], train_golds)
        for name, h in hits.items():
            pieces[name].append(h)
        out_index[inside] = np.arange(position, position + len(inside))
        position += len(inside)

    def stitch(parts: list[Hits], name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])[out_index]

    return {
        rule: Hits(*(stitch(parts, m) for m in ("agent", "step", "within1", "within3")))
        for rule, parts in pieces.items()
    }


def _group_rows(groups: Sequence[str], hits: Hits, baselines: dict[str, Hits], reps: int) -> list[GroupRow]:
    out = []
    labels = np.asarray(groups)
    for group in sorted(set(groups)):
        m = labels == group
        mine = Hits(hits.agent[m], hits.step[m], hits.within1[m], hits.within3[m]).summary(reps)
        out.append(
            GroupRow(
                group,
                int(m.sum()),
                _score(mine, "step"),
                _score(mine, "agent"),
                {r: float(baselines[r].step[m].mean()) for r in HEADLINE_RULES[:2]},
                {r: float(baselines[r].agent[m].mean()) for r in HEADLINE_RULES},
            )
        )
    return out


def train(
    db: Database,
    *,
    reference: str = "dataset",
    output: Path | None = None,
    folds: int = 10,
    by: str | None = None,
    reps: int = 1000,
    lm_traces_only: bool = False,
) -> TrainReport:
    """Cross-validate the ranker (with and without stored LM features) beside the baselines, then
    fit it on every trace and save it with its training corpus's profile. The saved model uses
    the cheap features only, so it can judge traces that have no LM features. With `by` (a trace
    column), each value's traces are scored by a ranker fitted on the other values: accuracy on a
    system it never saw, printed beside in-domain K-fold CV on the same traces. `lm_traces_only`
    keeps only the traces with stored LM features, so "ranker" and "ranker+lm" are compared on the
    same traces when `features` ran on a subset."""
    corpus = load_corpus(db, reference)
    lm = lm_feature_columns(db, corpus.trace_ids)
    if lm_traces_only:
        corpus = corpus.restricted({trace for trace, _ in lm[1]})
    if len(corpus.rules) < 4:
        raise TrainError(
            f"only {len(corpus.rules)} traces with a usable attribution from {reference!r}"
            f"{' and stored LM features' if lm_traces_only else ''}; need at least 4"
        )
    groups = domain_groups(db, corpus, by) if by else None
    cheap = feature_rows(corpus)
    k = max(2, min(folds, len(cheap)))
    hits, top3, scores = _oof(corpus, cheap, RANKER_FEATURES, folds, groups)
    in_domain = None
    if groups is not None:
        cv_hits, cv_top3, scores = _oof(corpus, cheap, RANKER_FEATURES, folds)
        in_domain = _row(f"ranker, {k}-fold CV (in-domain)", cv_hits, reps, hits, cv_top3)
    rows = [_row("ranker" if groups is None else f"ranker, held out by {by}", hits, reps, None, top3)]
    if lm[0]:
        names = [*RANKER_FEATURES, *lm[0]]
        lm_hits, lm_top3, _ = _oof(corpus, feature_rows(corpus, lm), names, folds, groups)
        rows.append(_row("ranker+lm", lm_hits, reps, hits, lm_top3))
    baselines = (
        baseline_hits(corpus.rules, corpus.gold) if groups is None else _held_out_baselines(corpus, groups)
    )
    rows += [_row(name, b, reps, hits) for name, b in baselines.items()]
    best = max(baselines, key=lambda n: float(baselines[n].step.mean()))
    temperature = fit_temperature(scores, [g.step or 0 for g in corpus.gold])
    model_path = None
    if output is not None:
        model = fit(cheap, RANKER_FEATURES)
        summary = {
            "version": RANKER_VERSION,
            "reference": reference,
            "n_traces": len(cheap),
            "cv_folds": k,
            "cv_step_accuracy": float((in_domain.step if in_domain else rows[0].step).value),
            "cv_agent_accuracy": float((in_domain.agent if in_domain else rows[0].agent).value),
            "held_out_by": by,
            "held_out_step_accuracy": float(hits.step.mean()) if by else None,
            "profile": corpus_profile(db, corpus.steps, RANKER_FEATURES, corpus.tasks).to_dict(),
            "training_traces": corpus.trace_ids,
        }
        model = LinearRanker(**{**model.__dict__, "temperature": temperature, "summary": summary})
        output.write_text(model.to_json())
        model_path = str(output)
    split = f"{k}-fold CV by trace" if groups is None else f"held out by {by} ({len(set(groups))} groups)"
    oracle = (
        "use the gold of these same traces (an oracle floor)"
        if groups is None
        else "learn only from the other groups"
    )
    return TrainReport(
        reference=reference,
        n_traces=len(cheap),
        n_steps=sum(len(r.x) for r in cheap),
        folds=k if groups is None else len(set(groups)),
        split=split,
        rows=rows,
        best_baseline=best,
        features=list(RANKER_FEATURES),
        lm_features=len(lm[0]),
        temperature=temperature,
        model_path=model_path,
        note="exact match on 0-based steps; CIs: 95% bootstrap over traces; diff = ranker minus the method, "
        f"paired over the same traces; most_common_step/most_common_position {oracle}; "
        "random is the expected accuracy of a uniform guess",
        in_domain=in_domain,
        groups=_group_rows(groups, hits, baselines, reps) if groups is not None else [],
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
            model = fit([rows[i] for i in chosen], RANKER_FEATURES)
            for i in test_idx:
                top = int(np.argmax(model.scores(rows[i].x)))
                guesses[i] = (top, corpus.rules[i].agents[top])
        hits = Hits.of([guesses[i] for i in range(len(rows))], corpus.gold)
        summary = hits.summary(reps)
        points.append(CurvePoint(size, _score(summary, "step"), _score(summary, "agent")))
    return points


def model_scores(model: LinearRanker, steps: Sequence[StepRow], task: str | None = None) -> np.ndarray:
    """A saved ranker's score for every step (its own feature columns)."""
    return model.scores(trace_features(steps, task)[:, columns(model.features)])


def _shapes(db: Database, steps: dict[str, list[StepRow]]) -> dict[str, RunShape]:
    frameworks = trace_column(db, list(steps), "framework")
    return {
        t: RunShape(
            frameworks.get(t),
            len({s.agent for s in rows if s.agent}),
            len(rows),
            [len(s.content or "") for s in rows],
        )
        for t, rows in steps.items()
    }


def corpus_profile(
    db: Database, steps: dict[str, list[StepRow]], features: Sequence[str], tasks: dict[str, str | None]
) -> Profile:
    """The profile a ranker keeps of the corpus it learned on (and that a target is compared with)."""
    idx = columns(features)
    xs = [trace_features(rows, tasks.get(t))[:, idx] for t, rows in steps.items() if rows]
    x = np.vstack(xs) if xs else np.zeros((0, len(features)))
    return profile(list(_shapes(db, steps).values()), x, features)


@dataclass(frozen=True)
class TransferCheck:
    """Whether a saved ranker's accuracy may be claimed on these traces."""

    shift: Shift | None  # None: the ranker was saved without a profile
    validated: bool
    labelled: int  # traces here with a reference attribution the ranker did not train on
    ranker_step: float | None  # its step accuracy on them
    best_rule: str | None
    best_rule_step: float | None
    message: str

    def metadata(self) -> dict[str, object]:
        """What every attribution of the ranker stores about it."""
        return {"validated": self.validated, "transfer": self.message}


def transfer_check(db: Database, model: LinearRanker, trace_ids: Sequence[str]) -> TransferCheck:
    """Compare these traces with the ranker's training corpus; where they differ beyond the
    thresholds, the ranker counts as validated only once VALIDATION_RUNS of them carry a human or
    dataset attribution and its step accuracy on those reaches the best worker-step rule."""
    steps = _step_rows(steps_for(db, trace_ids))
    tasks = trace_column(db, list(steps), "task")
    saved = model.summary.get("profile")
    trained_on = set(model.summary.get("training_traces") or [])
    refs = pl.concat([reference_attributions(db, reference_pattern(r)) for r in ("human", "dataset")]).unique(
        "trace_id", keep="first", maintain_order=True
    )
    labelled = [
        (r["trace_id"], Gold(r["step_idx"], r["agent"]))
        for r in refs.iter_rows(named=True)
        if r["trace_id"] in steps
        and r["trace_id"] not in trained_on
        and 0 <= r["step_idx"] < len(steps[r["trace_id"]])
    ]
    ranker_step = best = best_step = None
    if labelled:
        guesses, rules = [], []
        for trace_id, _ in labelled:
            rows = steps[trace_id]
            top = int(np.argmax(model_scores(model, rows, tasks.get(trace_id))))
            guesses.append((top, rows[top].agent))
            rules.append(TraceSteps.from_steps(trace_id, [(s.agent, s.role, s.kind) for s in rows]))
        golds = [g for _, g in labelled]
        ranker_step = float(Hits.of(guesses, golds).step.mean())
        rule_hits = baseline_hits(rules, golds)
        best = max(HEADLINE_RULES[:2], key=lambda n: (float(rule_hits[n].step.mean()), n))
        best_step = float(rule_hits[best].step.mean())
    confirmed = (
        len(labelled) >= VALIDATION_RUNS
        and ranker_step is not None
        and best_step is not None
        and ranker_step >= best_step
    )
    if saved is None:
        gap = None
        reasons = ["the ranker file has no training profile (saved by an older `tracefail train`)"]
    else:
        train_profile = Profile.from_dict(saved)
        gap = shift(train_profile, corpus_profile(db, steps, model.features, tasks))
        reasons = gap.reasons
    validated = not reasons or confirmed
    origin = f"trained on {model.summary.get('n_traces', '?')} runs of {_frameworks(saved)}"
    if not reasons:
        message = f"ranker {origin}; this corpus is within the thresholds of its training corpus"
    elif confirmed:
        message = (
            f"ranker {origin}; this corpus differs ({'; '.join(reasons)}) but on {len(labelled)} labelled "
            f"runs here its step accuracy {ranker_step:.3f} reaches {best} {best_step:.3f}"
        )
    else:
        found = (
            f"{len(labelled)} labelled here, step accuracy {ranker_step:.3f} vs {best} {best_step:.3f}"
            if labelled
            else "none labelled here"
        )
        message = (
            f"ranker {origin}; this corpus differs: {'; '.join(reasons)}. Its attributions are stored as "
            f"not validated on this corpus until {VALIDATION_RUNS} labelled runs here confirm it ({found}); "
            "`tracefail review` lists the runs to label first"
        )
    return TransferCheck(gap, validated, len(labelled), ranker_step, best, best_step, message)


def unvalidated_note(db: Database, source: str | None) -> str | None:
    """For `eval`: the evaluated attribution source's attributions stored as not validated here."""
    if source is None:
        return None
    count, why = unvalidated(db, source)
    if not count:
        return None
    return (
        f"{count} attributions of {source} were stored as not validated on this corpus ({why}); "
        "the attribution accuracy below, against this corpus's labels, is what confirms them or not"
    )


def _frameworks(saved: dict | None) -> str:
    if not saved:
        return "an unrecorded corpus"
    return ", ".join(f"{name} ({n})" for name, n in saved["frameworks"].items())


@dataclass(frozen=True)
class ReviewItem:
    trace_id: str
    uncertainty: float | None  # 1 - the ranker's top step probability (None: no ranker loaded)
    disagreement: int  # distinct root-cause steps named by the sources that attributed this trace
    top_steps: list[int]  # the ranker's three likeliest steps (empty without a ranker)
    validates: bool = False  # unlike the ranker's training runs: its label tells whether the ranker transfers


def review_queue(
    db: Database, model: LinearRanker | None, *, reference: str = "human", limit: int = 20
) -> list[ReviewItem]:
    """Unlabelled failed traces, most useful to label first: the runs unlike the ranker's
    training runs (their labels are what validates it on this corpus, or not); then where sources
    disagree, then where the ranker is least sure (lowest top-step probability). Without a ranker:
    where sources disagree, then failed before unknown outcome, then trace id."""
    pattern = reference_pattern(reference)
    todo = unattributed_failures(db, pattern)
    sources = attribution_sources(db, "%")
    named = sources.group_by("trace_id").agg(pl.col("step_idx").n_unique().alias("n"))
    disagreement = dict(named.iter_rows())
    if model is None:
        outcome = trace_column(db, todo, "outcome")
        plain = [ReviewItem(t, None, int(disagreement.get(t, 0)), []) for t in todo]
        plain.sort(key=lambda i: (-i.disagreement, outcome.get(i.trace_id) != "failure", i.trace_id))
        return plain[:limit]
    steps = _step_rows(steps_for(db, todo))
    tasks = trace_column(db, list(steps), "task")
    saved = model.summary.get("profile")
    shapes = _shapes(db, steps) if saved else {}
    items = []
    for trace_id in todo:
        if not steps.get(trace_id):
            continue
        p = softmax(model_scores(model, steps[trace_id], tasks.get(trace_id)) / model.temperature)
        order = [int(i) for i in np.argsort(-p, kind="stable")]
        unlike = bool(saved) and run_unlike(Profile.from_dict(saved), shapes[trace_id])  # type: ignore[arg-type]
        items.append(
            ReviewItem(
                trace_id, float(1 - p[order[0]]), int(disagreement.get(trace_id, 0)), order[:3], unlike
            )
        )
    items.sort(key=lambda i: (not i.validates, -i.disagreement, -(i.uncertainty or 0.0), i.trace_id))
    return items[:limit]


DEFAULT_RANKER = Path("ranker.json")


def saved_ranker(path: Path | None) -> Path | None:
    """The ranker file to use: the one named, else ./ranker.json where `train` saves by default,
    else None (one is fitted on the labels, or the queue is ordered without a ranker)."""
    if path is not None:
        return path
    return DEFAULT_RANKER if DEFAULT_RANKER.exists() else None


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
    transfer: TransferCheck | None = None  # a saved ranker against this corpus (None: fitted on it now)

    @property
    def order(self) -> str:
        """One line saying what ordered the queue."""
        return self.ranker if self.ranker == NO_RANKER else f"ordered by the ranker {self.ranker}"


NO_RANKER = (
    "no ranker loaded (fewer than 4 attributed traces to fit one): queue ordered by source "
    "disagreement, failed runs first, then trace id; train one with `tracefail train -o ranker.json` "
    "and pass --model ranker.json, or mark the mistake step (m) in 4 traces"
)


def _fitted_ranker(db: Database, references: Sequence[str]) -> tuple[LinearRanker | None, str]:
    for reference in references:
        try:
            corpus = load_corpus(db, reference)
        except TrainError:
            continue
        if len(corpus.rules) >= 4:
            return fit(
                feature_rows(corpus), RANKER_FEATURES
            ), f"fitted now on {len(corpus.rules)} {reference} traces"
    return None, NO_RANKER


def review_panel(
    db: Database, *, ranker_path: Path | None, reference: str = "human", limit: int = 50, reps: int = 200
) -> ReviewPanel:
    """The review queue ordered by a saved ranker (else one fitted on `reference`, then on the
    dataset's attributions, else by disagreement without a ranker), and the learning curve of
    `reference` once 4 traces are labelled. A named ranker file that cannot be read is an error."""
    model: LinearRanker | None
    if ranker_path is not None:
        model, origin = load_ranker(ranker_path), str(ranker_path)
    else:
        model, origin = _fitted_ranker(db, [reference, "dataset"])
    items = review_queue(db, model, reference=reference, limit=limit)
    transfer = transfer_check(db, model, all_trace_ids(db)) if model is not None and ranker_path else None
    try:
        corpus = load_corpus(db, reference)
    except TrainError:
        return ReviewPanel(items, origin, reference, 0, [], None, None, transfer)
    if len(corpus.rules) < 4:
        return ReviewPanel(items, origin, reference, len(corpus.rules), [], None, None, transfer)
    baselines = baseline_hits(corpus.rules, corpus.gold)
    best = max(baselines, key=lambda n: float(baselines[n].step.mean()))
    curve = learning_curve(db, reference=reference, reps=reps)
    return ReviewPanel(
        items, origin, reference, len(corpus.rules), curve, best, float(baselines[best].step.mean()), transfer
    )
