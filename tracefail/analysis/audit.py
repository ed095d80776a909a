"""Anytime-valid audit of a failure mode's rate by testing by betting (an e-process).

While a corpus is being labelled, each new trace verdict x in {0, 1} is a bet against the null
"the mode's rate p is at most T": the wealth K_t = prod (1 + lambda_i (x_i - T)) with a
predictable lambda_i in [0, 1/T) is a nonnegative supermartingale under the null, so by Ville's
inequality P(sup_t K_t >= 1/alpha) <= alpha. A user may look after every label and stop as soon as
K_t >= 1/alpha ("above T") without inflating the error. The mirror bet on (T - x_i) tests
"p is at least T" and can end the audit with "below T". lambda follows the aGRAPA rule of
Waudby-Smith & Ramdas (2023, "Estimating means of bounded random variables by betting"),
truncated at half the largest allowed bet.

The verdicts must arrive as a random sample of the corpus (label traces in shuffled order);
labelling one framework first would test that framework's rate, not the corpus rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field


@dataclass
class AuditResult:
    threshold: float
    alpha: float
    n: int
    positives: int
    e_above: float  # wealth of the bet on "rate > T" after the last label (or at the decision)
    e_below: float
    decision: str  # above | below | undecided
    decided_at: int | None  # number of labels seen when the decision was reached
    path: list[tuple[int, float, float, float]] = field(default_factory=list)  # n, rate, e_above, e_below

    @property
    def rate(self) -> float:
        return self.positives / self.n if self.n else float("nan")

    def as_dict(self) -> dict:
        return {**asdict(self), "rate": self.rate}


def _bet(var: float, edge: float, cap: float) -> float:
    """aGRAPA bet size: edge / (variance + edge^2), clipped to [0, cap]."""
    if edge <= 0:
        return 0.0
    return min(cap, edge / (var + edge * edge))


def audit(xs: Sequence[bool], threshold: float, *, alpha: float = 0.05, checkpoints: int = 20) -> AuditResult:
    """Run both bets over the verdicts in order; stop at the first crossing of 1/alpha."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold {threshold} must be strictly between 0 and 1")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha {alpha} must be strictly between 0 and 1")
    up, down = 1.0, 1.0
    cap_up, cap_down = 0.5 / threshold, 0.5 / (1.0 - threshold)
    total = 0.0
    sq = 0.0
    n = len(xs)
    every = max(1, n // checkpoints)
    path: list[tuple[int, float, float, float]] = []
    decision, decided_at = "undecided", None
    positives = 0
    for t, x in enumerate(xs, start=1):
        # predictable estimates from the first t-1 labels, shrunk towards 1/2 so the first bets are small
        mean = (total + 0.5) / t
        var = max((sq + 0.25) / t - mean * mean, 1e-6)
        value = 1.0 if x else 0.0
        up *= 1.0 + _bet(var, mean - threshold, cap_up) * (value - threshold)
        down *= 1.0 + _bet(var, threshold - mean, cap_down) * (threshold - value)
        total += value
        sq += value * value
        positives += int(value)
        if up >= 1 / alpha:
            decision, decided_at = "above", t
        elif down >= 1 / alpha:
            decision, decided_at = "below", t
        if t % every == 0 or decided_at or t == n:
            path.append((t, total / t, up, down))
        if decided_at:
            break
    seen = decided_at or n
    return AuditResult(threshold, alpha, seen, positives, up, down, decision, decided_at, path)
