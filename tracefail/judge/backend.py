"""What every judge backend returns, and how per-window answers merge into one verdict per trace."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from tracefail.judge.prompt import TraceInput
from tracefail.model import ModeVerdict, Taxonomy, Verdict

TASKS = frozenset({"modes", "attribution"})


class JudgeError(Exception):
    """This trace could not be judged (invalid output, HTTP failure); the run goes on.

    It carries the tokens its requests used: a failed trace was still paid for."""

    tokens_in: int = 0
    tokens_out: int = 0


class JudgeUnavailable(JudgeError):
    """The endpoint itself failed (unreachable, key refused, unknown model): the next traces would
    fail the same way, so a run stops after a few of these in a row."""


@dataclass
class JudgeResult:
    verdict: Verdict
    tokens_in: int = 0
    tokens_out: int = 0
    details: dict[str, Any] = field(default_factory=dict)  # e.g. step/agent distributions


class Judge(Protocol):
    """A backend. `config()` is everything that changes its answers (hashed into the label source)."""

    def config(self) -> dict[str, Any]: ...

    async def judge(self, trace: TraceInput, taxonomy: Taxonomy, tasks: frozenset[str]) -> JudgeResult: ...

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        """Dollars for these token counts (0 for a local model)."""
        ...

    async def aclose(self) -> None:
        """Release connections or models once the run ends."""
        ...


@dataclass
class WindowAnswer:
    steps: list[int]
    modes: list[ModeVerdict]
    root_step: int | None = None
    root_agent: str | None = None
    root_probability: float = 0.0
    root_reason: str = ""


def merge_windows(trace_id: str, answers: list[WindowAnswer], n_steps: int) -> Verdict:
    """A mode is present if any window shows it (its probability is the highest window's); the
    root cause is the most probable window's, the earliest on ties. Every window was read."""
    modes: dict[str, ModeVerdict] = {}
    for answer in answers:
        for mv in answer.modes:
            best = modes.get(mv.mode_id)
            if best is None:
                modes[mv.mode_id] = mv.model_copy()
                continue
            evidence = sorted(set(best.evidence_steps) | set(mv.evidence_steps))
            winner = mv if mv.probability > best.probability else best
            modes[mv.mode_id] = winner.model_copy(
                update={"present": best.present or mv.present, "evidence_steps": evidence}
            )
    root = max(answers, key=lambda a: a.root_probability, default=None)
    steps_read = sorted({s for a in answers for s in a.steps})
    has_root = root is not None and root.root_step is not None
    return Verdict(
        trace_id=trace_id,
        modes=list(modes.values()),
        root_cause_agent=root.root_agent if has_root else None,
        root_cause_step=root.root_step if has_root else None,
        root_cause_probability=root.root_probability if has_root else None,
        summary=root.root_reason if has_root else "",
        steps_read=steps_read,
        truncated=len(steps_read) < n_steps,
    )
