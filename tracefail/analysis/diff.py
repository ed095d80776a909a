"""Align the steps of two runs and say where they diverge.

Two passes of difflib's SequenceMatcher: first over full step keys (agent, kind, tool, text), so
identical steps line up; then, inside each stretch that differs, over the action signature alone
(agent, kind, tool), so the same action with a different text or tool result is one "changed"
row rather than a step missing on each side. What is left over is only in one run.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

from tracefail.model import Step, StepKind

Status = Literal["same", "changed", "tool_result", "only_a", "only_b"]
MAX_COMPARE_CHARS = 4000  # text similarity is measured on the first this-many characters


@dataclass(frozen=True)
class AlignedStep:
    """One row of the alignment: a step of A, of B, or of both."""

    status: Status
    a: int | None  # step_idx in run A
    b: int | None
    agent: str | None
    action: str  # kind plus tool name(s), e.g. "tool find_user" or "message -> search"
    similarity: float  # text similarity of the two steps (1.0 same, 0.0 for one-sided rows)


def action(step: Step) -> str:
    """What a step does, beyond who does it: its kind and the tool it calls or answers for."""
    tools = ",".join(call.name for call in step.tool_calls)
    if tools:
        return f"{step.kind.value} -> {tools}"
    if step.kind == StepKind.TOOL and step.name:
        return f"tool {step.name}"
    return step.kind.value


def _signature(step: Step) -> tuple[str | None, str]:
    return step.agent, action(step)


def _text(step: Step) -> str:
    calls = " ".join(f"{c.name}({c.arguments})" for c in step.tool_calls)
    return " ".join(f"{step.content} {calls}".split())[:MAX_COMPARE_CHARS]


def similarity(a: Step, b: Step) -> float:
    return SequenceMatcher(None, _text(a), _text(b), autojunk=False).ratio()


def _pair(a: Step, b: Step) -> AlignedStep:
    ratio = similarity(a, b)
    if _text(a) == _text(b):
        status: Status = "same"
    elif a.kind == StepKind.TOOL or a.tool_call_id is not None:
        status = "tool_result"
    else:
        status = "changed"
    return AlignedStep(status, a.step_idx, b.step_idx, a.agent, action(a), ratio)


def _one_sided(step: Step, side: Literal["only_a", "only_b"]) -> AlignedStep:
    a, b = (step.step_idx, None) if side == "only_a" else (None, step.step_idx)
    return AlignedStep(side, a, b, step.agent, action(step), 0.0)


def _align_stretch(a: list[Step], b: list[Step]) -> list[AlignedStep]:
    """A differing stretch: pair steps with the same agent and action, the rest is one-sided."""
    rows: list[AlignedStep] = []
    matcher = SequenceMatcher(None, [_signature(s) for s in a], [_signature(s) for s in b], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            rows += [_pair(x, y) for x, y in zip(a[i1:i2], b[j1:j2], strict=True)]
            continue
        rows += [_one_sided(s, "only_a") for s in a[i1:i2]]
        rows += [_one_sided(s, "only_b") for s in b[j1:j2]]
    return rows


def align(a: list[Step], b: list[Step]) -> list[AlignedStep]:
    """The two runs' steps side by side, in order."""
    keys_a = [(*_signature(s), _text(s)) for s in a]
    keys_b = [(*_signature(s), _text(s)) for s in b]
    rows: list[AlignedStep] = []
    for op, i1, i2, j1, j2 in SequenceMatcher(None, keys_a, keys_b, autojunk=False).get_opcodes():
        if op == "equal":
            rows += [
                AlignedStep("same", x.step_idx, y.step_idx, x.agent, action(x), 1.0)
                for x, y in zip(a[i1:i2], b[j1:j2], strict=True)
            ]
        else:
            rows += _align_stretch(a[i1:i2], b[j1:j2])
    return rows


def first_divergence(rows: list[AlignedStep]) -> int | None:
    """Index of the first row that is not the same in both runs (None: the runs are identical)."""
    return next((i for i, row in enumerate(rows) if row.status != "same"), None)
