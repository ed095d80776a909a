"""Text that no column took -> step or trace metadata, so nothing textual is dropped.

After a document is mapped, every string of it with words in it is looked for in what the
traces hold (step content, tool calls, names, task, metadata, line by line). One that is not
found is kept under `metadata["unmapped_text"]` of its owner: the step its item became, else the trace
of the record around it, else the first trace (wrappers around everything). A string stored
once is not stored again (a span's input repeats the conversation so far).
"""

from __future__ import annotations

import re
from typing import Any

from tracefail.ingest.reader import loads
from tracefail.ingest.shapes.find import Path, iter_strings
from tracefail.model import Step, Trace

KEY = "unmapped_text"
_TWO_WORDS = re.compile(r"\S\s+\S")  # whitespace between two non-blanks: words, not an id
MIN_CHARS = 20  # shorter strings are ids, names, enum values, not text a judge reads

Owner = Trace | Step


class Placed:
    """What the traces already hold, as whole strings and as lines."""

    def __init__(self) -> None:
        self.strings: set[str] = set()
        self.lines: set[str] = set()

    def add(self, text: str) -> None:
        if not text:
            return
        self.strings.add(text)
        self.lines.update(line.strip() for line in text.splitlines() if line.strip())
        if text.lstrip()[:1] in "[{":
            try:
                inner = loads(text)
            except ValueError:
                return
            for _, value in iter_strings(inner):
                self.add(value)

    def add_value(self, value: Any) -> None:
        for _, text in iter_strings(value):
            self.add(text)

    def holds(self, text: str) -> bool:
        if text in self.strings:
            return True
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return bool(lines) and all(line in self.lines for line in lines)

    def add_trace(self, trace: Trace) -> None:
        for value in (trace.task, trace.ground_truth, trace.raw):
            if value:
                self.add(value)
        self.add_value(trace.metadata)
        for step in trace.steps:
            self.add(step.content)
            self.add_value(step.metadata)
            for call in step.tool_calls:
                self.add(call.name)
                self.add(call.arguments)


def is_text(value: str) -> bool:
    return len(value) >= MIN_CHARS and _TWO_WORDS.search(value) is not None


def keep(document: Any, traces: list[Trace], owners: dict[Path, Owner]) -> None:
    """Put every unplaced text of `document` into its owner's `metadata[KEY]` (path -> text)."""
    if not traces:
        return
    placed = Placed()
    for trace in traces:
        placed.add_trace(trace)
    for path, text in iter_strings(document):
        if not is_text(text) or placed.holds(text):
            continue
        owner: Owner = traces[0]
        for cut in range(len(path), -1, -1):
            found = owners.get(path[:cut])
            if found is not None:
                owner = found
                break
        bucket = owner.metadata.setdefault(KEY, {})
        bucket[".".join(map(str, path)) or "value"] = text
        placed.add(text)
