"""Attribution scoring: the strong structural baselines, hit rates within ±k steps, and paired
bootstrap differences, so a method is only ever read beside the rules it has to beat.

Rules come from reference/attribution.md: in Who&When the first or last *worker* step (neither
user, orchestrator nor tool) and the last worker's speaker are far stronger than random.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tracefail.analysis.agreement import accuracy_ci, bootstrap_ci
from tracefail.analysis.step_features import normalise_role


@dataclass(frozen=True)
class TraceSteps:
    """What the rules read from one trace: each step's speaker and normalised role."""

    trace_id: str
    agents: tuple[str | None, ...]
    roles: tuple[str, ...]

    @classmethod
    def from_steps(
        cls, trace_id: str, steps: Sequence[tuple[str | None, str | None, str | None]]
    ) -> TraceSteps:
        """steps: (agent, role, kind) in step order."""
        return cls(
            trace_id,
            tuple(a for a, _, _ in steps),
            tuple(normalise_role(a, r, k) for a, r, k in steps),
        )

    def workers(self) -> list[int]:
        return [i for i, r in enumerate(self.roles) if r == "worker"]

    def first_turn(self, agent: str | None) -> int | None:
        return self.agents.index(agent) if agent in self.agents else None


@dataclass(frozen=True)
class Gold:
    step: int | None
    agent: str | None


Guess = tuple[int | None, str | None]  # (step, agent)


def _at(trace: TraceSteps, step: int | None) -> Guess:
    if step is None or not 0 <= step < len(trace.agents):
        return None, None
    return step, trace.agents[step]


def _most_frequent(trace: TraceSteps, allowed: set[str]) -> Guess:
    speakers = [a for a, r in zip(trace.agents, trace.roles, strict=True) if a and r in allowed]
    if not speakers:
        return None, None
    top = Counter(speakers).most_common(1)[0][1]
    agent = next(a for a in speakers if speakers.count(a) == top)  # ties: who spoke first
    return trace.first_turn(agent), agent


def _last_worker_speaker(trace: TraceSteps) -> Guess:
    workers = trace.workers()
    if not workers:
        return None, None
    agent = trace.agents[workers[-1]]
    return trace.first_turn(agent), agent


def baseline_rules(
    gold_positions: Sequence[float], gold_steps: Sequence[int]
) -> dict[str, Callable[[TraceSteps], Guess]]:
    """Each rule maps a trace to a guess. The two "most common" rules learn from the gold labels
    they are given (pass only training labels when the rule is scored on held-out traces)."""
    steps = Counter(gold_steps)
    common_step = min(steps, key=lambda s: (-steps[s], s)) if steps else 0  # ties: the earliest
    bins = Counter(round(p, 1) for p in gold_positions)
    common_pos = min(bins, key=lambda b: (-bins[b], b)) if bins else 0.0

    def worker(which: int) -> Callable[[TraceSteps], Guess]:
        return lambda t: _at(t, t.workers()[which] if t.workers() else None)

    return {
        "first_step": lambda t: _at(t, 0),
        "most_common_step": lambda t: _at(t, common_step),
        "most_common_position": lambda t: _at(t, round(common_pos * (len(t.agents) - 1))),
        "first_worker_step": worker(0),
        "last_worker_step": worker(-1),
        "last_worker_speaker": _last_worker_speaker,
        "most_frequent_speaker": lambda t: _most_frequent(t, {"user", "orchestrator", "tool", "worker"}),
        "most_frequent_non_orchestrator": lambda t: _most_frequent(t, {"worker", "tool"}),
    }


def random_expectation(trace: TraceSteps, gold: Gold) -> tuple[float, float, float, float]:
    """Expected (agent, step, step±1, step±3) hit rate of a uniform guess over agents and steps."""
    agents = {a for a in trace.agents if a}
    n = len(trace.agents)
    agent = 1 / len(agents) if gold.agent in agents else 0.0
    step = gold.step
    if step is None or not 0 <= step < n:
        return agent, 0.0, 0.0, 0.0

    def within(k: int) -> float:
        return (min(n - 1, step + k) - max(0, step - k) + 1) / n

    return agent, 1 / n, within(1), within(3)


@dataclass(frozen=True)
class Hits:
    """Per-trace hits (0/1, or an expectation for random) of one method, in one trace order."""

    agent: np.ndarray
    step: np.ndarray
    within1: np.ndarray
    within3: np.ndarray

    @classmethod
    def of(cls, guesses: Sequence[Guess], golds: Sequence[Gold]) -> Hits:
        def near(k: int) -> np.ndarray:
            return np.array(
                [
                    s is not None and g.step is not None and abs(s - g.step) <= k
                    for (s, _), g in zip(guesses, golds, strict=True)
                ],
                dtype=float,
            )

        agent = np.array(
            [a is not None and a == g.agent for (_, a), g in zip(guesses, golds, strict=True)], dtype=float
        )
        return cls(agent, near(0), near(1), near(3))

    def summary(self, reps: int, baseline: Hits | None = None) -> dict[str, dict[str, float]]:
        """Each metric with its 95% interval; beside a reference method also the paired
        difference (this minus it) with its interval, resampling the same traces for both."""
        out = {}
        for name in ("agent", "step", "within1", "within3"):
            mine = getattr(self, name)
            out[name] = accuracy_ci(mine.tolist(), reps=reps)
            if baseline is not None:
                diff = mine - getattr(baseline, name)

                def mean_diff(idx: np.ndarray, d: np.ndarray = diff) -> float:
                    return float(d[idx].mean())

                low, high = bootstrap_ci(mean_diff, len(diff), reps=reps)
                out[name] = {**out[name], "diff": float(diff.mean()), "diff_low": low, "diff_high": high}
        return out


def top_k_recall(rankings: Sequence[Sequence[int]], golds: Sequence[Gold], k: int = 3) -> np.ndarray:
    """1 where the gold step is among the first k steps of the method's ranking."""
    return np.array(
        [g.step is not None and g.step in list(r)[:k] for r, g in zip(rankings, golds, strict=True)],
        dtype=float,
    )


def baseline_hits(
    traces: Sequence[TraceSteps], golds: Sequence[Gold], train_golds: Sequence[tuple[Gold, int]] | None = None
) -> dict[str, Hits]:
    """Hits of every rule plus random on these traces. `train_golds` (gold, n_steps) feeds the
    "most common" rules; by default the same traces' gold (an oracle floor, said so in reports)."""
    pool = (
        train_golds
        if train_golds is not None
        else [(g, len(t.agents)) for t, g in zip(traces, golds, strict=True)]
    )
    steps = [g.step for g, _ in pool if g.step is not None]
    positions = [g.step / max(1, n - 1) for g, n in pool if g.step is not None]
    rules = baseline_rules(positions, steps)
    out = {name: Hits.of([rule(t) for t in traces], golds) for name, rule in rules.items()}
    expected = np.array(
        [random_expectation(t, g) for t, g in zip(traces, golds, strict=True)], dtype=float
    ).reshape(-1, 4)
    out["random"] = Hits(expected[:, 0], expected[:, 1], expected[:, 2], expected[:, 3])
    return out
