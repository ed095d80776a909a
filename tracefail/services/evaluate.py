"""Judge vs. reference labels: agreement (`tracefail eval`) and calibration (`tracefail calibrate`).

Reference mode labels are remapped into the judge's taxonomy first (the MAST human file mixes
three older numberings), then reduced to one verdict per (trace, mode) by majority over the
reference's sources. Attribution is scored by exact match only (0-based step index, exact agent
name), always beside trivial baselines, so no accuracy is ever read without its floor.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from tracefail.analysis.agreement import accuracy_ci, binary_scores_ci, expected_calibration_error
from tracefail.analysis.attribution import Gold, Hits, TraceSteps, baseline_hits, top_k_recall
from tracefail.judge import calibration
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


def _judge(db: Database, judge_source: str | None) -> tuple[str, list[str]]:
    """The judge source to use and the other judge sources with labels. Without --judge-source
    it is the judge whose newest label is the most recent (runs that stored nothing are skipped)."""
    found = judge_sources(db)
    others = [s for s, _ in found if s != judge_source]
    if judge_source:
        return judge_source, others
    if not found:
        raise EvalError("no judge labels yet: run `tracefail label` first (or pass --judge-source)")
    return found[0][0], others[1:]


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
) -> dict[str, Any]:
    ref = reference_modes(db, reference, loaded)
    pred = judge_modes(db, source, loaded)
    keys = sorted(set(ref.verdicts) & set(pred))
    block: dict[str, Any] = {
        "n_traces": len({k[0] for k in keys}),
        "n_pairs": len(keys),
        "reference_remap": {"mapped": ref.mapped, "dropped": dict(ref.dropped), "ties": ref.ties},
        "per_mode": [],
    }
    if not keys:
        return block
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
                {
                    "mode_id": mode_id,
                    "n": len(mode_keys),
                    "reference_positives": sum(ref.verdicts[k] for k in mode_keys),
                    # one class on both sides: kappa is 1 by convention and says nothing
                    "single_class": len(
                        {pred[k][0] for k in mode_keys} | {ref.verdicts[k] for k in mode_keys}
                    )
                    == 1,
                    **scores,
                }
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
            block["merged_3.2_3.3"] = binary_scores_ci(
                [pred[(t, "3.2")][0] or pred[(t, "3.3")][0] for t in both],
                [ref.verdicts[(t, "3.2")] or ref.verdicts[(t, "3.3")] for t in both],
                reps=reps,
            )
    block["ece"] = expected_calibration_error([pred[k][1] for k in keys], [ref.verdicts[k] for k in keys])
    block["ece_raw"] = expected_calibration_error([pred[k][2] for k in keys], [ref.verdicts[k] for k in keys])
    return block


def _json_safe(value: Any) -> Any:
    """NaN (an undefined score, e.g. precision with no positive prediction) becomes null in JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _latest(frame: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {row["trace_id"]: row for row in frame.iter_rows(named=True)}


def _attribution_block(db: Database, reference: str, source: str, reps: int) -> dict[str, Any]:
    ref = _latest(attributions(db, _pattern(reference)))
    pred = _latest(attributions(db, source))
    traces = sorted(set(ref) & set(pred))
    block: dict[str, Any] = {"n_traces": len(traces)}
    if not traces:
        return block
    by_trace: dict[str, list[tuple[str | None, str | None, str | None]]] = defaultdict(list)
    for row in steps_for(db, traces).iter_rows(named=True):
        by_trace[row["trace_id"]].append((row["agent"], row["role"], row["kind"]))
    rules = [TraceSteps.from_steps(t, by_trace[t]) for t in traces]
    golds = [Gold(ref[t]["step_idx"], ref[t]["agent"]) for t in traces]
    judge = Hits.of([(pred[t]["step_idx"], pred[t]["agent"]) for t in traces], golds)
    block["judge"] = judge.summary(reps)
    rankings = [_meta(pred[t]["metadata"]).get("top_steps") for t in traces]
    if all(rankings):
        block["judge"]["top3"] = accuracy_ci(top_k_recall(rankings, golds).tolist(), reps=reps)
    block["baselines"] = {
        name: {
            **hits.summary(reps),
            "judge_minus": {
                metric: {k: v[k] for k in ("diff", "diff_low", "diff_high")}
                for metric, v in judge.summary(reps, hits).items()
            },
        }
        for name, hits in baseline_hits(rules, golds).items()
    }
    block["notes"] = (
        "exact match: agent name equality and 0-based step index equality (no substring matching); "
        "within1/within3: the step is at most 1/3 steps off; judge_minus: judge minus the baseline, "
        "paired bootstrap over the same traces (diff, diff_low, diff_high); roles are normalised to "
        "user/orchestrator/tool/worker (worker rules skip the others); random is the expected accuracy "
        "of a uniform guess; most_common_step/most_common_position use the reference's own steps over "
        "these traces (an oracle floor); speaker rules predict the agent and its first step"
    )
    return block


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
) -> dict[str, Any]:
    """Agreement of one judge config with the reference, with 95% bootstrap intervals."""
    _pattern(reference)
    source, others = _judge(db, judge_source)
    loaded = find(taxonomy)
    modes = _mode_block(db, reference, loaded, source, reps, progress)
    attribution = _attribution_block(db, reference, source, reps)
    total = len(loaded.taxonomy.modes) + 1
    progress(total, total)
    return _json_safe(
        {
            "judge_source": source,
            "judge_picked": "given" if judge_source else "latest judge source with labels",
            "other_judge_sources": others,
            "reference": reference,
            "taxonomy": f"{loaded.taxonomy.id}@{loaded.taxonomy.version}",
            "bootstrap": {
                "reps": reps,
                "level": 0.95,
                "unit": "trace-mode pair (modes), trace (attribution)",
            },
            "modes": modes,
            "attribution": attribution,
        }
    )


def calibrate(
    db: Database,
    *,
    reference: str = "human",
    judge_source: str | None = None,
    taxonomy: str = DEFAULT_TAXONOMY,
    method: str = "platt",
    min_labels: int = 10,
) -> dict[str, Any]:
    """Fit a per-mode map from raw judge probability to the reference; later labels use it."""
    if method not in calibration.METHODS:
        raise EvalError(f"--method {method!r}: use {' or '.join(calibration.METHODS)}")
    source, others = _judge(db, judge_source)
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
    modes, rows, all_raw, all_cal, all_y = [], [], [], [], []
    for mode in tax.modes:
        mode_keys = [k for k in keys if k[1] == mode.id]
        raw = [pred[k][2] for k in mode_keys]
        y = [ref.verdicts[k] for k in mode_keys]
        entry: dict[str, Any] = {"mode_id": mode.id, "n": len(y), "positives": sum(y)}
        if len(y) < min_labels or len(set(y)) < 2:
            entry["skipped"] = f"needs at least {min_labels} labels with both classes"
            modes.append(entry)
            continue
        params = calibration.fit(raw, y, method)
        cal = [calibration.apply(p, params) for p in raw]
        entry.update(
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
                "ece_before": entry["ece_before"],
                "ece_after": entry["ece_after"],
                "run_id": run_id,
            }
        )
    save_calibrations(db, rows)
    result = {
        "judge_source": source,
        "judge_picked": "given" if judge_source else "latest judge source with labels",
        "other_judge_sources": others,
        "reference": reference,
        "method": method,
        "run_id": run_id,
        "fitted_modes": len(rows),
        "modes": modes,
        "ece_before": expected_calibration_error(all_raw, all_y) if all_y else None,
        "ece_after": expected_calibration_error(all_cal, all_y) if all_y else None,
        "note": "ECE is in-sample (fitted and measured on the same labels); later labels of this "
        "judge config carry calibrated probabilities and keep raw_probability",
    }
    finish_run(db, run_id, counts={"fitted_modes": len(rows), "pairs": len(all_y)})
    return _json_safe(result)
