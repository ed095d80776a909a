"""SWE-agent `.traj` trajectories: `{environment, trajectory: [{action, observation, response,
thought, state}], history: [{role, content, agent, is_demo?}], info: {exit_status, submission,
model_stats}}`. The generic reader takes `history` (the longer list: every model turn and
observation, demonstrations included) as the steps and keeps `trajectory` as text; the task is
the first user message that is not a demonstration. The fix: a run has no id inside the file,
so the file name (the instance id) is the native id."""

from __future__ import annotations

from pathlib import Path

from tracefail.ingest.families.family import Family
from tracefail.ingest.reader import first_char
from tracefail.model import Trace


def _detect(path: Path, head: str) -> bool:
    return (
        first_char(head) == "{"
        and '"history"' in head
        and (path.suffix == ".traj" or ('"trajectory"' in head and '"info"' in head))
    )


def _fix(trace: Trace, path: Path) -> None:
    trace.native_id = trace.native_id or path.stem


SWE_AGENT = Family(
    name="swe-agent",
    description="SWE-agent .traj trajectories (history messages, trajectory, info)",
    suffixes=(".traj", ".json"),
    detect=_detect,
    fix=_fix,
)
