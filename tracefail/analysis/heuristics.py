"""Heuristic failure labels read off the steps and the hand-off graph, stored like any other
label source so that `stats` can compare them with judge and human labels.

- `heuristic:repetition` -> mode 1.3 (step repetition): a step's text repeats an earlier step.
- `heuristic:loop` -> mode 1.5 (unaware of termination conditions): the trace ends inside a
  hand-off cycle repeated at least three times, i.e. the agents kept going round without stopping.

Every trace gets a present/absent label from both, so agreement (kappa) is defined.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tracefail.graph.handoff import repeated_loops, repeated_steps
from tracefail.model import Label, Taxonomy

REPETITION = "heuristic:repetition"
LOOP = "heuristic:loop"
SOURCES = (REPETITION, LOOP)
REPETITION_MODE = "1.3"
LOOP_MODE = "1.5"


def _agent_of(steps: Sequence[Any], idx: int) -> str | None:
    for step in steps:
        if step["step_idx"] == idx:
            return step["agent"]
    return None


def trace_labels(
    trace_id: str, steps: Sequence[dict[str, Any]], taxonomy: Taxonomy, ignore: Iterable[str] = ()
) -> list[Label]:
    """The two heuristic labels of one trace (steps: dicts with step_idx, agent, recipient, content)."""
    base = {"trace_id": trace_id, "taxonomy_id": taxonomy.id, "taxonomy_version": taxonomy.version}
    groups = repeated_steps(steps, ignore=ignore)
    repeats = sorted(i for g in groups for i in g[1:])
    repetition = Label(
        **base,
        mode_id=REPETITION_MODE,
        present=bool(groups),
        evidence_steps=repeats,
        agent=_agent_of(steps, repeats[0]) if repeats else None,
        rationale="; ".join(f"steps {', '.join(map(str, g[1:]))} repeat step {g[0]}" for g in groups) or None,
        source=REPETITION,
    )
    last = max((s["step_idx"] for s in steps), default=-1)
    loops = [lp for lp in repeated_loops(steps) if lp.last_step >= last - 1]
    loop = Label(
        **base,
        mode_id=LOOP_MODE,
        present=bool(loops),
        evidence_steps=[loops[0].last_step] if loops else [],
        rationale=(
            f"ends in {' -> '.join(loops[0].agents)} repeated {loops[0].repeats} times "
            f"(steps {loops[0].first_step}-{loops[0].last_step})"
            if loops
            else None
        ),
        source=LOOP,
    )
    return [repetition, loop]
