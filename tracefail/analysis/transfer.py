"""How far a corpus is from the one a ranker learned on, so its accuracy is not claimed where
it was never measured.

A ranker's accuracy holds for runs like its training runs. A corpus profile keeps what a shift
shows in: the frameworks (systems), agents per run, steps per run, characters per step, and each
feature's mean and spread. `shift` compares a target corpus with that profile and names every
difference beyond its threshold; any such difference means the ranker is "not validated on this
corpus" until labels of that corpus say how it does there.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# Beyond these a target corpus counts as unlike the training corpus.
UNSEEN_FRAMEWORK_SHARE = 0.1  # share of target runs from a framework the ranker never saw
COUNT_RATIO = 1.5  # target median agents / steps per run vs training median, either way
CHARS_RATIO = 2.0  # target median characters per step vs training median, either way
FEATURE_SMD = 0.5  # mean |standardised mean difference| over the ranker's features
# Labelled target runs needed before a ranker counts as validated on a corpus (its learning
# curve on Who&When reached the best rule at about 20 runs).
VALIDATION_RUNS = 20


@dataclass(frozen=True)
class RunShape:
    """What the profile reads from one run."""

    framework: str | None
    agents: int
    steps: int
    chars: Sequence[int]  # characters per step


@dataclass(frozen=True)
class Profile:
    n_runs: int
    frameworks: dict[str, int]
    agents_median: float
    steps_median: float
    chars_median: float
    feature_mean: dict[str, float]
    feature_std: dict[str, float]
    agents_range: tuple[int, int] = (0, 0)  # fewest and most agents in a training run
    steps_range: tuple[int, int] = (0, 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        fields: dict[str, Any] = dict(data)
        for key in ("agents_range", "steps_range"):
            if key in fields:
                fields[key] = tuple(fields[key])  # JSON keeps them as lists
        return cls(**fields)


def profile(runs: Sequence[RunShape], x: np.ndarray, features: Sequence[str]) -> Profile:
    """`x`: every step's feature row (steps x features) of these runs."""
    frameworks = Counter(r.framework or "unknown" for r in runs)
    chars = [c for r in runs for c in r.chars]
    filled = np.nan_to_num(x) if len(x) else np.zeros((1, len(features)))
    return Profile(
        n_runs=len(runs),
        frameworks=dict(sorted(frameworks.items())),
        agents_median=float(np.median([r.agents for r in runs])) if runs else 0.0,
        steps_median=float(np.median([r.steps for r in runs])) if runs else 0.0,
        chars_median=float(np.median(chars)) if chars else 0.0,
        feature_mean={f: round(float(v), 6) for f, v in zip(features, filled.mean(axis=0), strict=True)},
        feature_std={f: round(float(v), 6) for f, v in zip(features, filled.std(axis=0), strict=True)},
        agents_range=(min((r.agents for r in runs), default=0), max((r.agents for r in runs), default=0)),
        steps_range=(min((r.steps for r in runs), default=0), max((r.steps for r in runs), default=0)),
    )


@dataclass(frozen=True)
class Shift:
    """The target corpus against the training profile: each measure, and the reasons it is unlike."""

    unseen_framework_share: float
    unseen_frameworks: list[str]
    agents_ratio: float
    steps_ratio: float
    chars_ratio: float
    feature_smd: float  # mean |standardised mean difference| over the features
    top_features: list[tuple[str, float]]  # the features that moved most
    reasons: list[str]

    @property
    def unlike(self) -> bool:
        return bool(self.reasons)


def _ratio(target: float, train: float) -> float:
    return (target + 1) / (train + 1)  # +1: a median of 0 characters or agents stays finite


def shift(train: Profile, target: Profile) -> Shift:
    unseen = sorted(set(target.frameworks) - set(train.frameworks))
    share = sum(target.frameworks[f] for f in unseen) / max(1, target.n_runs)
    agents = _ratio(target.agents_median, train.agents_median)
    steps = _ratio(target.steps_median, train.steps_median)
    chars = _ratio(target.chars_median, train.chars_median)
    smd = {
        f: abs(target.feature_mean[f] - train.feature_mean[f]) / (train.feature_std[f] or 1.0)
        for f in train.feature_mean
        if f in target.feature_mean
    }
    mean_smd = float(np.mean(list(smd.values()))) if smd else 0.0
    top = sorted(smd.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    reasons = []
    if share > UNSEEN_FRAMEWORK_SHARE:
        reasons.append(f"{share:.0%} of runs from frameworks it never saw ({', '.join(unseen)})")
    for name, value, limit in (("agents", agents, COUNT_RATIO), ("steps", steps, COUNT_RATIO)):
        if abs(math.log(value)) > math.log(limit):
            reasons.append(f"median {name} per run {value:.2f}x the training corpus's")
    if abs(math.log(chars)) > math.log(CHARS_RATIO):
        reasons.append(f"median characters per step {chars:.2f}x the training corpus's")
    if mean_smd > FEATURE_SMD:
        moved = ", ".join(f"{f} {v:.1f}" for f, v in top)
        reasons.append(f"features moved {mean_smd:.2f} SD on average (most: {moved})")
    return Shift(share, unseen, agents, steps, chars, mean_smd, [(f, round(v, 3)) for f, v in top], reasons)


def run_unlike(train: Profile, run: RunShape) -> bool:
    """One run outside what the ranker saw (for ordering the review queue): an unseen
    framework, or fewer or more agents or steps than any training run had."""
    if (run.framework or "unknown") not in train.frameworks:
        return True
    return not (
        train.agents_range[0] <= run.agents <= train.agents_range[1]
        and train.steps_range[0] <= run.steps <= train.steps_range[1]
    )
