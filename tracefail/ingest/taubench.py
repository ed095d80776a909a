"""tau-bench results: a JSON array of runs {task_id, reward, info, traj: [chat messages], trial}.

The agent is the assistant, the simulated customer is the user; reward 1 is a solved task.
task_id repeats across result files (each is one run configuration), so the file name is part
of the id.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest.base import Rejected, excerpt, reason, with_id
from tracefail.ingest.chat import first_user_text, message_steps
from tracefail.ingest.content import mapping
from tracefail.ingest.reader import first_char, iter_json_array
from tracefail.model import Outcome, Trace


def record_to_trace(record: dict[str, Any], path: Path) -> Trace:
    traj = record.get("traj")
    if not isinstance(traj, list) or not traj:
        raise ValueError("no `traj` message list")
    if record.get("task_id") is None:
        raise ValueError("no `task_id`")
    reward = record.get("reward")
    if reward is not None and not isinstance(reward, int | float):
        raise ValueError(f"reward {reward!r} is not a number")
    info = mapping(record.get("info"))
    task = mapping(info.get("task"))
    outcome = Outcome.UNKNOWN if reward is None else (Outcome.SUCCESS if reward >= 1 else Outcome.FAILURE)
    return with_id(
        Trace(
            trace_id="",
            source="tau-bench",
            native_id=f"{path.stem}/{record['task_id']}/{record.get('trial', 0)}",
            framework="tau-bench",
            benchmark=info.get("env") or "tau-bench",
            task=task.get("instruction") or first_user_text(traj),
            ground_truth=str(task.get("outputs")) if task.get("outputs") else None,
            outcome=outcome,
            source_file=str(path),
            metadata={"reward": reward, "info": info},
            steps=message_steps(traj),
        )
    )


class TauBenchAdapter:
    name = "tau-bench"
    description = "tau-bench result JSON: runs with `traj` chat messages (tool calls) and `reward`"
    suffixes = (".json",)

    def sniff(self, path: Path, head: str) -> bool:
        return first_char(head) == "[" and '"traj"' in head and ('"reward"' in head or '"task_id"' in head)

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        for raw in iter_json_array(path):
            try:
                record = raw.json()
                if not isinstance(record, dict):
                    raise ValueError("record is not an object")
                yield record_to_trace(record, path)
            except (ValueError, TypeError) as exc:
                yield Rejected(raw.locator, reason(exc), excerpt(raw.text))
