"""Judge vs. reference labels: agreement (`tracefail eval`) and calibration (`tracefail calibrate`).

Reference mode labels are remapped into the judge's taxonomy first (the MAST human file mixes
three older numberings), then reduced to one verdict per (trace, mode) by majority over the
reference's sources. Attribution is scored by exact match only (0-based step index, exact agent
name), always beside trivial baselines, so no accuracy is ever read without its floor.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from tracefail.analysis.agreement import accuracy_ci, binary_scores_ci, expected_calibration_error
from tracefail.analysis.attribution import Gold, Hits, TraceSteps, baseline_hits, top_k_recall
from tracefail.judge import calibration
from tracefail.services.eval_results import (
    AttributionBlock,
    AttributionScores,
    Bootstrap,
    CalibratedMode,
    CalibrationResult,
    EvalResult,
    ModeAgreement,
    ModeBlock,
    ReferenceRemap,
)
from tracefail.store import Database
from tracefail.store.attribution import steps_for
from tracefail.store.labels import (
    attributions,
    judge_sources,
    mode_labels,
    save_calibrations,
)
from tracefail.store.runs import finish_run, start_run
from tracefail.taxonomy import DEFAULT_TAXONOMY, TaxonomyFile, find

REFERENCES = {"human": "human:%", "dataset": "dataset:%"}


class EvalError(ValueError):
    """Nothing to compare (no judge run, no reference labels); one line for the user."""


Progress = Callable[[int, int], None]  # (done, total) steps of an evaluation


@dataclass(frozen=True)
class Picked:
    """The machine sources one evaluation uses per task, and every other one with labels."""

    modes: str | None  # None: no source has mode labels (a ranker answers attribution only)
    attribution: str | None
    how: str  # "given" or how the default was chosen
    others: list[str]


def _describe(source: str, n_modes: int, n_attributions: int) -> str:
    return f"{source} ({n_modes} mode labels, {n_attributions} attributions)"


def _judge(db: Database, judge_source: str | None) -> Picked:
    """Which source eval and calibrate compare, per task. Given --judge-source it is that
    source for both tasks (a task it has no labels for is reported empty, never filled from
    another source); else, per task, the source whose newest label is the most recent among
    those with labels for that task (runs that stored nothing are skipped)."""
    found = judge_sources(db)
    counts = {source: (modes, attributed) for source, modes, attributed in found}
    if judge_source:
        if judge_source not in counts:
            known = ", ".join(_describe(s, *counts[s]) for s, *_ in found) or "none yet"
            raise EvalError(
                f"--judge-source {judge_source!r}: no such judge or ranker source (known: {known})"
            )
        others = [_describe(s, *counts[s]) for s, *_ in found if s != judge_source]
        return Picked(judge_source, judge_source, "given", others)
    if not found:
        raise EvalError("no judge or ranker labels yet: run `tracefail label` first (or pass --judge-source)")
    modes = next((s for s, n, _ in found if n), None)
    attribution = next((s for s, _, n in found if n), None)
    others = [_describe(s, *counts[s]) for s, *_ in found if s not in (modes, attribution)]
    return Picked(modes, attribution, "newest source with labels for the task", others)


def _has_modes(db: Database, source: str) -> bool:
    return any(s == source and n for s, n, _ in judge_sources(db))


def _pattern(reference: str) -> str:
    if reference not in REFERENCES:
        raise EvalError(f"--reference {reference!r}: use human or dataset")
    return REFERENCES[reference]


def _meta(value: Any) -> dict:
    return json.loads(value) if isinstance(value, str) and value else {}


@dataclass
class Reference:
    verdicts: dict[tuple[str, str], bool] = field(default_factory=dict)
    mapped: int = 0
    dropped: Counter = field(default_factory=Counter)
    ties: int = 0


def reference_modes(db: Database, reference: str, loaded: TaxonomyFile) -> Reference:
    """One reference verdict per (trace, mode id of `loaded`), by majority over its sources."""
    rows = mode_labels(db, _pattern(reference))
    ref = Reference()
    votes: dict[tuple[str, str], dict[str, bool]] = defaultdict(dict)
    for row in rows.iter_rows(named=True):
        if row["present"] is None:
            ref.dropped["no answer (null)"] += 1
            continue
        mode, why = loaded.remap(
            row["taxonomy_version"], row["mode_id"], _meta(row["metadata"]).get("mode_name")
        )
        if mode is None:
            ref.dropped[why] += 1
            continue
        ref.mapped += 1
        key = (row["trace_id"], mode)
        votes[key][row["source"]] = votes[key].get(row["source"], False) or bool(row["present"])
    for key, by_source in votes.items():
        yes = sum(by_source.values())
        no = len(by_source) - yes
        if yes == no:
            ref.ties += 1
            continue
        ref.verdicts[key] = yes > no
    return ref


def judge_modes(
    db: Database, source: str, loaded: TaxonomyFile
) -> dict[tuple[str, str], tuple[bool, float, float]]:
    """(trace, mode) -> (present, probability, raw probability), the newest label per key."""
    tax = loaded.taxonomy
    out = {}
    for row in mode_labels(db, source).iter_rows(named=True):
        if row["taxonomy_id"] != tax.id or row["taxonomy_version"] != tax.version or row["present"] is None:
            continue
        raw = row["raw_probability"] if row["raw_probability"] is not None else row["probability"]
        out[(row["trace_id"], row["mode_id"])] = (bool(row["present"]), row["probability"], raw)
    return out


def _mode_block(
    db: Database, reference: str, loaded: TaxonomyFile, source: str, reps: int, progress: Progress
) -> ModeBlock:
    ref = reference_modes(db, reference, loaded)
    pred = judge_modes(db, source, loaded)
    keys = sorted(set(ref.verdicts) & set(pred))
    block: dict[str, Any] = {
        "n_traces": len({k[0] for k in keys}),
        "n_pairs": len(keys),
        "reference_remap": ReferenceRemap(mapped=ref.mapped, dropped=dict(ref.dropped), ties=ref.ties),
        "per_mode": [],
    }
    if not keys:
        return ModeBlock(**block)
    by_mode: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for k in keys:
        by_mode[k[1]].append(k)
    groups = [(m.id, by_mode[m.id]) for m in loaded.taxonomy.modes]
    for done, (mode_id, mode_keys) in enumerate(groups, 1):
        progress(done, len(groups) + 1)
        if mode_keys:
            scores = binary_scores_ci(
                [pred[k][0] for k in mode_keys], [ref.verdicts[k] for k in mode_keys], reps=reps
            )
            block["per_mode"].append(
                ModeAgreement(
                    mode_id=mode_id,
                    n=len(mode_keys),
                    reference_positives=sum(ref.verdicts[k] for k in mode_keys),
                    single_class=len({pred[k][0] for k in mode_keys} | {ref.verdicts[k] for k in mode_keys})
                    == 1,
                    **scores,
                )
            )
    block["pooled"] = binary_scores_ci([pred[k][0] for k in keys], [ref.verdicts[k] for k in keys], reps=reps)
    mode_ids = {m.id for m in loaded.taxonomy.modes}
    if {"3.2", "3.3"} <= mode_ids:  # MAST: 3.2/3.3 meanings drifted across artefacts; report both merged
        traces = sorted({t for t, m in keys if m in ("3.2", "3.3")})
        both = [
            t
            for t in traces
            if (t, "3.2") in pred
            and (t, "3.3") in pred
            and (t, "3.2") in ref.verdicts
            and (t, "3.3") in ref.verdicts
        ]
        if both:
            block["merged_3_2_3_3"] = binary_scores_ci(
                [pred[(t, "3.2")][0] or pred[(t, "3.3")][0] for t in both],
                [ref.verdicts[(t, "3.2")] or ref.verdicts[(t, "3.3")] for t in both],
                reps=reps,
            )
    block["ece"] = expected_calibration_error([pred[k][1] for k in keys], [ref.verdicts[k] for k in keys])
    block["ece_raw"] = expected_calibration_error([pred[k][2] for k in keys], [ref.verdicts[k] for k in keys])
    return ModeBlock(**block)


def _latest(frame: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["trace_id"]: row for row in frame.iter_rows(named=True)}


def _attribution_block(db: Database, reference: str, source: str, reps: int) -> AttributionBlock:
    ref = _latest(attributions(db, _pattern(reference)))
    pred = _latest(attributions(db, source))
    traces = sorted(set(ref) & set(pred))
    if not traces:
        return AttributionBlock(n_traces=0)
    by_trace: dict[str, list[tuple[str | None, str | None, str | None]]] = defaultdict(list)
    for row in steps_for(db, traces).iter_rows(named=True):
        by_trace[row["trace_id"]].append((row["agent"], row["role"], row["kind"]))
    rules = [TraceSteps.from_steps(t, by_trace[t]) for t in traces]
    golds = [Gold(ref[t]["step_idx"], ref[t]["agent"]) for t in traces]
    judge = Hits.of([(pred[t]["step_idx"], pred[t]["agent"]) for t in traces], golds)
    rankings = [_meta(pred[t]["metadata"]).get("top_steps") or [] for t in traces]
    top3 = {"top3": accuracy_ci(top_k_recall(rankings, golds).tolist(), reps=reps)} if all(rankings) else {}
    baselines = {
        name: AttributionScores(
            **hits.summary(reps),
            judge_minus={
                metric: {k: v[k] for k in ("diff", "diff_low", "diff_high")}
                for metric, v in judge.summary(reps, hits).items()
            },
        )
        for name, hits in baseline_hits(rules, golds).items()
    }
    corrected = sum("judge_agent" in _meta(pred[t]["metadata"]) for t in traces)
    return AttributionBlock(
        n_traces=len(traces),
        speaker_corrected=corrected,
        judge=AttributionScores(**judge.summary(reps), **top3),
        baselines=baselines,
        notes=(
            "exact match: agent name equality and 0-based step index equality (no substring matching); "
            "within1/within3: the step is at most 1/3 steps off; judge_minus: judge minus the baseline, "
            "paired bootstrap over the same traces (diff, diff_low, diff_high); roles are normalised to "
            "user/orchestrator/tool/worker (worker rules skip the others); random is the expected accuracy "
            "of a uniform guess; most_common_step/most_common_position use the reference's own steps over "
            "these traces (an oracle floor); speaker rules predict the agent and its first step"
        ),
    )


def _quiet(done: int, total: int) -> None:
    """No progress display (the default for callers that do not show one)."""


def evaluate(
    db: Database,
    *,
    reference: str = "human",
    judge_source: str | None = None,
    taxonomy: str = DEFAULT_TAXONOMY,
    reps: int = 1000,
    progress: Progress = _quiet,
) -> EvalResult:
    """Agreement of one judge config with the reference, with 95% bootstrap intervals."""
    _pattern(reference)
    picked = _judge(db, judge_source)
    loaded = find(taxonomy)
    modes = (
        _mode_block(db, reference, loaded, picked.modes, reps, progress)
        if picked.modes is not None and _has_modes(db, picked.modes)
        else ModeBlock(
            n_traces=0,
            n_pairs=0,
            reference_remap=ReferenceRemap(mapped=0, dropped={}, ties=0),
            per_mode=[],
            note=f"{picked.modes or 'no source'} has no mode labels: no mode metrics",
        )
    )
    attribution = (
        _attribution_block(db, reference, picked.attribution, reps)
        if picked.attribution is not None
        else AttributionBlock(n_traces=0)
    )
    total = len(loaded.taxonomy.modes) + 1
    progress(total, total)
    return EvalResult(
        judge_source=picked.modes,
        attribution_source=picked.attribution,
        judge_picked=picked.how,
        other_judge_sources=picked.others,
        reference=reference,
        taxonomy=f"{loaded.taxonomy.id}@{loaded.taxonomy.version}",
        bootstrap=Bootstrap(reps=reps, level=0.95, unit="trace-mode pair (modes), trace (attribution)"),
        modes=modes,
        attribution=attribution,
    )


def calibrate(
    db: Database,
    *,
    reference: str = "human",
    judge_source: str | None = None,
    taxonomy: str = DEFAULT_TAXONOMY,
    method: str = "platt",
    min_labels: int = 10,
) -> CalibrationResult:
    """Fit a per-mode map from raw judge probability to the reference; later labels use it."""
    if method not in calibration.METHODS:
        raise EvalError(f"--method {method!r}: use {' or '.join(calibration.METHODS)}")
    picked = _judge(db, judge_source)
    source, others = picked.modes, picked.others
    if source is None or not _has_modes(db, source):
        with_modes = [s for s, n, _ in judge_sources(db) if n]
        raise EvalError(
            f"{source or 'no judge source'} has no mode labels to calibrate (a ranker answers "
            f"attribution only); sources with mode labels: {', '.join(with_modes) or 'none'}"
        )
    loaded = find(taxonomy)
    tax = loaded.taxonomy
    ref = reference_modes(db, reference, loaded)
    pred = judge_modes(db, source, loaded)
    keys = sorted(set(ref.verdicts) & set(pred))
    run_id = start_run(
        db,
        "calibrate",
        {
            "judge_source": source,
            "reference": reference,
            "taxonomy": tax.id,
            "version": tax.version,
            "method": method,
        },
    )
    modes: list[CalibratedMode] = []
    rows: list[dict[str, Any]] = []
    all_raw: list[float] = []
    all_cal: list[float] = []
    all_y: list[bool] = []
    for mode in tax.modes:
        mode_keys = [k for k in keys if k[1] == mode.id]
        raw = [pred[k][2] for k in mode_keys]
        y = [ref.verdicts[k] for k in mode_keys]
        if len(y) < min_labels or len(set(y)) < 2:
            skipped = f"needs at least {min_labels} labels with both classes"
            modes.append(CalibratedMode(mode_id=mode.id, n=len(y), positives=sum(y), skipped=skipped))
            continue
        params = calibration.fit(raw, y, method)
        cal = [calibration.apply(p, params) for p in raw]
        entry = CalibratedMode(
            mode_id=mode.id,
            n=len(y),
            positives=sum(y),
            params=params,
            ece_before=expected_calibration_error(raw, y),
            ece_after=expected_calibration_error(cal, y),
        )
        modes.append(entry)
        all_raw += raw
        all_cal += cal
        all_y += y
        rows.append(
            {
                "judge_source": source,
                "taxonomy_id": tax.id,
                "taxonomy_version": tax.version,
                "mode_id": mode.id,
                "method": method,
                "params": params,
                "reference": reference,
                "n": len(y),
                "ece_before": entry.ece_before,
                "ece_after": entry.ece_after,
                "run_id": run_id,
            }
        )
    save_calibrations(db, rows)
    result = CalibrationResult(
        judge_source=source,
        judge_picked=picked.how,
        other_judge_sources=others,
        reference=reference,
        method=method,
        run_id=run_id,
        fitted_modes=len(rows),
        modes=modes,
        ece_before=expected_calibration_error(all_raw, all_y) if all_y else None,
        ece_after=expected_calibration_error(all_cal, all_y) if all_y else None,
        note="ECE is in-sample (fitted and measured on the same labels); later labels of this "
        "judge config carry calibrated probabilities and keep raw_probability",
    )
    finish_run(db, run_id, counts={"fitted_modes": len(rows), "pairs": len(all_y)})
    return result
