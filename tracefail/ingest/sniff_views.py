"""What format sniffers get to see of a file beyond its first 64 KiB.

Sniffers look for telling keys in text. A big file can hold them anywhere: after a long body
(Who&When Hand-Crafted labels follow a `history` of several 100 KiB), between two big values
(a Langfuse export's `"observations"` after a long `"trace"`), or past a first JSONL line longer
than the head. So the views widen step by step, each only when the narrower ones decided
nothing: the head; head and tail; head, tail and every top-level key of a JSON object (found
by a byte scan over a memory map, so nothing is decoded or held); the whole first JSONL line.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path

from tracefail.ingest.reader import HEAD_BYTES, _element_end, _skip_ws, read_head, string_end

FIRST_LINE_LIMIT = 64 * 1024 * 1024  # a first JSONL line longer than this is not sniffed whole


def views(path: Path) -> Iterator[str]:
    """Ever wider texts to sniff, lazily: later ones are read only if asked for."""
    if path.suffix in {".parquet", ".eval"}:
        yield ""
        return
    head = read_head(path)
    yield head
    if path.stat().st_size <= HEAD_BYTES:
        return
    tail = read_tail(path)
    yield head + "\n" + tail
    if path.suffix == ".json":
        keys = top_level_keys(path)
        if keys:
            yield head + "\n" + tail + "\n" + " ".join(f'"{key}"' for key in keys)
    elif "\n" not in head.lstrip():
        yield first_line(path)


def read_tail(path: Path, size: int = HEAD_BYTES) -> str:
    """The last `size` bytes as text (a cut multi-byte character at the start is dropped)."""
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - size))
        return fh.read().decode("utf-8", "ignore")


def first_line(path: Path) -> str:
    with path.open("rb") as fh:
        return fh.readline(FIRST_LINE_LIMIT).decode("utf-8", "ignore")


def top_level_keys(path: Path) -> list[str]:
    """The keys of the top-level JSON object, in file order; [] when it is not one."""
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        pos = _skip_ws(buf, 3 if buf[:3] == b"\xef\xbb\xbf" else 0)  # type: ignore[arg-type]
        if buf[pos : pos + 1] != b"{":
            return []
        keys: list[str] = []
        pos += 1
        while True:
            while pos < len(buf) and buf[pos] in b" \t\r\n,":
                pos += 1
            if buf[pos : pos + 1] != b'"':
                return keys
            end = string_end(buf, pos + 1)  # type: ignore[arg-type]
            if end is None:
                return keys
            keys.append(buf[pos + 1 : end - 1].decode("utf-8", "replace"))
            pos = _skip_ws(buf, end)  # type: ignore[arg-type]
            if buf[pos : pos + 1] != b":":
                return keys
            pos = _skip_ws(buf, pos + 1)  # type: ignore[arg-type]
            end = _element_end(buf, pos)  # type: ignore[arg-type]
            if end is None:
                return keys
            pos = end
