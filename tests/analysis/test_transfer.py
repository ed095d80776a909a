"""Corpus profiles and shift, and the cause features, on small hand-made runs."""

from __future__ import annotations

import numpy as np

from tracefail.analysis.step_features import FEATURES, StepRow, columns, trace_features
from tracefail.analysis.transfer import RunShape, profile, run_unlike, shift

NAMES = ("rel_pos", "err_here")


def _profile(framework: str, steps: int, chars: int, x: np.ndarray):
    runs = [RunShape(framework, 3, steps, [chars] * steps) for _ in range(10)]
    return profile(runs, x, NAMES)


def test_a_corpus_like_the_training_corpus_shows_no_shift() -> None:
    x = np.random.default_rng(0).normal(size=(80, 2))
    train = _profile("AG2", 8, 1000, x)
    same = shift(train, _profile("AG2", 9, 1200, x[::-1]))
    assert not same.unlike and same.feature_smd == 0.0


def test_each_kind_of_shift_is_named() -> None:
    x = np.random.default_rng(0).normal(size=(80, 2))
    train = _profile("AG2", 8, 1000, x)
    other = shift(train, _profile("Magentic", 50, 100, x + np.array([3.0, 0.0])))
    text = " | ".join(other.reasons)
    assert other.unseen_frameworks == ["Magentic"] and other.unseen_framework_share == 1.0
    assert "frameworks it never saw (Magentic)" in text
    assert "median steps per run" in text and "median characters per step" in text
    assert other.top_features[0][0] == "rel_pos" and "features moved" in text
    assert run_unlike(train, RunShape("AG2", 3, 40, [1000])) and run_unlike(train, RunShape("X", 3, 8, []))
    assert not run_unlike(train, RunShape("AG2", 3, 8, []))


def _row(x: np.ndarray, step: int, name: str) -> float:
    return float(x[step, columns([name])[0]])


def test_cause_features_see_an_ignored_tool_error_and_a_reused_number() -> None:
    steps = [
        StepRow(0, "Planner", None, None, "Plan: we need to count the rows. Step 1 run the code."),
        StepRow(1, "Coder", None, None, "```python\nprint(len(rows))\n```"),
        StepRow(2, "Computer_terminal", None, None, "exitcode: 1 (execution failed)\nTraceback: NameError"),
        StepRow(3, "Coder", None, None, "The count is 4217, so the answer is 4217."),
        StepRow(4, "Checker", None, None, "I verify the count 4217 is incorrect; it should be 4300."),
    ]
    x = trace_features(steps, task="How many rows does the table have?")
    assert x.shape == (5, len(FEATURES)) and not np.isnan(x).any()
    assert _row(x, 3, "after_tool_error") == 1.0 and _row(x, 3, "ignored_tool_error") == 1.0
    assert _row(x, 1, "ignored_tool_error") == 0.0
    assert _row(x, 3, "new_facts_reused") > 0 and _row(x, 3, "contradicted_later") == 1.0
    assert _row(x, 1, "first_err_next") == 1.0
    assert _row(x, 2, "agent_tool_output_share") == 1.0 and _row(x, 4, "agent_verify_share") == 1.0
    assert _row(x, 0, "agent_plan_share") == 1.0 and _row(x, 1, "agent_code_share") == 0.5
