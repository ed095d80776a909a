"""OpenHands event streams (a JSON list of `{id, timestamp, source, action, args, message,
tool_call_metadata}` actions and `{..., observation, content, extras, cause}` observations, as
the trajectory download and `tests/runtime/trajs` hold them) and evaluation / resolver
`output.jsonl` (one run per line: `instance_id` or `issue`, `instruction`, `history` of events,
`metrics`, `test_result` or `success`). The generic reader's event rules map them; older
histories put an action's arguments beside `action` and are read too. The one fix: a resolver
run has no id of its own, so its issue (`owner/repo#number`) names it."""

from __future__ import annotations

from pathlib import Path

from tracefail.ingest.families.family import Family
from tracefail.ingest.reader import first_char
from tracefail.model import Trace


def _fix(trace: Trace, path: Path) -> None:
    issue = trace.metadata.get("issue")
    if trace.native_id is None and isinstance(issue, dict) and issue.get("number") is not None:
        trace.native_id = f"{issue.get('owner')}/{issue.get('repo')}#{issue['number']}"


def _detect(path: Path, head: str) -> bool:
    start = first_char(head)
    if start == "[":  # an event stream
        return (
            '"source"' in head and ('"action"' in head or '"observation"' in head) and '"timestamp"' in head
        )
    return (
        start == "{"
        and '"history"' in head
        and '"instruction"' in head
        and ('"action"' in head or '"observation"' in head)
    )


OPENHANDS = Family(
    name="openhands",
    description="OpenHands event streams (.json) and evaluation/resolver output.jsonl (history of events)",
    suffixes=(".json", ".jsonl"),
    detect=_detect,
    fix=_fix,
)
