"""Reading source files record by record with bounded memory.

A 200 MB JSON array is never loaded whole: `iter_json_array` finds each top-level element's
extent with a string-aware scan over bytes (`bytes.find` jumps from quote to quote at memchr
speed) and decodes and parses only that slice, so memory is bounded by the largest record and one broken
record does not sink the file.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

CHUNK = 1 << 20
HEAD_BYTES = 64 * 1024
_STRUCT = re.compile(rb'["{}\[\]]')
_SCALAR_END = re.compile(rb"[,\]]")
# One record's most bytes: a file with one unterminated string must not be read into memory
# whole. Ingest sets it per run (`--max-record-mb`).
MAX_RECORD_BYTES: ContextVar[int] = ContextVar("MAX_RECORD_BYTES", default=256 * 1024 * 1024)


class SourceError(Exception):
    """The file cannot be read on from here (binary, not JSON, empty, truncated, ...).

    `record` names where it broke when records before it were fine (they are kept), and
    `excerpt` holds the broken text for the quarantine row.
    """

    def __init__(self, message: str, record: str | None = None, excerpt: str = "") -> None:
        super().__init__(message)
        self.record = record
        self.excerpt = excerpt


@dataclass(frozen=True)
class RawRecord:
    """One record's text and where it sits in its file (for error messages and quarantine)."""

    locator: str  # "record 12" / "line 40" / "whole file"
    text: str
    error: str | None = None  # why this record cannot be read (bad bytes, too large)

    def json(self) -> Any:
        """The record parsed; ValueError (the adapter quarantines the record) if it is unreadable."""
        if self.error:
            raise ValueError(self.error)
        return loads(self.text)


def _reject_constant(name: str) -> None:
    """NaN/Infinity are not JSON; we read them as missing values rather than invent numbers."""
    return None


def loads(text: str | bytes) -> Any:
    """Parse JSON, mapping the non-standard NaN/Infinity tokens to None.

    orjson first (several times faster on large records); what it refuses (NaN, integers over
    64 bits, lone surrogates) goes through the standard parser, which decides what is an error.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text, parse_constant=_reject_constant)


def read_head(path: Path, size: int = HEAD_BYTES) -> str:
    """The first bytes as text, for format sniffing; raises SourceError on binary data."""
    with path.open("rb") as fh:
        data = fh.read(size)
    if not data.strip():
        raise SourceError("empty file")
    if b"\x00" in data:
        raise SourceError("binary data (NUL bytes), not a text trace file")
    try:  # incremental: a multi-byte character cut by the head limit is not an error
        text = codecs.getincrementaldecoder("utf-8")().decode(data, final=len(data) < size)
    except UnicodeDecodeError as exc:
        if b"\n" in data[: exc.start].strip():  # whole lines before it: sniff those, the line is
            return data[: data.rindex(b"\n", 0, exc.start)].decode("utf-8").lstrip("\ufeff")  # per-record
        raise SourceError(f"not UTF-8 text at byte {exc.start} (binary data or another encoding?)") from None
    return text.lstrip("\ufeff")


def open_text(path: Path):
    return path.open("r", encoding="utf-8", errors="strict", newline="")


def read_whole(path: Path) -> str:
    """A whole-file record's text, refused before reading when over the record limit."""
    limit, size = MAX_RECORD_BYTES.get(), path.stat().st_size
    if size > limit:
        raise SourceError(f"file is {size:,} bytes, over the {limit:,}-byte record limit")
    with open_text(path) as fh:
        return fh.read()


def iter_jsonl(path: Path) -> Iterator[RawRecord]:
    """Each non-blank line, read as bytes: a line with bad bytes or over the record limit becomes
    a record with an `error` (its line number and true byte offset), and the next line goes on."""
    limit = MAX_RECORD_BYTES.get()
    with path.open("rb") as fh:
        offset = 0
        for number in range(1, 1 << 62):
            line = fh.readline(limit + 1)
            if not line:
                return
            start, offset = offset, offset + len(line)
            if number == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8):]
            locator = f"line {number}"
            if len(line) > limit and not line.endswith(b"\n"):
                while (rest := fh.readline(CHUNK)) and not rest.endswith(b"\n"):  # skip, bounded
                    offset += len(rest)
                offset += len(rest)
                yield RawRecord(locator, line[:2000].decode("utf-8", "replace"),
                                f"record at byte {start} is over the {limit:,}-byte record limit")
                continue
            if not line.strip():
                continue
            try:
                text, error = line.decode("utf-8"), None
            except UnicodeDecodeError as exc:
                text = line.decode("utf-8", "replace")
                error = f"not UTF-8 text at byte {start + exc.start} (binary data or another encoding?)"
            yield RawRecord(locator, text, error)


def first_char(head: str) -> str:
    stripped = head.lstrip()
    return stripped[:1]


def iter_json_array(path: Path) -> Iterator[RawRecord]:
    """Yield each element of a top-level JSON array as its own text slice.

    The scan runs over bytes, not text: a decoded chunk holding one non-ASCII character costs
    2-4 bytes per character in Python, and JSON's structural characters never occur inside a
    UTF-8 multi-byte sequence. Only each record is decoded. The buffer keeps the unread tail
    only, so memory is bounded by the largest record, not by the file. The scan reads a copy
    of the buffer with escape pairs masked (`_masked`), so each string ends at its next quote.
    """
    limit = MAX_RECORD_BYTES.get()
    with path.open("rb") as fh:
        buf = fh.read(CHUNK)
        offset = len(codecs.BOM_UTF8) if buf.startswith(codecs.BOM_UTF8) else 0  # file offset of buf[0]
        buf = buf[offset:]
        masked = _masked(buf)
        pos = _skip_ws(buf, 0)
        if buf[pos : pos + 1] != b"[":
            raise SourceError("expected a JSON array")
        pos += 1
        index = 0
        eof = False
        while True:
            pos = _skip_separators(buf, pos)
            while pos >= len(buf) and not eof:
                more = fh.read(CHUNK)
                eof = not more
                offset, buf, pos = offset + pos, buf[pos:] + more, 0
                masked = _masked(buf)
                pos = _skip_separators(buf, pos)
            if pos >= len(buf):
                raise SourceError(
                    "truncated: the array is not closed", f"after record {index - 1}" if index else None
                )
            if buf[pos : pos + 1] == b"]":
                return
            scan = [0, 0]  # resumable: a record spanning reads is scanned once
            end = _element_end(masked, pos, scan)
            while end is None and not eof:
                if len(buf) - pos > limit:
                    raise SourceError(
                        f"record at byte {offset + pos} is over the {limit:,}-byte record limit",
                        f"record {index}",
                        buf[pos : pos + 2000].decode("utf-8", "replace"),
                    )
                more = fh.read(max(CHUNK, len(buf) - pos))
                eof = not more
                offset, buf, pos = offset + pos, buf[pos:] + more, 0
                masked = _masked(buf)
                end = _element_end(masked, pos, scan)
            if end is None:
                raise SourceError(
                    "truncated: the file ends inside this record",
                    f"record {index}",
                    buf[pos : pos + 8000].decode("utf-8", "replace")[:2000],
                )
            try:
                text = buf[pos:end].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SourceError(
                    f"not UTF-8 text at byte {offset + pos + exc.start} (binary data or another encoding?)",
                    f"record {index}",
                    buf[pos : pos + 2000].decode("utf-8", "replace"),
                ) from None
            yield RawRecord(f"record {index}", text)
            index += 1
            pos = end


def _masked(buf: bytes) -> bytes:
    """`buf` with every escape pair that can hide a quote (backslash-backslash, then
    backslash-quote) overwritten, same length: a string now ends at its next quote, found at
    memchr speed, where a trajectory has an escaped quote every ~80 bytes. Valid only for a
    buffer that starts outside a string, which each refill's does (it starts at a record)."""
    return buf.replace(b"\\\\", b"__").replace(b'\\"', b"__")


def _skip_ws(buf: bytes, pos: int) -> int:
    while pos < len(buf) and buf[pos] in b" \t\r\n":
        pos += 1
    return pos


def _skip_separators(buf: bytes, pos: int) -> int:
    while pos < len(buf) and buf[pos] in b" \t\r\n,":
        pos += 1
    return pos


def _element_end(buf: bytes, start: int, state: list[int] | None = None) -> int | None:
    """End offset of the JSON value starting at `start`, or None if the buffer ends first.

    `state` ([offset from start, depth]) carries the scan over a refill: the next call with
    a longer buffer resumes where this one stopped instead of rescanning the record.
    """
    first = buf[start : start + 1]
    if first not in (b"{", b"["):
        # a scalar element: it ends at the next comma or closing bracket outside strings
        if first == b'"':
            return string_end(buf, start + 1)
        match = _SCALAR_END.search(buf, start)
        return match.start() if match else None
    state = state if state is not None else [0, 0]
    pos, depth = start + state[0], state[1]
    while True:
        match = _STRUCT.search(buf, pos)
        if match is None:
            state[:] = [len(buf) - start, depth]
            return None
        char = match.group()
        if char == b'"':
            end = string_end(buf, match.end())
            if end is None:  # the buffer ends inside this string: resume at its quote
                state[:] = [match.start() - start, depth]
                return None
            pos = end
        else:
            pos = match.end()
            depth += 1 if char in (b"{", b"[") else -1
            if depth == 0:
                return pos


def string_end(buf: bytes, pos: int) -> int | None:
    """Offset just past the quote closing the JSON string whose body starts at `pos`, or None.

    Jumps quote to quote with `bytes.find` (memchr speed) and counts the backslashes before each:
    a trajectory is megabytes of string with an escape every few dozen bytes, where a regex
    stepping over each escape ran at ~15 MB/s.
    """
    while True:
        quote = buf.find(b'"', pos)
        if quote < 0:
            return None
        before = quote - 1
        while buf[before] == 0x5C:  # stops at the opening quote at the latest
            before -= 1
        if (quote - 1 - before) % 2 == 0:
            return quote + 1
        pos = quote + 1
