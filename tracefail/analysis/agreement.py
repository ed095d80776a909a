"""Agreement between two label sources: Cohen's kappa, precision/recall/F1/accuracy, bootstrap
confidence intervals, and expected calibration error. Plain numpy so any layer can reuse it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np


def cohen_kappa(a: Sequence[bool | int | str], b: Sequence[bool | int | str]) -> float:
    """Cohen's kappa of two raters over the same items (any hashable categories).

    1 is perfect agreement, 0 is chance level. When both raters give one and the same category
    to every item, chance agreement is 1 and the formula is 0/0; we return 1.0 (they agree on
    every item), so a mode nobody ever sees does not turn a per-mode table into nan.
    """
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa: {len(a)} vs {len(b)} ratings")
    if not a:
        return float("nan")
    categories = sorted(set(a) | set(b), key=str)
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((len(categories), len(categories)))
    for x, y in zip(a, b, strict=True):
        table[index[x], index[y]] += 1
    n = table.sum()
    observed = np.trace(table) / n
    expected = float((table.sum(axis=1) * table.sum(axis=0)).sum() / n**2)
    if expected >= 1.0:
        return 1.0 if observed >= 1.0 else 0.0
    return float((observed - expected) / (1.0 - expected))


@dataclass
class BinaryScores:
    n: int
    positives: int  # in the reference
    predicted_positives: int
    kappa: float
    precision: float
    recall: float
    f1: float
    accuracy: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def binary_scores(pred: Sequence[bool], ref: Sequence[bool]) -> BinaryScores:
    """Scores of `pred` against the reference `ref` (positive class = True)."""
    p = np.asarray(pred, dtype=bool)
    r = np.asarray(ref, dtype=bool)
    tp = int((p & r).sum())
    fp = int((p & ~r).sum())
    fn = int((~p & r).sum())
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    return BinaryScores(
        n=len(p),
        positives=int(r.sum()),
        predicted_positives=int(p.sum()),
        kappa=cohen_kappa(p.tolist(), r.tolist()),
        precision=precision,
        recall=recall,
        f1=f1,
        accuracy=float((p == r).mean()) if len(p) else float("nan"),
    )


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n_items: int,
    *,
    reps: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of statistic(indices) over resamples of the items (nan-safe), for
    statistics that are not a function of a few cell counts (paired differences)."""
    if n_items == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n_items, n_items)) for _ in range(reps)], dtype=float)
    return _percentiles(values, level)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of bootstrap values, ignoring undefined (nan) resamples."""
    values = values[~np.isnan(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _scores(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> dict[str, np.ndarray]:
    """kappa, precision, recall, f1, accuracy of many 2x2 tables at once (nan where undefined);
    kappa follows cohen_kappa's convention for one-class tables."""
    tp, fp, fn, tn = (np.asarray(x, dtype=float) for x in (tp, fp, fn, tn))
    n = tp + fp + fn + tn
    with np.errstate(divide="ignore", invalid="ignore"):
        po = (tp + tn) / n
        pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
        kappa = np.where(pe >= 1.0, np.where(po >= 1.0, 1.0, 0.0), (po - pe) / (1.0 - pe))
        return {
            "kappa": np.where(n > 0, kappa, np.nan),
            "precision": np.where(tp + fp > 0, tp / (tp + fp), np.nan),
            "recall": np.where(tp + fn > 0, tp / (tp + fn), np.nan),
            "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan),
            "accuracy": np.where(n > 0, po, np.nan),
        }


def binary_scores_ci(
    pred: Sequence[bool], ref: Sequence[bool], *, reps: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, dict[str, float]]:
    """Each score with its 95% bootstrap interval: {name: {value, low, high}}.

    Resampling n items with replacement only changes how many fall in each cell of the 2x2
    table, so one multinomial draw per replicate over the four cell shares is the same bootstrap
    as resampling the items, in O(reps) instead of O(reps * n)."""
    p = np.asarray(pred, dtype=bool)
    r = np.asarray(ref, dtype=bool)
    cells = np.array([(p & r).sum(), (p & ~r).sum(), (~p & r).sum(), (~p & ~r).sum()])
    n = int(cells.sum())
    point = _scores(*cells[:, None])
    if n:
        draws = np.random.default_rng(seed).multinomial(n, cells / n, size=reps)
        resampled = _scores(*draws.T)
    out: dict[str, dict[str, float]] = {}
    for name, value in point.items():
        low, high = _percentiles(resampled[name], level) if n else (float("nan"), float("nan"))
        out[name] = {"value": float(value[0]), "low": low, "high": high}
    return out


def accuracy_ci(
    hits: Sequence[float], *, reps: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Mean of per-item scores (hits, or expected hits of a random guess) with a bootstrap
    interval; resamples counts of the distinct values (multinomial), as binary_scores_ci does."""
    h = np.asarray(hits, dtype=float)
    if not len(h):
        return {"value": float("nan"), "low": float("nan"), "high": float("nan")}
    values, counts = np.unique(h, return_counts=True)
    draws = np.random.default_rng(seed).multinomial(len(h), counts / len(h), size=reps)
    low, high = _percentiles(draws @ values / len(h), level)
    return {"value": float(h.mean()), "low": low, "high": high}


def expected_calibration_error(
    probabilities: Sequence[float], outcomes: Sequence[bool], bins: int = 10
) -> float:
    """ECE over equal-width bins: sum over bins of (bin share) * |mean confidence - frequency|."""
    p = np.asarray(probabilities, dtype=float)
    y = np.asarray(outcomes, dtype=float)
    if not len(p):
        return float("nan")
    which = np.minimum((p * bins).astype(int), bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(p[mask].mean() - y[mask].mean())
    return float(ece)
