"""tau2-bench simulation results: `{timestamp, info{agent_info, user_info, environment_info
(policy)}, tasks: [...], simulations: [{id, task_id, trial, messages: [{role, content,
tool_calls, turn_idx, usage, raw_data}], reward_info{reward, ...}, termination_reason}]}`. The
generic reader makes each simulation a trace of its messages (a tool message's `id` names the
call it answers). The fixes shape cannot make: each simulation gets its task definition (from
`tasks`, by `task_id`) in its metadata instead of the file's first trace holding them all, and
`reward_info.reward` (1 = success) is the outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracefail.ingest.families.family import Family
from tracefail.ingest.reader import first_char
from tracefail.model import Outcome, Trace


def attach_tasks(document: Any) -> Any:
    """Each simulation with its task definition under `task_definition`; `tasks` itself goes."""
    if not (isinstance(document, dict) and isinstance(document.get("simulations"), list)):
        return document
    tasks = {str(t.get("id")): t for t in document.get("tasks") or [] if isinstance(t, dict)}
    simulations = [
        {**sim, "task_definition": tasks.get(str(sim.get("task_id")))} if isinstance(sim, dict) else sim
        for sim in document["simulations"]
    ]
    used = {str(sim.get("task_id")) for sim in simulations if isinstance(sim, dict)}
    unused = [t for key, t in tasks.items() if key not in used]
    rest = {k: v for k, v in document.items() if k not in ("tasks", "simulations")}
    return {**rest, **({"tasks": unused} if unused else {}), "simulations": simulations}


def _fix(trace: Trace, path: Path) -> None:
    reward = (trace.metadata.get("reward_info") or {}).get("reward")
    if isinstance(reward, int | float):
        trace.outcome = Outcome.SUCCESS if reward >= 1 else Outcome.FAILURE


def _detect(path: Path, head: str) -> bool:
    return first_char(head) == "{" and '"simulations"' in head and ('"tasks"' in head or '"task_id"' in head)


TAU2 = Family(
    name="tau2-bench",
    description="tau2-bench simulation results ({info, tasks, simulations[].messages}); reward 1 = success",
    suffixes=(".json",),
    detect=_detect,
    prepare=attach_tasks,
    fix=_fix,
)
