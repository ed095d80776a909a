"""Who&When (ag2ai/Agents_Failure_Attribution): one JSON object per failed run, or Parquet rows.

Two variants share one schema. Algorithm-Generated (AG2/CaptainAgent) names the speaker in
`history[].name`; its `role` is relative to the receiver and is NOT the speaker. Hand-Crafted
(Magentic-One) has no `name`: the speaker is inside `role`, e.g. "Orchestrator (-> WebSurfer)".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest.base import Rejected, excerpt, reason, text_of, with_id
from tracefail.ingest.reader import RawRecord, first_char, iter_json_array, loads, read_head, read_whole
from tracefail.model import Attribution, Outcome, Step, Trace

SOURCE = "whowhen"
_MAGENTIC_ROLE = re.compile(r"^\s*(?P<agent>[^()]+?)\s*(?:\((?P<note>[^)]*)\))?\s*$")


_GAIA_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ASSISTANTBENCH_ID = re.compile(r"[0-9a-f]{64}")


def benchmark_of(question_id: object) -> str:
    """Who&When mixes GAIA and AssistantBench tasks without naming either; their task ids tell
    them apart (GAIA's are UUIDs, AssistantBench's 64 hex digits). Any other id stays ambiguous."""
    text = str(question_id or "").lower()
    if _GAIA_ID.fullmatch(text):
        return "GAIA"
    if _ASSISTANTBENCH_ID.fullmatch(text):
        return "AssistantBench"
    return "AssistantBench/GAIA"


def parse_magentic_role(role: str) -> tuple[str, str | None, str | None]:
    """'Orchestrator (-> WebSurfer)' -> ('Orchestrator', 'WebSurfer', None);
    'WebSurfer (thought)' -> ('WebSurfer', None, 'thought')."""
    match = _MAGENTIC_ROLE.match(role or "")
    if not match:
        return role, None, None
    agent, note = match.group("agent").strip(), (match.group("note") or "").strip()
    if note.startswith("->"):
        return agent, note[2:].strip() or None, None
    return agent, None, note or None


def _outcome(record: dict[str, Any]) -> Outcome:
    flag = record.get("is_correct", record.get("is_corrected"))
    if flag is None:
        return Outcome.UNKNOWN
    return Outcome.SUCCESS if flag in (True, "True", "true") else Outcome.FAILURE


def record_to_trace(record: dict[str, Any], source_file: str) -> Trace:
    """Map one Who&When record; raises ValueError with a user-facing reason when it cannot."""
    history = record.get("history")
    if not isinstance(history, list) or not history:
        raise ValueError("no `history` list of messages")
    handcrafted = not any(isinstance(m, dict) and "name" in m for m in history)
    steps = []
    for idx, message in enumerate(history):
        if not isinstance(message, dict):
            raise ValueError(f"history[{idx}] is not an object")
        role = message.get("role")
        agent: str | None
        if handcrafted:
            agent, recipient, note = parse_magentic_role(str(role or ""))
        else:
            agent, recipient, note = message.get("name"), None, None
        steps.append(
            Step(
                step_idx=idx,
                agent=agent or None,
                recipient=recipient,
                role=role,
                name=note,
                content=text_of(message.get("content")),
                metadata={k: v for k, v in message.items() if k not in {"content", "role", "name"}},
            )
        )
    native = record.get("question_ID")
    framework = "Magentic-One" if handcrafted else "AG2"
    trace = Trace(
        trace_id="",
        source=SOURCE,
        native_id=f"{'hand-crafted' if handcrafted else 'algorithm-generated'}/{native}" if native else None,
        framework=framework,
        benchmark=record.get("benchmark") or benchmark_of(native),
        task=record.get("question"),
        ground_truth=None if record.get("ground_truth") is None else str(record.get("ground_truth")),
        outcome=_outcome(record),
        source_file=source_file,
        metadata={k: record[k] for k in ("level", "system_prompt", "mistake_type", "labels") if k in record},
        steps=steps,
    )
    with_id(trace)
    step_raw = record.get("mistake_step")
    if record.get("mistake_agent") is not None or step_raw is not None:
        step_idx = _step_index(step_raw, len(steps))
        trace.attributions.append(
            Attribution(
                trace_id=trace.trace_id,
                agent=record.get("mistake_agent"),
                step_idx=step_idx,
                reason=record.get("mistake_reason"),
                source=f"dataset:{SOURCE}",
                metadata={"index_base": 0, "raw_step": step_raw},
            )
        )
    return trace


def _step_index(raw: Any, n_steps: int) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        idx = int(str(raw).strip())
    except ValueError as exc:
        raise ValueError(f"mistake_step {raw!r} is not an integer") from exc
    if not 0 <= idx < n_steps:
        raise ValueError(f"mistake_step {idx} is outside the {n_steps} steps of history")
    return idx


def looks_like_record(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("history"), list)
        and ("mistake_agent" in obj or "question_ID" in obj or "mistake_step" in obj)
    )


class WhoWhenAdapter:
    name = "whowhen"
    description = "Who&When failure-attribution JSON (AG2 and Magentic-One variants), or its Parquet"
    suffixes = (".json", ".parquet")

    def sniff(self, path: Path, head: str) -> bool:
        if path.suffix == ".parquet":
            return _parquet_has(path, {"history", "mistake_agent"})
        return (
            first_char(head) in "{["
            and '"history"' in head
            and ('"mistake_agent"' in head or '"question_ID"' in head or '"mistake_step"' in head)
        )

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        if path.suffix == ".parquet":
            yield from self._parse_parquet(path)
            return
        array = first_char(read_head(path, 64)) == "["
        records = iter_json_array(path) if array else iter([RawRecord("whole file", read_whole(path))])
        for raw in records:
            yield self._one(raw, str(path))

    def _one(self, raw: RawRecord, source_file: str) -> Trace | Rejected:
        try:
            record = raw.json()
        except ValueError as exc:
            return Rejected(raw.locator, f"not valid JSON: {exc}", excerpt(raw.text))
        return self._from_obj(raw.locator, record, source_file, raw)

    def _from_obj(
        self, locator: str, record: Any, source_file: str, raw: RawRecord | None = None
    ) -> Trace | Rejected:
        """The record's trace; a Rejected with the record's text (decoded only then) if none."""
        why = "not a Who&When record (needs `history` and `mistake_*`)"
        if looks_like_record(record):
            try:
                return record_to_trace(record, source_file)
            except ValueError as exc:
                why = reason(exc)
        return Rejected(locator, why, excerpt(raw.text) if raw is not None else "")

    def _parse_parquet(self, path: Path) -> Iterator[Trace | Rejected]:
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        index = 0
        for batch in parquet.iter_batches(batch_size=256):
            for row in batch.to_pylist():
                history = row.get("history")
                if isinstance(history, str):
                    try:
                        row["history"] = loads(history)
                    except ValueError as exc:
                        yield Rejected(f"row {index}", f"history is not valid JSON: {exc}")
                        index += 1
                        continue
                yield self._from_obj(f"row {index}", row, str(path))
                index += 1


def _parquet_has(path: Path, columns: set[str]) -> bool:
    import pyarrow.parquet as pq

    try:
        names = set(pq.read_schema(path).names)
    except Exception:
        return False
    return columns <= names
