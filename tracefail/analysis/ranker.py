"""The step ranker: which step of a failed trace is the root cause, learned from attributions.

A logistic regression (scikit-learn, default regularisation: no hyperparameter is tuned, so
cross-validation stays honest) scores every step from its features; the top-scoring step of a
trace is the guess. Scores become probabilities by a softmax over the trace's steps with one
temperature fitted on out-of-fold scores, so "0.4" means right about 40% of the time.
The fitted model is kept as plain numbers (JSON), applied with numpy: small, readable, no pickle.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

FORMAT_VERSION = 1


@dataclass(frozen=True)
class TraceRows:
    """One trace's step features (steps x features) and, for training, its gold step."""

    trace_id: str
    x: np.ndarray
    gold_step: int | None = None

    def select(self, idx: Sequence[int]) -> TraceRows:
        """The same trace with only these feature columns."""
        return TraceRows(self.trace_id, self.x[:, list(idx)], self.gold_step)


@dataclass(frozen=True)
class LinearRanker:
    features: tuple[str, ...]
    fill: tuple[float, ...]  # training mean per feature, used where a value is missing (NaN)
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    temperature: float = 1.0
    summary: dict[str, Any] = field(default_factory=dict)

    def scores(self, x: np.ndarray) -> np.ndarray:
        filled = np.where(np.isnan(x), np.asarray(self.fill), x)
        return ((filled - np.asarray(self.mean)) / np.asarray(self.scale)) @ np.asarray(
            self.coef
        ) + self.intercept

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Softmax over the steps; ValueError where the scores are not finite (overflow)."""
        scores = self.scores(x) / self.temperature
        if not np.all(np.isfinite(scores)):
            raise ValueError("the ranker's step scores are not finite numbers")
        return softmax(scores)

    def to_json(self) -> str:
        return json.dumps(
            {"format_version": FORMAT_VERSION, "kind": "logistic-regression", **asdict(self)}, indent=1
        )

    @classmethod
    def from_json(cls, text: str) -> LinearRanker:
        data = json.loads(text)
        if (
            data.pop("format_version", None) != FORMAT_VERSION
            or data.pop("kind", None) != "logistic-regression"
        ):
            raise ValueError(f"not a tracefail ranker file (format version {FORMAT_VERSION} expected)")
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        ranker = cls(**fields)
        ranker.check()
        return ranker

    def check(self) -> None:
        """ValueError unless every vector has one finite number per feature, scales are not 0 and
        the temperature is positive: a short `coef` list raised inside the judge, and NaN
        coefficients gave every step probability 1.0."""
        n = len(self.features)
        for name in ("fill", "mean", "scale", "coef"):
            values = getattr(self, name)
            if len(values) != n:
                raise ValueError(f"ranker file: {name} has {len(values)} values for {n} features")
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                raise ValueError(f"ranker file: {name} holds a value that is not a finite number")
        if any(v == 0 for v in self.scale):
            raise ValueError("ranker file: a scale of 0")
        for name in ("intercept", "temperature"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"ranker file: {name} is not a finite number")
        if self.temperature <= 0:
            raise ValueError("ranker file: temperature must be positive")


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max())
    return shifted / shifted.sum()


def fit(traces: Sequence[TraceRows], features: Sequence[str]) -> LinearRanker:
    """Pointwise logistic regression: gold step 1, every other step of the trace 0."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = np.vstack([t.x for t in traces])
    y = np.concatenate([np.arange(len(t.x)) == t.gold_step for t in traces]).astype(int)
    fill = (
        np.nan_to_num(np.nanmean(np.where(np.isinf(x), np.nan, x), axis=0))
        if len(x)
        else np.zeros(x.shape[1])
    )
    filled = np.where(np.isnan(x), fill, x)
    scaler = StandardScaler().fit(filled)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    model = LogisticRegression(max_iter=5000).fit((filled - scaler.mean_) / scale, y)
    return LinearRanker(
        features=tuple(features),
        fill=tuple(fill.tolist()),
        mean=tuple(scaler.mean_.tolist()),
        scale=tuple(scale.tolist()),
        coef=tuple(model.coef_[0].tolist()),
        intercept=float(model.intercept_[0]),
    )


def fit_temperature(scores: Sequence[np.ndarray], gold: Sequence[int]) -> float:
    """The softmax temperature that minimises the held-out negative log-likelihood of the gold step."""
    from scipy.optimize import minimize_scalar

    def nll(t: float) -> float:
        return -sum(float(np.log(softmax(s / t)[g] + 1e-12)) for s, g in zip(scores, gold, strict=True))

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


@dataclass(frozen=True)
class Fold:
    """Out-of-fold scores of every trace: each trace scored by a model that never saw it."""

    scores: dict[str, np.ndarray]
    folds: int


def cross_validate(
    traces: Sequence[TraceRows],
    features: Sequence[str],
    folds: int,
    seed: int = 0,
    groups: Sequence[str] | None = None,
) -> Fold:
    """K-fold over traces (a trace's steps never straddle train and test); with `groups`, one
    fold per group instead: each group (a framework, a benchmark) is scored by a model that
    never saw a trace of it, which is what a user's unseen system gets."""
    from sklearn.model_selection import KFold, LeaveOneGroupOut

    order = np.arange(len(traces))
    if groups is not None:
        splits = list(LeaveOneGroupOut().split(order, groups=list(groups)))
        k = len(splits)
    else:
        k = max(2, min(folds, len(traces)))
        splits = list(KFold(k, shuffle=True, random_state=seed).split(order))
    scores: dict[str, np.ndarray] = {}
    for train, test in splits:
        model = fit([traces[i] for i in train], features)
        for i in test:
            scores[traces[i].trace_id] = model.scores(traces[i].x)
    return Fold(scores, k)
