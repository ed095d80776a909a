"""How much of a file's text is retrievable from the traces read from it: the fidelity figure.

An adapter that drops a system prompt, a tool definition or a tool result leaves no error: the
trace looks fine, and the judge, search and the TUI never see the text. This measure makes the
loss visible on every ingest. Its definitions (also in docs/fidelity.md):

- A **text line** of a file: every string value in the file (every JSON value of a JSONL file,
  every member of a zip, every line of a plain-text file; a string that holds a JSON object or
  array is decoded and its strings are read instead), split at line breaks, whitespace runs
  collapsed to one space, ends stripped; kept when it has at least MIN_CHARS characters and
  MIN_WORDS words (tokens with a letter). Object keys, numbers and ids are not text lines.
  Each distinct line counts once.
- The **stored text** of a trace: what search, the judge and the TUI read: its task, ground
  truth, framework, model, benchmark and metadata; each step's agent, recipient, role, name,
  content, tool-call names and arguments, status and metadata; its labels' rationales and its
  attributions' reasons (with their metadata). Not `raw`: the raw record is kept, but nothing
  reads it. Its strings are read the same way (JSON text decoded, whitespace collapsed).
- A text line is **retrievable** when it is a line of the stored text or a part of one, or when
  it starts with a log header that a log splitter parses into fields (`logsplit.header_rest`)
  and the rest of the line is retrievable or not a text line.
- **Fidelity** = retrievable lines / text lines (1.0 for a file with no text lines).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracefail.ingest import archive as zipped
from tracefail.ingest.logsplit import header_rest
from tracefail.ingest.reader import RawRecord, loads
from tracefail.model import Step, Trace

MIN_CHARS = 40
MIN_WORDS = 4
# Lost lines kept per measure (the rest are only counted): what a warning or `formats --check`
# shows, not a copy of the file.
MAX_LOST = 200
TARGET = 0.99  # below this `ingest` names the file


@dataclass(frozen=True)
class Fidelity:
    """Text lines of an input and how many of them are retrievable; `lost`: some that are not."""

    lines: int
    kept: int
    lost: tuple[str, ...] = ()
    sampled: bool = False  # measured on some runs of a big record file's records, not all

    @property
    def share(self) -> float:
        return self.kept / self.lines if self.lines else 1.0

    def __add__(self, other: Fidelity) -> Fidelity:
        room = MAX_LOST - len(self.lost)
        return Fidelity(
            self.lines + other.lines,
            self.kept + other.kept,
            self.lost + other.lost[:room],
            self.sampled or other.sampled,
        )


# A word: a whitespace-separated token with a letter in it.
_WORD = re.compile(r"(?:^| )[^ ]*?[^\W\d_]")


def _is_text(line: str) -> bool:
    return (
        len(line) >= MIN_CHARS and line.count(" ") >= MIN_WORDS - 1 and len(_WORD.findall(line)) >= MIN_WORDS
    )


def _normal(line: str) -> str:
    """The line with whitespace runs collapsed to one space and its ends stripped; most lines
    need only the strip (ASCII with no double space or tab), which is 10x cheaper."""
    if line.isascii() and "  " not in line and "\t" not in line:
        return line.strip()
    return " ".join(line.split())


def _json_inside(text: str) -> Any:
    """The value of a string that is JSON text (an object, an array, or a string literal that
    holds text: JSON encoded twice), else None."""
    head = _JSON_HEAD.match(text)
    if head is None or (head.group(1), text[-64:].rstrip()[-1:]) not in _JSON_ENDS:
        return None
    try:
        value = loads(text.strip())
    except ValueError:
        return None
    return value if isinstance(value, (dict, list, str)) else None


_JSON_HEAD = re.compile(r'\s*([\[{"])')
_JSON_ENDS = {("{", "}"), ("[", "]"), ('"', '"'), ("{", "]"), ("[", "}")}


def strings(value: Any) -> Iterator[str]:
    """Every string value inside `value` (not keys); JSON text decoded into its strings, whole
    or line by line (a JSONL log inside a string)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            first = item[:1]
            inner = _json_inside(item) if first in '[{"' or first.isspace() else None
            if inner is not None:
                stack.append(inner)
            elif "\n" in item and (first in "[{" or "\n{" in item or "\n[" in item):
                plain = []
                for line in item.splitlines():
                    decoded = _json_inside(line) if line[:1] in "[{" else None
                    if decoded is None:
                        plain.append(line)
                    else:
                        stack.append(decoded)
                yield "\n".join(plain)
            else:
                yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def metadata_text(metadata: dict[str, Any]) -> str:
    """The text adapters kept in a step's or trace's metadata (what no column took: span
    attributes, tool definitions, reasoning, notes) for a reader (the judge, the TUI): one
    `[key]` block per entry with text; ids, numbers and flags (strings of fewer than three
    words) are left out."""
    blocks = []
    for key in sorted(metadata):
        if key == "error":  # Step.full_text says it already
            continue
        lines = dict.fromkeys(s.strip() for s in strings(metadata[key]) if len(s.split()) >= 3)
        if lines:
            blocks.append(f"[{key}]\n" + "\n".join(lines))
    return "\n".join(blocks)


def _distinct_lines(texts: Iterable[str]) -> set[str]:
    """The distinct normalised lines of some texts (before normalising: logs repeat lines)."""
    raw: set[str] = set()
    for text in texts:
        raw.update(text.splitlines())
    return set(map(_normal, raw))


def text_lines(values: Iterable[Any]) -> set[str]:
    """The distinct text lines of some JSON values (see the module's definition)."""
    return {line for line in _distinct_lines(s for v in values for s in strings(v)) if _is_text(line)}


def _trace_values(trace: Trace) -> list[Any]:
    """Every stored field of a trace that a reader of the corpus sees (not `raw`), where set."""
    values: list[Any] = [
        trace.task,
        trace.ground_truth,
        trace.framework,
        trace.llm,
        trace.benchmark,
        trace.metadata,
    ]
    add = values.append
    columns = trace.step_columns
    if columns is not None:  # message steps: no status, metadata or calls
        for column in (columns.content, columns.agent, columns.recipient, columns.role, columns.name):
            values.extend(column)
    for step in trace.steps:
        values.extend(step_values(step))
    for label in trace.labels:
        add(label.rationale)
        add(label.metadata)
    for attribution in trace.attributions:
        add(attribution.reason)
        add(attribution.metadata)
    return values


def step_values(step: Step) -> list[Any]:
    """The stored fields of one step that a reader sees, where set."""
    values: list[Any] = [step.content, step.agent, step.recipient, step.role, step.name, step.status]
    if step.metadata:
        values.append(step.metadata)
    for call in step.tool_calls:
        values.append(call.name)
        values.append(call.arguments)
    return values


class Stored:
    """The stored text of some traces, as a set of its lines (a line of MIN_CHARS or more is
    looked up at once) and, for the lines that are not found whole, their joined text.

    The joined text is kept in chunks of whole lines (a line looked up holds no line break, so
    it never spans two), each at most half the size of the one before it: adapters alternate
    `unread` (a lookup) and adding per span or record, and re-joining all text on each lookup
    after an add made that quadratic in the trace; merging chunks like a binary counter copies
    each line O(log n) times and keeps O(log n) chunks to search."""

    def __init__(self) -> None:
        self._lines: set[str] = set()
        self._chunks: list[str] = []
        self._fresh: list[str] = []  # lines added since the last lookup

    def add(self, trace: Trace) -> None:
        self.add_values(_trace_values(trace))

    def add_values(self, values: Iterable[Any]) -> None:
        lines = _distinct_lines(s for v in values if v for s in strings(v))
        new = {line for line in lines if len(line) >= MIN_CHARS} - self._lines
        self._lines |= new
        self._fresh.extend(new)

    def has(self, line: str) -> bool:
        if line in self._lines:
            return True
        # A log line's header rule is tried before the search inside the joined text, which
        # reads all of it: on real (diverse) logs most lines are a header and a stored line.
        rest = header_rest(line)
        if rest is not None and (not _is_text(rest) or rest in self._lines):
            return True
        if self._fresh:
            self._join_fresh()
        if any(line in chunk for chunk in self._chunks):
            return True
        return rest is not None and self.has(rest)

    def _join_fresh(self) -> None:
        chunks = self._chunks
        chunks.append("\n".join(self._fresh))
        self._fresh = []
        while len(chunks) > 1 and len(chunks[-2]) <= 2 * len(chunks[-1]):
            last = chunks.pop()
            chunks[-1] = f"{chunks[-1]}\n{last}"

    def keeps(self, value: Any) -> bool:
        """Whether every text line of a value is retrievable already."""
        return all(self.has(line) for line in text_lines([value]))

    def unread(self, record: dict[str, Any]) -> dict[str, Any]:
        """The entries of a source record whose text is not retrievable yet, which an adapter
        keeps in metadata; from then on they count as stored (kept once, where first seen)."""
        found = {k: v for k, v in record.items() if isinstance(v, (str, list, dict)) and not self.keeps(v)}
        if found:
            self.add_values([found])
        return found

    @classmethod
    def of_steps(cls, steps: Iterable[Step], *values: Any) -> Stored:
        """The stored text of some steps (and other values, such as a task)."""
        stored = cls()
        stored.add_values(values)
        for step in steps:
            stored.add_values(step_values(step))
        return stored

    def measure(self, lines: set[str]) -> Fidelity:
        lost = sorted(line for line in lines if not self.has(line))
        return Fidelity(len(lines), len(lines) - len(lost), tuple(lost[:MAX_LOST]))


def measure(values: Iterable[Any], traces: Iterable[Trace]) -> Fidelity:
    """Fidelity of traces read from an input whose JSON values are `values`."""
    stored = Stored()
    for trace in traces:
        stored.add(trace)
    return stored.measure(text_lines(values))


def record_values(records: Iterable[RawRecord]) -> Iterator[Any]:
    """The values of a run of records; an unreadable record is its text (its lines are lost)."""
    for record in records:
        try:
            yield record.json()
        except ValueError:
            yield record.text


def file_values(path: Path) -> Iterator[Any]:
    """The JSON values of a file: the members of a zip, the rows of a Parquet file, one JSON
    document, or one value per line of JSONL (a line that is not JSON is a string)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            budget = [zipped.MAX_EXPANDED]
            for name in archive.namelist()[: zipped.MAX_MEMBERS]:
                try:
                    data = zipped.member(archive, name, budget)
                except ValueError:
                    continue  # past a limit: the ingest quarantined it, no text of it is counted
                yield _document(data.decode("utf-8", "replace"))
        return
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
            yield batch.to_pylist()
        return
    yield _document(path.read_bytes().decode("utf-8", "replace"))


def _document(text: str) -> Any:
    try:
        return loads(text)
    except ValueError:
        pass
    values: list[Any] = []
    for line in text.splitlines():
        try:
            values.append(loads(line) if line.strip() else "")
        except ValueError:
            values.append(line)
    return values
