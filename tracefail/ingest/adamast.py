"""AdaMAST's canonical trace record `{problem_id, task, raw_trajectory, metadata}` (one JSON per
`trace-*.json` file, or JSONL): the trajectory is one text, `metadata._format` names where it
came from. The text is kept whole in `raw`; it is split into steps at speaker lines
(`[role] ...`, `role: ...`, `### role`) when it has them, else it is one step."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracefail.ingest.base import Rejected, excerpt, first_json, reason, with_id
from tracefail.ingest.chat import message_steps, outcome_of
from tracefail.ingest.content import mapping, parse_json_text
from tracefail.ingest.reader import RawRecord, first_char, iter_jsonl, read_whole
from tracefail.model import Step, Trace

_SPEAKER = re.compile(
    r"^(?:\[([^\]\n]{1,40})\]:?|([A-Za-z][\w .()-]{0,39}):|#{2,3} ([^\n]{1,40}))[ \t]*", re.M
)


def split_speakers(text: str) -> list[Step]:
    """Steps at speaker lines; text before the first one is its own step, nothing is dropped."""
    marks = list(_SPEAKER.finditer(text))
    if len(marks) < 2:
        return [Step(step_idx=0, content=text.strip())]
    steps = []
    if text[: marks[0].start()].strip():
        steps.append(Step(step_idx=0, content=text[: marks[0].start()].strip()))
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        speaker = next(g for g in mark.groups() if g)
        steps.append(Step(step_idx=len(steps), agent=speaker.strip(), content=text[mark.end() : end].strip()))
    return steps


def record_to_trace(record: dict[str, Any], source_file: str) -> Trace:
    raw = record.get("raw_trajectory")
    if not isinstance(raw, str) or not record.get("problem_id"):
        raise ValueError("not an AdaMAST trace (needs `problem_id` and a `raw_trajectory` text)")
    meta = mapping(record.get("metadata"))
    decoded = parse_json_text(raw)
    if isinstance(decoded, list) and decoded and all(isinstance(m, dict) and "role" in m for m in decoded):
        steps = message_steps(decoded)
    else:
        steps = split_speakers(raw)
    return with_id(
        Trace(
            trace_id="",
            source="adamast",
            native_id=str(record["problem_id"]),
            framework=meta.get("_format") or meta.get("system"),
            task=record.get("task") or None,
            outcome=outcome_of(meta.get("outcome")),
            source_file=source_file,
            raw=raw,
            metadata=meta,
            steps=steps,
        )
    )


class AdaMastAdapter:
    name = "adamast"
    description = (
        "AdaMAST canonical trace records {problem_id, task, raw_trajectory, metadata} (.json or .jsonl)"
    )
    suffixes = (".json", ".jsonl", ".ndjson")

    def sniff(self, path: Path, head: str) -> bool:
        if path.suffix == ".json":
            return first_char(head) == "{" and '"raw_trajectory"' in head and '"problem_id"' in head
        first = first_json(head)
        return isinstance(first, dict) and "raw_trajectory" in first and "problem_id" in first

    def parse(self, path: Path) -> Iterator[Trace | Rejected]:
        if path.suffix == ".json":
            records: Iterator[RawRecord] = iter([RawRecord("whole file", read_whole(path))])
        else:
            records = iter_jsonl(path)
        for raw in records:
            try:
                record = raw.json()
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                yield record_to_trace(record, str(path))
            except (ValueError, TypeError, AttributeError) as exc:
                yield Rejected(raw.locator, reason(exc), excerpt(raw.text))
