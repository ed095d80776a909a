"""Attribution strategies for chat judges (`label --judge openai:MODEL --strategy S`).

`all-at-once` is the plain judge (one prompt per window). The Who&When paper's other two, and a
shortlist (MASPrism / ECHO: narrow first, then ask):
- `step-by-step`: show the trace up to step k and ask whether step k is the decisive mistake; the
  first yes is the root cause (the last step when none is).
- `binary-search`: show a range, ask whether the mistake is in its first or second half, recurse.
- `shortlist`: a trained step ranker picks the top-k steps; the LLM sees the trace and chooses
  among those candidates.
Each answers attribution only, counts tokens per trace, and never guesses: a reply that is not the
requested JSON, or names a step it was not offered, makes the trace an error.
"""

from __future__ import annotations

import json
from typing import Any

from tracefail.judge.backend import JudgeError, JudgeResult
from tracefail.judge.http import OpenAIJudge
from tracefail.judge.prompt import Piece, TraceInput, Window, instructions, new_nonce, render_trace
from tracefail.judge.ranker import RankerJudge
from tracefail.model import Taxonomy, Verdict

STRATEGIES = ("all-at-once", "step-by-step", "binary-search", "shortlist")


def _schema(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {**properties, "reason": {"type": "string"}},
        "required": [*properties, "reason"],
        "additionalProperties": False,
    }


YES_NO = _schema({"mistake": {"type": "boolean"}})
HALF = _schema({"half": {"type": "string", "enum": ["first", "second"]}})
PICK = _schema({"step": {"type": "integer"}})


class StrategyJudge:
    """Asks an OpenAI-compatible endpoint with one of the strategies above."""

    tasks = frozenset({"attribution"})

    def __init__(
        self, inner: OpenAIJudge, strategy: str, ranker: RankerJudge | None = None, k: int = 3
    ) -> None:
        if strategy not in STRATEGIES[1:]:
            raise ValueError(f"--strategy {strategy!r}: use {', '.join(STRATEGIES)}")
        if strategy == "shortlist" and ranker is None:
            raise ValueError("--strategy shortlist needs --ranker PATH (a model from `tracefail train`)")
        self.inner, self.strategy, self.ranker, self.k = inner, strategy, ranker, k

    def config(self) -> dict[str, Any]:
        extra = {"ranker": self.ranker.config(), "k": self.k} if self.ranker else {}
        return {**self.inner.config(), "strategy": self.strategy, **extra}

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return self.inner.cost(tokens_in, tokens_out)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def _ask(
        self, trace: TraceInput, shown: list[int], question: str, schema: dict
    ) -> tuple[dict, int, int]:
        nonce = new_nonce()
        steps = [s for s in trace.steps if s.step_idx in set(shown)]
        window = Window([Piece(s.step_idx, s.agent, s.content or "") for s in steps], 0, 1)
        user = render_trace(trace, window, nonce) + "\n\n" + question + "\nReply with only a JSON object."
        messages = [{"role": "system", "content": instructions(nonce)}, {"role": "user", "content": user}]
        used = [0, 0]
        reply = await self.inner._chat(messages, self.tasks, used, schema)
        t_in, t_out = used
        try:
            answer = json.loads(reply)
            if not isinstance(answer, dict) or any(key not in answer for key in schema["required"]):
                raise ValueError(f"needs {', '.join(schema['required'])}")
        except ValueError as exc:
            raise JudgeError(f"invalid {self.strategy} reply: {exc}") from None
        return answer, t_in, t_out

    async def judge(self, trace: TraceInput, taxonomy: Taxonomy, tasks: frozenset[str]) -> JudgeResult:
        if not trace.steps:
            raise JudgeError("no steps to judge")
        ids = [s.step_idx for s in trace.steps]
        tokens = [0, 0]
        questions = 0

        async def ask(shown: list[int], question: str, schema: dict) -> dict:
            nonlocal questions
            answer, t_in, t_out = await self._ask(trace, shown, question, schema)
            tokens[0] += t_in
            tokens[1] += t_out
            questions += 1
            return answer

        if self.strategy == "step-by-step":
            step = ids[-1]
            for i, candidate in enumerate(ids):
                answer = await ask(
                    ids[: i + 1],
                    f"Is step {candidate} the decisive mistake that made the whole run fail? "
                    'Answer {"mistake": true|false, "reason": "..."}.',
                    YES_NO,
                )
                if answer["mistake"] is True:
                    step = candidate
                    break
        elif self.strategy == "binary-search":
            lo, hi = 0, len(ids) - 1
            while lo < hi:
                mid = (lo + hi) // 2
                answer = await ask(
                    ids[lo : hi + 1],
                    f"The run failed. Is the decisive mistake in steps {ids[lo]}-{ids[mid]} (first) or "
                    f"in steps {ids[mid + 1]}-{ids[hi]} (second)? "
                    'Answer {"half": "first"|"second", "reason": "..."}.',
                    HALF,
                )
                lo, hi = (lo, mid) if answer["half"] == "first" else (mid + 1, hi)
            step = ids[lo]
        else:
            assert self.ranker is not None
            candidates = sorted(s for s, _ in self.ranker.ranking(trace)[: self.k])
            answer = await ask(
                ids,
                f"The run failed. Which one of the steps {candidates} is the decisive mistake? "
                'Answer {"step": N, "reason": "..."} with N one of those steps.',
                PICK,
            )
            if answer["step"] not in candidates:
                raise JudgeError(
                    f"invalid shortlist reply: step {answer['step']!r} is not one of {candidates}"
                )
            step = answer["step"]
        agent = next(s.agent for s in trace.steps if s.step_idx == step)
        verdict = Verdict(
            trace_id=trace.trace_id,
            root_cause_step=step,
            root_cause_agent=agent,
            summary=str(answer.get("reason", ""))[:2000],
            steps_read=ids,
        )
        return JudgeResult(verdict, tokens[0], tokens[1], {"strategy": self.strategy, "questions": questions})
