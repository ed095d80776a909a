"""The adapter contract: a source format turns a file into Traces, or Rejected records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tracefail.model import Trace


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
    suffixes: tuple[str, ...]

    def sniff(self, path: Path, head: str) -> bool: ...

    def parse(self, path: Path) -> Iterator[Trace | Rejected]: ...


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
