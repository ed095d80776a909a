"""LangSmith run payloads: `/runs/batch` bodies (`{"post": [runs], "patch": [runs]}`, as the
SDKs send them and record them in their tests), run lists and run trees (`child_runs`). A run is
`{id, trace_id, parent_run_id, dotted_order, name, run_type, start_time, end_time, inputs,
outputs, error, extra, events}`; the generic span reader maps it (`run_type` is the span kind,
`outputs` the content, `error` the status).

The one fix shape cannot make: a run's `post` and `patch` halves are one run, merged field by
field (a patch may carry no `id`: the last segment of its `dotted_order` names the run). The
task comes from the root run's `inputs.messages` by the generic input rule."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tracefail.ingest.families.family import Family
from tracefail.ingest.reader import first_char

_RUN_ID = re.compile(r"Z([0-9a-f-]{36})$")


def run_id(run: dict[str, Any]) -> str | None:
    """A run's id, or the run its `dotted_order` ends with."""
    if run.get("id"):
        return str(run["id"])
    match = _RUN_ID.search(str(run.get("dotted_order") or ""))
    return match.group(1) if match else None


def merge_batch(document: Any) -> Any:
    """`{"post": [...], "patch": [...]}` -> `{"runs": [one merged run per id]}`; other documents
    as they are. A patch's non-empty fields win (end time, outputs, error come with it)."""
    if not (isinstance(document, dict) and ("post" in document or "patch" in document)):
        return document
    runs: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for half in ("post", "patch"):
        for run in document.get(half) or []:
            if not isinstance(run, dict):
                continue
            key = run_id(run) or f"{half}-{len(order)}"
            if key not in runs:
                runs[key] = {}
                order.append(key)
            runs[key].update({k: v for k, v in run.items() if v not in (None, "", [], {})})
            runs[key].setdefault("id", key)
    rest = {k: v for k, v in document.items() if k not in ("post", "patch")}
    return {**rest, "runs": [runs[key] for key in order]}


def _detect(path: Path, head: str) -> bool:
    batch = any(f'"{key}"' in head for key in ("post", "patch", "child_runs")) and '"run_type"' in head
    return first_char(head) in ("{", "[") and (batch or ('"dotted_order"' in head and '"trace_id"' in head))


LANGSMITH = Family(
    name="langsmith",
    description="LangSmith runs: /runs/batch post+patch bodies (one run per id), run lists, child_runs trees",
    suffixes=(".json",),
    detect=_detect,
    prepare=merge_batch,
)
