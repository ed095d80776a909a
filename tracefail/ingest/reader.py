"""Reading source files record by record with bounded memory.

A 200 MB JSON array is never loaded whole: `iter_json_array` reads it in windows and finds
each top-level element's extent, so memory is bounded by the window and the largest record,
and one broken record does not sink the file. Most arrays are written one record per line or
pretty-printed, so a record's likely end is found with one `bytes.find` and confirmed by
parsing that slice with orjson (the parse the record needs anyway); anything else falls back
to a string-aware scan over bytes.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from tracefail.ingest.base import Rejected, excerpt, reason
from tracefail.model import Trace

CHUNK = 4 << 20  # the array reader's read window: 1-8 MiB measured, 4 as fast as 8 in less memory
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


_UNPARSED: Any = object()


class RawRecord:
    """One record's text and where it sits in its file (for error messages and quarantine).

    The array reader hands over the record's bytes together with the value it parsed to find
    where the record ends, so a clean record is parsed once and never decoded to `str`; the
    text is decoded only when asked for (an excerpt of a rejected record). Pickled (to a reader
    process) it travels as its bytes alone: the receiver parses them, which costs no more
    than unpickling the parsed value would. `digits_checked`: the reader saw no run of 20
    digits in it, so orjson reads it exactly and `loads` need not look again.
    """

    __slots__ = ("_data", "_value", "digits_checked", "error", "locator")

    def __init__(
        self,
        locator: str,
        text: str | bytes | memoryview,
        error: str | None = None,
        value: Any = _UNPARSED,
        digits_checked: bool = False,
    ) -> None:
        self.locator = locator  # "record 12" / "line 40" / "whole file"
        self.error = error  # why this record cannot be read (bad bytes, too large)
        self._data = text
        self._value = value
        self.digits_checked = digits_checked

    def __reduce__(self) -> tuple[Callable[..., RawRecord], tuple[str, str | bytes, str | None, bool]]:
        data = self._data
        text = data if isinstance(data, str) else bytes(data)
        return _unpickled, (self.locator, text, self.error, self.digits_checked)

    @property
    def text(self) -> str:
        data = self._data
        return data if isinstance(data, str) else str(data, "utf-8", "replace")

    @property
    def size(self) -> int:
        """The record's length as read (bytes, or characters of text), without decoding it."""
        return len(self._data)  # a memoryview of bytes counts bytes

    def json(self) -> Any:
        """The record parsed; ValueError (the adapter quarantines the record) if it is unreadable."""
        if self.error:
            raise ValueError(self.error)
        if self._value is not _UNPARSED:
            return self._value
        data = self._data
        return loads(data if isinstance(data, (str, bytes)) else bytes(data), self.digits_checked)


def _unpickled(locator: str, text: str | bytes, error: str | None, digits_checked: bool) -> RawRecord:
    """A RawRecord as it arrives in another process: its text, not the value parsed here."""
    return RawRecord(locator, text, error, digits_checked=digits_checked)


def _reject_constant(name: str) -> None:
    """NaN/Infinity are not JSON; we read them as missing values rather than invent numbers."""
    return None


# Every digit as "0", every other byte as " ": a run of 20 zeros (_LONG_RUN) marks where an
# integer over 64 bits may be, found at memchr speed (0.1 s for 50 MB).
_DIGITS_ONLY = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_RUN = b"0" * 20


# Values nested deeper are refused as their record's error: every reader, adapter, pydantic and
# json.dumps recurse once (or more) per level under Python's limit of 1,000 frames, and no real
# trace nests past a few dozen. orjson stops at 1,024 itself; the standard parser would recurse.
MAX_DEPTH = 200


def loads(text: str | bytes, digits_checked: bool = False) -> Any:
    """Parse JSON, mapping the non-standard NaN/Infinity tokens to None; ValueError for JSON that
    is broken or nested over MAX_DEPTH levels (the record is rejected, never its file).

    orjson first (several times faster on large records); what it refuses (NaN, lone
    surrogates) or would round goes through the standard parser, which decides what is an error.
    orjson reads an integer over 64 bits as a float (3.13: an OTel trace id 2**127 + 1 comes back
    as 1.7e38, silently), so a text with 20 digits in a row goes to the standard parser, which
    keeps every integer exact (digits inside a string only cost the slower parser);
    `digits_checked` says the caller looked already.
    """
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if digits_checked or _LONG_RUN not in data.translate(_DIGITS_ONLY):
        try:
            return within_depth(data, orjson.loads(data))  # bytes: a str would be encoded twice
        except orjson.JSONDecodeError:
            pass
    try:
        return within_depth(data, json.loads(text, parse_constant=_reject_constant))
    except RecursionError:
        raise ValueError(f"JSON nested deeper than the {MAX_DEPTH}-level limit") from None


def within_depth(data: bytes, value: Any) -> Any:
    """`value` (parsed from `data`) if it nests at most MAX_DEPTH levels, else ValueError. Text
    with fewer brackets than that cannot be deeper, so most records cost two byte counts."""
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH or not isinstance(value, (dict, list)):
        return value
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"JSON nested deeper than the {MAX_DEPTH}-level limit")
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return value


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
                line = line[len(codecs.BOM_UTF8) :]
            locator = f"line {number}"
            if len(line) > limit and not line.endswith(b"\n"):
                while (rest := fh.readline(CHUNK)) and not rest.endswith(b"\n"):  # skip, bounded
                    offset += len(rest)
                offset += len(rest)
                yield RawRecord(
                    locator,
                    line[:2000].decode("utf-8", "replace"),
                    f"record at byte {start} is over the {limit:,}-byte record limit",
                )
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


def iter_json_array(path: Path, values: bool = True) -> Iterator[RawRecord]:
    """Yield each element of a top-level JSON array as its own record.

    The file is read as bytes in windows of CHUNK; the window keeps the unread tail only, so
    memory is bounded by the window and the largest record, not by the file. Each record's end
    is found by `_Window.fast_end` where the layout allows, else by `_Window.scan_end`; a record
    that crosses the window's end is retried on the refilled window. `values=False` (records
    cut out for other processes to parse) keeps no parsed value, only the bytes.
    """
    limit = MAX_RECORD_BYTES.get()
    with path.open("rb") as fh:
        window = _Window(fh)
        pos = window.skip(0, b" \t\r\n")
        if window.data[pos : pos + 1] != b"[":
            raise SourceError("expected a JSON array")
        pos += 1
        index = 0
        while True:
            pos = window.skip(pos, b" \t\r\n,")
            if pos >= len(window.data):
                raise SourceError(
                    "truncated: the array is not closed", f"after record {index - 1}" if index else None
                )
            if window.data[pos] == 0x5D:  # ]
                return
            pos, end, value = _record(window, pos, index, limit)
            if value is _UNPARSED:
                yield RawRecord(f"record {index}", _decoded(window, pos, end, index))
            elif values:
                yield RawRecord(f"record {index}", window.view[pos:end], value=value)
            else:  # a copy: a view would keep its whole window alive while the run waits for a reader
                yield RawRecord(f"record {index}", window.data[pos:end], digits_checked=True)
            index += 1
            pos = end


def _record(window: _Window, pos: int, index: int, limit: int) -> tuple[int, int, Any]:
    """(start, end, parsed value or _UNPARSED) of the record at `pos`, refilling the window
    while the record runs past it; SourceError when the file ends inside it or it is too big."""
    scan = [0, 0]  # resumable: a record spanning reads is scanned once
    while True:
        found = window.fast_end(pos) if window.guessing else None
        if found is not None:
            return pos, *found
        end = window.scan_end(pos, scan)
        if end is not None:
            return pos, end, _UNPARSED
        if window.eof:
            raise SourceError(
                "truncated: the file ends inside this record",
                f"record {index}",
                window.data[pos : pos + 8000].decode("utf-8", "replace")[:2000],
            )
        if len(window.data) - pos > limit:
            raise SourceError(
                f"record at byte {window.offset + pos} is over the {limit:,}-byte record limit",
                f"record {index}",
                window.data[pos : pos + 2000].decode("utf-8", "replace"),
            )
        pos = window.refill(pos, max(CHUNK, len(window.data) - pos))


def _decoded(window: _Window, pos: int, end: int, index: int) -> str:
    try:
        return window.data[pos:end].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"not UTF-8 text at byte {window.offset + pos + exc.start} (binary data or another encoding?)",
            f"record {index}",
            window.data[pos : pos + 2000].decode("utf-8", "replace"),
        ) from None


class _Window:
    """The unread part of an array file: `data` starts at file offset `offset`, outside any
    string, and holds what one read after another brought in since the last refill."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        data = fh.read(max(CHUNK, len(codecs.BOM_UTF8)))  # a BOM is seen whole
        self.offset = self.origin = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
        self.eof = False
        self.indent: bytes | None = None  # a pretty-printed array's record indent, once seen
        self._load(data[self.offset :])

    def _load(self, data: bytes) -> None:
        self.data = data
        self.view = memoryview(data)  # records are parsed and handed over without a copy
        self._next: dict[bytes, int] = {}  # pattern -> its first position at or after the last asked
        self._masked: bytes | None = None
        self._masked_from = 0
        self.guessing = True  # False once the layout cannot tell, until the next refill (fast_end)
        self._digits: bytes | None = None  # `data` with digits as "0", the rest as " " (once)

    def skip(self, pos: int, chars: bytes) -> int:
        """The first position from `pos` on not in `chars`, refilling as needed (len: none)."""
        while True:
            while pos < len(self.data) and self.data[pos] in chars:
                pos += 1
            if pos < len(self.data) or self.eof:
                return pos
            pos = self.refill(pos, CHUNK)

    def refill(self, pos: int, size: int) -> int:
        """Drop what lies before `pos`, read up to `size` more bytes; `pos`'s new place (0)."""
        more = self.fh.read(size)
        self.eof = not more
        self.offset += pos
        self._load(self.data[pos:] + more)
        return 0

    def find(self, pattern: bytes, pos: int) -> int:
        """`data.find(pattern, pos)`, remembered: a file without newlines is not searched to
        the window's end once per record."""
        found = self._next.get(pattern)
        if found is None or 0 <= found < pos:
            found = self._next[pattern] = self.data.find(pattern, pos)
        return found

    def long_digit_run(self, pos: int, end: int) -> bool:
        """Whether data[pos:end] holds 20 digits in a row (see `loads`): one translation of the
        window, then a search per record."""
        if self._digits is None:
            self._digits = self.data.translate(_DIGITS_ONLY)
        return self._digits.find(_LONG_RUN, pos, end) >= 0

    def fast_end(self, pos: int) -> tuple[int, Any] | None:
        """(end, value) of the object or array at `pos` where the layout shows its likely end
        (the end of its line, or a closing bracket at its opening line's indent) and orjson
        parses exactly that slice; None leaves the record to `scan_end`.

        A JSON object or array ends at its first point of completion, so a slice from its start
        that parses whole cannot end anywhere else: the layout only guesses, the parse decides.
        A wrong guess can reach far past the record (a minified array whose only newline ends
        the file) and orjson checks a slice's UTF-8 whole before parsing (11 ms per 4 MB), so
        after one the rest of the window is left to the scan: at most one such parse per window.
        """
        data = self.data
        opener = data[pos]
        if opener not in (0x7B, 0x5B):  # { [
            return None
        closer = opener + 2  # } ]
        newline = self.find(b"\n", pos)
        if newline < 0:  # no line ends in the rest of the window: nothing to guess from
            self.guessing = False
            return None
        end = newline
        while data[end - 1] in b" \t\r,":
            end -= 1
        if data[end - 1] != closer:  # the record goes on past its first line: pretty-printed?
            line = data.rfind(b"\n", 0, pos) + 1
            if line or self.offset == self.origin:  # else the line began before this window
                indent = data[line:pos]
                self.indent = indent if not indent.strip(b" \t") else None
            if self.indent is None:
                return None
            closing = b"\n" + self.indent + bytes((closer,))
            found = self.find(closing, pos)
            if found < 0:
                return None
            end = found + len(closing)
        if self.long_digit_run(pos, end):  # orjson would round it: the scan finds the end
            return None
        try:
            return end, within_depth(self.data[pos:end], orjson.loads(self.view[pos:end]))
        except (orjson.JSONDecodeError, ValueError):
            self.guessing = False
            return None

    def scan_end(self, pos: int, state: list[int]) -> int | None:
        """The record's end by a string-aware scan (`_element_end`) over the window with escape
        pairs masked from `pos` on, masked once per window and only when a record needs it."""
        if self._masked is None or pos < self._masked_from:
            self._masked, self._masked_from = _masked(self.data[pos:]), pos
        end = _element_end(self._masked, pos - self._masked_from, state)
        return None if end is None else end + self._masked_from


def _masked(buf: bytes) -> bytes:
    """`buf` with every escape pair that can hide a quote (backslash-backslash, then
    backslash-quote) overwritten, same length: a string now ends at its next quote, found at
    memchr speed, where a trajectory has an escaped quote every ~80 bytes. Valid only for a
    buffer that starts outside a string, as one starting at a record does."""
    return buf.replace(b"\\\\", b"__").replace(b'\\"', b"__")


def _skip_ws(buf: bytes, pos: int) -> int:
    while pos < len(buf) and buf[pos] in b" \t\r\n":
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


def parse_whole_object(
    path: Path,
    convert: Callable[[dict[str, Any]], Iterable[Trace | Rejected]],
    parse: Callable[[str], Any] = loads,
) -> Iterator[Trace | Rejected]:
    """The traces of a one-document JSON file: read (within the record limit), parsed, required
    to be an object and converted. One reading for every whole-file adapter, so bad JSON, a
    non-object or a conversion error all become the same one-line Rejected for the whole file."""
    text = read_whole(path)
    try:
        document = parse(text)
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        yield from convert(document)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        yield Rejected("whole file", reason(exc), excerpt(text))
