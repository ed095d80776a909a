"""The offline judge: a local causal LM answers yes/no questions about a fenced trace.

Each window of the trace becomes one shared prefix; the mode questions and the "did it go wrong
at step k" questions are scored on top of its KV cache (features.judge_scoring); for each mode
found, a second round asks "does step k show it?" on the same cache and keeps the top step as
evidence. Attribution is the normalized P(yes) over every step of every window, and per agent
the sum over its steps.
The model never writes free text, so trace content cannot change the output format.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from tracefail.features.loading import EMBEDDED_NAME
from tracefail.judge.backend import JudgeResult, WindowAnswer, merge_windows
from tracefail.judge.prompt import (
    PROMPT_VERSION,
    TraceInput,
    Window,
    evidence_question,
    instructions,
    mode_question,
    new_nonce,
    render_trace,
    split_windows,
    step_question,
)
from tracefail.model import FailureMode, ModeVerdict, Taxonomy

_ASK = "\n\nReviewer's question (after the trace, so it is from the reviewer):\n"
_MIN_WINDOW_CHARS = 200
_EVIDENCE_VERSION = "top-step-per-window-1"  # how evidence steps are chosen; part of the config hash


class LocalJudge:
    """`scorer` is a features.judge_scoring.YesNoScorer; built lazily from `spec` if not given."""

    def __init__(
        self,
        spec: str | None = None,
        *,
        device: str = "auto",
        window_tokens: int = 2048,
        reuse_cache: bool = True,
        scorer: Any = None,
        threads: int | None = None,
    ) -> None:
        self.spec = spec
        self.device = device
        self.window_tokens = window_tokens
        self.reuse_cache = reuse_cache
        self._scorer = scorer
        self.threads = threads
        self._name = scorer.name if scorer is not None else (spec or EMBEDDED_NAME)

    @property
    def scorer(self) -> Any:
        if self._scorer is None:
            from tracefail.features.judge_scoring import YesNoScorer, limit_threads
            from tracefail.features.loading import load_causal_lm

            loaded = load_causal_lm(self.spec, device=self.device)
            if self.threads:
                limit_threads(self.threads)
            self._scorer = YesNoScorer(
                loaded.model, loaded.tokenizer, loaded.name, loaded.device, max_tokens=self.window_tokens
            )
        return self._scorer

    def config(self) -> dict[str, Any]:
        return {
            "backend": "local",
            "model": self._name,
            "window_tokens": self.window_tokens,
            "prompt": PROMPT_VERSION,
            "evidence": _EVIDENCE_VERSION,
        }

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return 0.0

    async def aclose(self) -> None:
        return None

    async def judge(self, trace: TraceInput, taxonomy: Taxonomy, tasks: frozenset[str]) -> JudgeResult:
        return await asyncio.to_thread(self.judge_sync, trace, taxonomy, tasks)

    def _windows(self, trace: TraceInput, taxonomy: Taxonomy, tasks: frozenset[str]) -> list[Window]:
        """Windows whose longest prompt fits the model: start at ~3 chars/token, halve until all fit."""
        scorer = self.scorer
        questions = [mode_question(m) for m in taxonomy.modes] if "modes" in tasks else []
        questions.append(step_question(10**6))
        longest_question = max(scorer.count_tokens(q) for q in questions) + 16
        overhead = scorer.count_tokens(instructions("0" * 16) + _ASK) + 64 + longest_question
        if trace.task:
            overhead += scorer.count_tokens(trace.task)
        chars = max(_MIN_WINDOW_CHARS, (scorer.max_tokens - overhead) * 3)
        while True:
            windows = split_windows(trace.steps, chars)
            sizes = [scorer.count_tokens(render_trace(trace, w, "0" * 16)) for w in windows]
            if max(sizes) + overhead <= scorer.max_tokens or chars <= _MIN_WINDOW_CHARS:
                return windows
            chars = max(_MIN_WINDOW_CHARS, chars // 2)

    @staticmethod
    def _evidence(
        read: Any, tail: str, found: list[tuple[FailureMode, float]], steps: list[int]
    ) -> tuple[dict[str, tuple[int, float]], int]:
        """For each mode found in this window, the step with the highest P(yes) to "does step k show
        it?", asked on the same cached prefix. A 135M model says yes to most steps, so only the top
        step is kept as evidence (its probability goes into the rationale), not every step above 0.5."""
        if not found or not steps:
            return {}, 0
        questions = [evidence_question(m, k) + tail for m, _ in found for k in steps]
        scores = read.score(questions)
        best: dict[str, tuple[int, float]] = {}
        for i, (mode, _) in enumerate(found):
            row = scores.probabilities[i * len(steps) : (i + 1) * len(steps)]
            top = max(range(len(steps)), key=lambda j: row[j])
            best[mode.id] = (steps[top], row[top])
        return best, scores.tokens_in

    def judge_sync(self, trace: TraceInput, taxonomy: Taxonomy, tasks: frozenset[str]) -> JudgeResult:
        scorer = self.scorer
        windows = self._windows(trace, taxonomy, tasks)
        answers: list[WindowAnswer] = []
        step_scores: dict[int, float] = {}
        agent_of = {s.step_idx: s.agent for s in trace.steps}
        tokens = 0
        for window in windows:
            nonce = new_nonce()
            prefix, tail = scorer.split_prompt(instructions(nonce), render_trace(trace, window, nonce) + _ASK)
            modes = list(taxonomy.modes) if "modes" in tasks else []
            steps = window.steps if "attribution" in tasks else []
            questions = [mode_question(m) + tail for m in modes] + [step_question(s) + tail for s in steps]
            read = scorer.read(prefix, reuse_cache=self.reuse_cache)
            scores = read.score(questions)
            tokens += read.prefix_tokens + scores.tokens_in
            mode_scores = scores.probabilities[: len(modes)]
            for step, p in zip(steps, scores.probabilities[len(modes) :], strict=True):
                step_scores[step] = max(p, step_scores.get(step, 0.0))  # a step split over windows
            where = f"steps {window.steps[0]}-{window.steps[-1]}" if window.steps else "no steps"
            found = [(m, p) for m, p in zip(modes, mode_scores, strict=True) if p >= 0.5]
            evidence, asked = self._evidence(read, tail, found, window.steps)
            tokens += asked
            answers.append(
                WindowAnswer(
                    steps=window.steps,
                    modes=[
                        _mode_verdict(m, p, evidence.get(m.id), agent_of, where, window)
                        for m, p in zip(modes, mode_scores, strict=True)
                    ],
                )
            )
        verdict = merge_windows(trace.trace_id, answers, len(trace.steps))
        details: dict[str, Any] = {"windows": len(windows), "model": scorer.name}
        if step_scores:
            total = sum(step_scores.values()) or 1.0
            step_dist = {s: p / total for s, p in sorted(step_scores.items())}
            agent_dist: dict[str, float] = defaultdict(float)
            for s, p in step_dist.items():
                agent_dist[agent_of.get(s) or "unknown"] += p
            step = max(step_dist, key=lambda s: step_dist[s])
            agent = max(agent_dist, key=lambda a: agent_dist[a])
            verdict = verdict.model_copy(
                update={
                    "root_cause_step": step,
                    "root_cause_agent": agent,
                    "root_cause_probability": step_dist[step],
                    "summary": f"step {step} has the highest normalized P(yes) ({step_dist[step]:.3f}); "
                    f"agent {agent} has the highest summed probability ({agent_dist[agent]:.3f})",
                }
            )
            details["step_distribution"] = {str(s): round(p, 4) for s, p in step_dist.items()}
            details["agent_distribution"] = {a: round(p, 4) for a, p in agent_dist.items()}
            details["agent_probability"] = agent_dist[agent]
        return JudgeResult(verdict, tokens_in=tokens, tokens_out=0, details=details)


def _mode_verdict(
    mode: FailureMode,
    p: float,
    evidence: tuple[int, float] | None,
    agent_of: dict[int, str | None],
    where: str,
    window: Window,
) -> ModeVerdict:
    rationale = (
        f"local judge: P(yes)={p:.3f} from next-token probabilities after reading {where} "
        f"(window {window.index + 1}/{window.count})"
    )
    if evidence is None:
        return ModeVerdict(mode_id=mode.id, present=p >= 0.5, probability=p, rationale=rationale)
    step, p_step = evidence
    return ModeVerdict(
        mode_id=mode.id,
        present=p >= 0.5,
        probability=p,
        evidence_steps=[step],
        agent=agent_of.get(step),
        rationale=f"{rationale}; step {step} shows it most (P(yes)={p_step:.3f})",
    )
