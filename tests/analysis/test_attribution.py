"""Role normalisation, the structural baselines, paired differences and the step ranker."""

from __future__ import annotations

import numpy as np
import pytest

from tracefail.analysis.attribution import (
    Gold,
    Hits,
    TraceSteps,
    baseline_hits,
    random_expectation,
    top_k_recall,
)
from tracefail.analysis.ranker import LinearRanker, TraceRows, cross_validate, fit, fit_temperature
from tracefail.analysis.step_features import FEATURES, StepRow, normalise_role, trace_features


@pytest.mark.parametrize(
    ("agent", "role", "kind", "expected"),
    [
        ("Computer_terminal", "user", "message", "tool"),  # AG2: role is relative to the receiver
        ("Verification_Expert", "user", "message", "worker"),
        ("Orchestrator", "Orchestrator (-> WebSurfer)", "message", "orchestrator"),  # Magentic-One
        ("human", "human", "message", "user"),
        ("WebSurfer", "WebSurfer", "message", "worker"),
        ("chat_manager", "assistant", "message", "orchestrator"),
        (None, "user", "message", "user"),  # OpenAI chat: no speaker name, role is the speaker
        (None, "tool", "message", "tool"),
        ("search", None, "tool", "tool"),  # a span of kind tool
        (None, "assistant", "llm", "worker"),
    ],
)
def test_roles_normalise_across_frameworks(agent, role, kind, expected):
    assert normalise_role(agent, role, kind) == expected


def _trace() -> TraceSteps:
    return TraceSteps.from_steps(
        "t",
        [
            ("human", "human", "message"),
            ("Orchestrator", "Orchestrator", "message"),
            ("WebSurfer", "WebSurfer", "message"),
            ("Orchestrator", "Orchestrator", "message"),
            ("Coder", "Coder", "message"),
            ("Orchestrator", "Orchestrator", "message"),
            ("WebSurfer", "WebSurfer", "message"),
            ("Orchestrator", "Orchestrator", "message"),
        ],
    )


def test_worker_rules_skip_user_and_orchestrator():
    trace = _trace()
    hits = baseline_hits([trace], [Gold(2, "WebSurfer")])
    assert hits["first_worker_step"].step.tolist() == [1.0]
    assert hits["first_step"].step.tolist() == [0.0] and hits["first_step"].agent.tolist() == [0.0]
    assert hits["last_worker_step"].step.tolist() == [0.0]  # step 6
    assert hits["last_worker_step"].within3.tolist() == [0.0]  # 6 - 2 = 4 steps off
    assert hits["last_worker_speaker"].agent.tolist() == [1.0]
    # the orchestrator speaks most; the non-orchestrator rule names WebSurfer and its first turn
    assert hits["most_frequent_speaker"].agent.tolist() == [0.0]
    assert hits["most_frequent_non_orchestrator"].step.tolist() == [1.0]


def test_random_expectation_counts_the_steps_within_reach():
    agent, step, within1, within3 = random_expectation(_trace(), Gold(0, "human"))
    assert (agent, step, within1, within3) == (1 / 4, 1 / 8, 2 / 8, 4 / 8)


def test_paired_difference_resamples_both_methods_together():
    golds = [Gold(i % 3, "a") for i in range(60)]
    right = Hits.of([(g.step, "a") for g in golds], golds)
    wrong_half = Hits.of([(g.step if i % 2 else 9, "b") for i, g in enumerate(golds)], golds)
    summary = right.summary(200, wrong_half)
    assert summary["step"]["value"] == 1.0 and summary["step"]["diff"] == pytest.approx(0.5)
    assert 0.3 < summary["step"]["diff_low"] < 0.5 < summary["step"]["diff_high"] < 0.7
    assert summary["agent"]["diff"] == pytest.approx(1.0)
    assert top_k_recall([[2, 0, 1], [5, 6, 7]], [Gold(1, None), Gold(1, None)]).tolist() == [1.0, 0.0]


def _planted(n_traces: int, seed: int = 0) -> list[TraceRows]:
    """Traces where the root cause is the worker step right before a failing tool run."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(n_traces):
        n = int(rng.integers(5, 10))
        bad = int(rng.integers(1, n - 1))
        steps = []
        for i in range(n):
            if i == bad + 1:
                steps.append(
                    StepRow(i, "terminal", "user", "message", "exitcode: 1 (execution failed) Traceback")
                )
            else:
                steps.append(
                    StepRow(i, f"Expert{i % 3}", "user", "message", f"let us look at part {i} of it")
                )
        out.append(TraceRows(f"t{t}", trace_features(steps), bad))
    return out


def test_ranker_learns_a_planted_signal_and_saves_the_same_scores():
    rows = _planted(60)
    fold = cross_validate(rows, FEATURES, folds=5)
    accuracy = np.mean([int(np.argmax(fold.scores[r.trace_id])) == r.gold_step for r in rows])
    assert accuracy > 0.9  # random would be ~1/7
    model = fit(rows, FEATURES)
    again = LinearRanker.from_json(model.to_json())
    assert np.allclose(again.scores(rows[0].x), model.scores(rows[0].x))
    assert again.probabilities(rows[0].x).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not a tracefail ranker"):
        LinearRanker.from_json('{"format_version": 99}')


def test_temperature_softens_overconfident_scores():
    # scores that put 99.99% on the top step while it is right only half the time
    scores = [np.array([10.0, 0.0, 0.0]) for _ in range(20)]
    gold = [0 if i % 2 else 1 for i in range(20)]
    assert fit_temperature(scores, gold) > 3.0


def test_missing_lm_values_are_filled_with_the_training_mean():
    rows = [
        TraceRows(r.trace_id, np.hstack([r.x, np.full((len(r.x), 1), np.nan)]), r.gold_step)
        for r in _planted(10)
    ]
    rows[0].x[0, -1] = 5.0
    model = fit(rows, [*FEATURES, "lm.x"])
    assert np.isfinite(model.scores(rows[1].x)).all()
