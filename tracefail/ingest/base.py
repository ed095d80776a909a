"""The adapter contract: a source format turns a file into Traces, or Rejected records."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from tracefail.model import Trace, stable_id

if TYPE_CHECKING:
    from tracefail.ingest.reader import RawRecord


@dataclass(frozen=True)
class Rejected:
    """A record an adapter could not turn into a Trace; it goes to quarantine, the batch goes on."""

    record: str  # locator inside the file, e.g. "record 3", "line 17"
    reason: str  # one line a user can act on
    excerpt: str = ""


class Adapter(Protocol):
    """One source format. `sniff` must be cheap: it sees only the file name and first 64 KiB."""

    name: str
    description: str

    @property
    def suffixes(self) -> tuple[str, ...]: ...  # read-only, so a class's ("json",) fits

    def sniff(self, path: Path, head: str) -> bool: ...

    def parse(self, path: Path) -> Iterator[Trace | Rejected]: ...


@runtime_checkable
class RecordAdapter(Adapter, Protocol):
    """A format whose files are runs of independent records (MAST-Data's JSON arrays): a big
    file is cut into runs of records that several processes read at once. `parse(path)` is
    `from_records(path, records(path))`. `parsed`: records read in this process keep the
    value the record scan parsed (else they are parsed twice); records for other processes
    keep only their bytes (a parsed run waiting for a reader would hold its window and value)."""

    def records(self, path: Path, parsed: bool = False) -> Iterator[RawRecord]: ...

    def from_records(self, path: Path, records: Iterable[RawRecord]) -> Iterator[Trace | Rejected]: ...


@runtime_checkable
class ColumnAdapter(RecordAdapter, Protocol):
    """A record format whose traces can keep their steps as columns (`Trace.with_columns`):
    the ingest reads it so and builds no Step objects; `parse` and `from_records` give the
    same traces with Step objects."""

    def columns_from_records(
        self, path: Path, records: Iterable[RawRecord]
    ) -> Iterator[Trace | Rejected]: ...

    def parse_columns(self, path: Path) -> Iterator[Trace | Rejected]: ...


def excerpt(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def text_of(value: object) -> str:
    """Message content as text: strings as-is, lists of parts joined, other JSON dumped."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for part in value:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                text = part.get("text", part.get("content", part.get("reasoning")))
                parts.append(text if isinstance(text, str) else json.dumps(part, ensure_ascii=False))
            else:
                parts.append(json.dumps(part, ensure_ascii=False))
        return "\n".join(parts)
    return json.dumps(value, ensure_ascii=False)


def parse_time(value: object) -> datetime | None:
    """A timestamp as naive UTC: ISO-8601 text, or Unix seconds/ms/ns (int, float or digits)."""
    if isinstance(value, str):
        text = value
        # Text fromisoformat takes as it is ("YYYY-MM-DD HH:MM:SS...": a separator at 10, so not
        # Unix digits; no whitespace to strip, no Z to rewrite) skips the rewrites: run logs carry
        # ~100k such timestamps per 50 MB.
        if not (
            len(text) >= 19
            and text[10] in " T"
            and text[0].isdigit()
            and text[-1].isdigit()
            and "Z" not in text
        ):
            text = value.strip()
            if not text or text.lstrip("-").replace(".", "", 1).isdigit():
                return _from_number(value) if text else None
            text = text.replace("Z", "+00:00")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
    if value is None or isinstance(value, bool):
        return None
    return _from_number(value)


def _from_number(value: object) -> datetime | None:
    """Unix seconds, ms, µs or ns: the first scale that lands before 2300."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    for scale in (1, 1e3, 1e6, 1e9):
        if number / scale < 1e10:
            return datetime.fromtimestamp(number / scale, UTC).replace(tzinfo=None)
    return None


def with_id(trace: Trace) -> Trace:
    """Give a mapped trace its stable id (source + native id, else a content hash)."""
    trace.trace_id = stable_id(trace.source, trace.native_id, "" if trace.native_id else trace.content_hash())
    return trace


def as_int(value: object) -> int | None:
    """Token counts arrive as ints, floats or digit strings (OTLP intValue); anything else is None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def first_json(head: str) -> object:
    """The first JSON value of a JSONL head (its first non-empty line), or None."""
    for line in head.splitlines():
        if line.strip():
            try:
                return json.loads(line)
            except (ValueError, RecursionError):  # sniffing only: the reader rejects it by line
                return None
    return None


def reason(exc: Exception) -> str:
    """One line a user can act on. Pydantic's first line ("1 validation error for Step") names no
    field, so validation errors say which field holds what instead."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "value"
        return f"{where}: {first['msg']} (got {excerpt(repr(first.get('input')), 60)})"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
