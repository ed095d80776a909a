"""Per-mode probability calibration: temperature or Platt scaling on the logit of the raw score.

p = sigmoid(a * logit(raw) + b). Temperature scaling fits only a (= 1/T, b = 0) and keeps the
ranking and the 0.5 point; Platt fits both. A small L2 pull towards the identity keeps the fit
finite when the few reference labels are perfectly separable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METHODS = ("temperature", "platt")
_EPS = 1e-6
_L2 = 1e-2


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free


def apply(raw: float, params: dict[str, float]) -> float:
    z = params["a"] * float(logit(np.array([raw]))[0]) + params.get("b", 0.0)
    return float(_sigmoid(np.array([z]))[0])


def fit(raw: Sequence[float], outcomes: Sequence[bool], method: str = "platt") -> dict[str, float]:
    """Newton's method with backtracking on the penalized log loss; returns {"a", "b"}."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r} (use {' or '.join(METHODS)})")
    x = logit(np.asarray(raw, dtype=float))
    y = np.asarray(outcomes, dtype=float)
    features = np.stack([x, np.ones_like(x)], axis=1) if method == "platt" else x[:, None]
    prior = np.array([1.0, 0.0]) if method == "platt" else np.array([1.0])

    def loss(w: np.ndarray) -> float:
        z = features @ w
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + _L2 / 2 * np.sum((w - prior) ** 2))

    w = prior.copy()
    for _ in range(100):
        p = _sigmoid(features @ w)
        grad = features.T @ (p - y) + _L2 * (w - prior)
        hess = (features * (p * (1 - p))[:, None]).T @ features + _L2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        scale, current = 1.0, loss(w)
        while loss(w - scale * step) > current and scale > 1e-6:
            scale /= 2
        w = w - scale * step
        if np.abs(scale * step).max() < 1e-8:
            break
    return {"a": float(w[0]), "b": float(w[1]) if method == "platt" else 0.0}
