"""`--judge ranker:PATH`: a step ranker saved by `tracefail train`, applied as a judge backend.

The root cause is the top-ranked step and its speaker the agent; the probability is the
ranker's temperature-calibrated softmax over the trace's steps; the top steps and their
probabilities go into the attribution's metadata (for eval's top-3 recall and for shortlists).
It answers attribution only: it has no opinion on failure modes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from tracefail.analysis.ranker import LinearRanker
from tracefail.analysis.step_features import StepRow, columns, trace_features
from tracefail.judge.backend import JudgeError, JudgeResult
from tracefail.judge.prompt import TraceInput
from tracefail.model import Taxonomy, Verdict

PREFIX = "ranker"
TOP_K = 5


class RankerJudge:
    tasks = frozenset({"attribution"})

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            text = self.path.read_text()
            self.model = LinearRanker.from_json(text)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"--judge ranker:{path}: {exc}") from exc
        try:
            self._columns = columns(self.model.features)
        except ValueError as exc:
            raise ValueError(f"--judge ranker:{path}: {exc}; re-run `tracefail train`") from None
        # Set by the label service from its corpus check: {"validated": bool, "transfer": why}.
        self.transfer: dict[str, object] = {}
        self._digest = hashlib.sha256(text.encode()).hexdigest()[:16]

    def config(self) -> dict[str, Any]:
        return {"backend": PREFIX, "model_sha256": self._digest, "version": self.model.summary.get("version")}

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return 0.0

    async def aclose(self) -> None:
        return None

    def ranking(self, trace: TraceInput) -> list[tuple[int, float]]:
        """(step, probability), most likely root cause first."""
        rows = [StepRow(s.step_idx, s.agent, s.role, s.kind.value, s.content) for s in trace.steps]
        p = self.model.probabilities(trace_features(rows, trace.task)[:, self._columns])
        return [(trace.steps[i].step_idx, float(p[i])) for i in np.argsort(-p, kind="stable")]

    async def judge(self, trace: TraceInput, taxonomy: Taxonomy, tasks: frozenset[str]) -> JudgeResult:
        if not trace.steps:
            raise JudgeError("no steps to rank")
        ranked = self.ranking(trace)
        step, probability = ranked[0]
        agent = next(s.agent for s in trace.steps if s.step_idx == step)
        verdict = Verdict(
            trace_id=trace.trace_id,
            root_cause_step=step,
            root_cause_agent=agent,
            root_cause_probability=min(1.0, probability),
            summary=f"step ranker: step {step} ranked first of {len(ranked)}",
            steps_read=[s.step_idx for s in trace.steps],
        )
        details = {
            "top_steps": [s for s, _ in ranked[:TOP_K]],
            "top_probabilities": [round(p, 4) for _, p in ranked[:TOP_K]],
            **self.transfer,
        }
        return JudgeResult(verdict, details=details)
